/**
 * Device plumbing of the tasks that accept --device cuda, without a GPU: the
 * addon is wrapped by test/helpers/fake-cuda.ts, whose pretend cuda tensors are
 * CPU tensors tagged as cuda, and every addon call refuses a mix of tagged and
 * untagged tensors (E_DEVICE), as the cuda addon does. device.js answers 'cuda'
 * when asked for it. So a MIM, SparK or fine-tuning run "on cuda" here fails if
 * any tensor of a step (an index, a mask, a rulebook, a label) stays on the
 * host; and since the pretend device computes with the CPU kernels, its losses
 * must equal a CPU run's exactly. fp32 only (the CPU has no bf16 kernels).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { writeImageFixture } from './helpers/image-fixture.js';
import { pretrainTinyEncoder } from './helpers/tiny-encoder.js';
import { fake } from './helpers/fake-cuda.js';

vi.mock('../src/native/loader.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/native/loader.js')>();
  const { wrapAddon } = await import('./helpers/fake-cuda.js');
  return { ...real, native: () => wrapAddon(real.native() as never) };
});

vi.mock('../src/device.js', async (importOriginal) => {
  const { pretendDeviceModule } = await import('./helpers/fake-cuda.js');
  return pretendDeviceModule(await importOriginal<typeof import('../src/device.js')>());
});

// Imported after the mocks are declared (vi.mock is hoisted, so these see the wrapped addon).
const { pretrain } = await import('../src/tasks/pretrain.js');
const { finetune } = await import('../src/tasks/run-finetune.js');
const { tensor } = await import('../src/tensor.js');
const { add } = await import('../src/ops/elementwise.js');
const { scope } = await import('../src/autograd/mode.js');
const { backward } = await import('../src/autograd/backward.js');
const { MimModel } = await import('../src/tasks/mim/model.js');
const { mimSettings } = await import('../src/tasks/mim/settings.js');
const { resolveConfig } = await import('../src/tasks/config.js');
const { vitPreset } = await import('../src/models/vit/config.js');
const { Rng } = await import('../src/rng.js');
const { mul } = await import('../src/ops/elementwise.js');
const { gradcheck } = await import('./helpers/gradcheck.js');
const { fixtureTokenizerIn, writeFixtureCorpus } = await import('./helpers/fixture-corpus.js');

const root = mkdtempSync(join(tmpdir(), 'cloze-device-plumbing-'));
let images = '';
let pre = '';
const textData = join(__dirname, 'fixtures', 'finetune', 'who.jsonl');
const verbalizer = join(root, 'verbalizer.json');

beforeAll(async () => {
  images = writeImageFixture(join(root, 'images'), { train: 64, test: 32, classes: 4 });
  pre = await pretrainTinyEncoder(root);
  writeFileSync(verbalizer, JSON.stringify({ animal: ['cat', 'dog', 'bird'], person: ['friend', 'teacher', 'farmer'] }));
}, 180_000);

interface Run {
  losses: number[];
  evals: unknown[];
}

/** The same run on the CPU and on the pretend cuda device: losses and evaluations, and the cuda calls made. */
async function both(go: (device: 'cpu' | 'cuda', out: string, hooks: { output: null; onStep: (s: { loss: number }) => void; onEval: (e: unknown) => void }) => Promise<unknown>, name: string): Promise<{ cpu: Run; cuda: Run; cudaCalls: number }> {
  const runs: Record<string, Run> = {};
  let cudaCalls = 0;
  for (const device of ['cpu', 'cuda'] as const) {
    const r: Run = { losses: [], evals: [] };
    fake.reset();
    await go(device, join(root, `${name}-${device}`), { output: null, onStep: (s) => r.losses.push(s.loss), onEval: (e) => r.evals.push(e) });
    if (device === 'cuda') cudaCalls = fake.cudaCalls;
    runs[device] = r;
  }
  return { cpu: runs.cpu!, cuda: runs.cuda!, cudaCalls };
}

describe('the pretend cuda device', () => {
  it('refuses a host tensor in an op on cuda tensors, naming the op and the argument', () => {
    scope(() => {
      const onCuda = tensor([1, 2], [2]).to('cuda');
      expect(onCuda.device).toBe('cuda');
      expect(() => add(onCuda, tensor([3, 4], [2]))).toThrow(/add: Expected every tensor on device cuda \(pretend\) but received argument 1/);
      expect(Array.from(add(onCuda, tensor([3, 4], [2]).to('cuda')).toArray())).toEqual([4, 6]);
    });
  });

  it("toDevice's backward hands the gradient back to the source device (finite differences, both directions)", () => {
    const rng = new Rng(5);
    const x = tensor(Array.from({ length: 7 }, () => rng.uniform() * 2 - 1), [7], 'float64');
    x.requiresGrad = true;
    // cpu → cuda for the product, cuda → cpu for the loss: transfers on the tape, each sending its gradient back. The
    // device computes in float32 (cuda has no float64), so the check goes through casts, with a step and bounds for
    // float32: f is quadratic, so central differences are exact up to its rounding (about 1e-7 / 1e-2).
    gradcheck(
      ([a]) => {
        const c = a!.cast('float32');
        return mul(c.to('cuda'), add(c.to('cuda'), c.to('cuda'))).to('cpu').cast('float64');
      },
      [x],
      { eps: 1e-2, tol: { atol: 1e-4, rtol: 1e-4 } },
    );
    // Exact in float32: d(x·x)/dx = 2x, which arrives on the CPU.
    const x32 = x.cast('float32');
    const leaf = tensor(Array.from(x32.toArray()), [7]);
    leaf.requiresGrad = true;
    scope(() => {
      const y = mul(leaf.to('cuda'), leaf.to('cuda'));
      expect(y.device).toBe('cuda');
      backward(y.to('cpu'), tensor(new Array(7).fill(1), [7]));
    });
    expect(leaf.grad!.device).toBe('cpu');
    expect(Array.from(leaf.grad!.toArray())).toEqual(Array.from(leaf.toArray(), (v) => 2 * v));
  });
});

describe('MIM on cuda (pretend)', () => {
  const base = { task: 'mim', preset: 'vit-micro-fmnist', batchSize: 16, trainImages: 64, augment: false, probeImages: 32, probeEpochs: 1, epochs: 0, maxSteps: 2, threads: 0, precision: 'fp32' };
  const cases: Array<[string, Record<string, unknown>]> = [
    ['mae+mto', { method: 'mae', mto: true }],
    ['simmim+mto (block masks)', { method: 'simmim', mto: true }],
    ['mae+sbam', { method: 'mae', imageMasking: 'sbam' }],
    ['mae+hpm', { method: 'mae', imageMasking: 'hpm' }],
  ];
  for (const [name, o] of cases) {
    it(`${name}: every step and the probe run on the device, with the CPU's losses and probe`, async () => {
      const r = await both((device, out, hooks) => pretrain({ ...base, ...o, data: images, device, out }, hooks), `mim-${name.split(' ')[0]}`);
      expect(r.cuda.losses).toHaveLength(2);
      expect(r.cuda.losses).toEqual(r.cpu.losses);
      expect(r.cuda.evals).toEqual(r.cpu.evals);
      expect(r.cudaCalls).toBeGreaterThan(100);
    }, 60_000);
  }

  // vit-micro has no CLS token; a small config with one covers the CLS rows, indices and features.
  it('with a CLS token (MAE+MTO, SimMIM+MTO): the loss and every gradient as on the CPU', () => {
    const c = { ...vitPreset('vit-micro-fmnist').config, cls: true, depth: 2, decoderDepth: 1 };
    for (const o of [{ method: 'mae', mto: true, mtoSingularityBlocks: 1 }, { method: 'simmim', mto: true }]) {
      const cfg = resolveConfig({ task: 'mim', ...o });
      const settings = mimSettings(cfg, cfg.method === 'mae' ? c.decoderDepth : c.depth);
      const r = new Rng(3);
      const pixels = Float32Array.from({ length: 4 * 28 * 28 }, () => r.normal());
      const run = (device: 'cpu' | 'cuda') => {
        const m = new MimModel(c, settings, 0);
        if (device === 'cuda') m.to('cuda');
        try {
          return scope(() => {
            const x = tensor(pixels, [4, 1, 28, 28]).to(device);
            const l = m.loss(x, { k: 1, epoch: 0, epochs: 1 });
            backward(l.loss);
            expect(m.trainableParameters().every((p) => p.device === device)).toBe(true);
            return { loss: l.loss.item(), grads: m.trainableParameters().map((p) => Array.from(p.grad!.toArray())) };
          });
        } finally {
          m.dispose();
        }
      };
      const cpu = run('cpu');
      const cuda = run('cuda');
      expect(cuda.loss).toBe(cpu.loss);
      expect(cuda.grads).toEqual(cpu.grads);
    }
  });
});

describe('SparK on cuda (pretend)', () => {
  for (const mode of ['sparse', 'masked-dense']) {
    it(`${mode}: masks, sites and rulebooks on the device, with the CPU's losses and probe`, async () => {
      const r = await both(
        (device, out, hooks) => pretrain({ task: 'spark', preset: 'spark-resnet-mini', sparkMode: mode, data: images, batchSize: 16, augment: false, probeImages: 32, probeEpochs: 1, epochs: 0, maxSteps: 2, threads: 0, precision: 'fp32', device, out }, hooks),
        `spark-${mode}`,
      );
      expect(r.cuda.losses).toHaveLength(2);
      expect(r.cuda.losses).toEqual(r.cpu.losses);
      expect(r.cuda.evals).toEqual(r.cpu.evals);
      expect(r.cudaCalls).toBeGreaterThan(100);
    }, 60_000);
  }
});

describe('fine-tuning on cuda (pretend)', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['mlp-ft --adv', { method: 'mlp-ft', adv: true }],
    ['mvp --adv', { method: 'mvp', adv: true, template: ['[MASK] :'], verbalizer }],
    ['mvp --asa', { method: 'mvp', asa: true, template: ['[MASK] :'], verbalizer }],
    ['mask-tune', { method: 'mask-tune' }],
  ];
  for (const [name, o] of cases) {
    it(`${name}: inputs, labels and label words on the device, with the CPU's losses and evaluation`, async () => {
      const r = await both(
        (device, out, hooks) => finetune({ taskData: textData, initFrom: pre, maxLength: 24, batchSize: 16, epochs: 0, maxSteps: 2, lr: 1e-3, threads: 0, seed: 3, precision: 'fp32', ...o, device, out }, hooks),
        `ft-${name.replace(/\W+/g, '-')}`,
      );
      expect(r.cuda.losses).toHaveLength(2);
      expect(r.cuda.losses).toEqual(r.cpu.losses);
      expect(r.cuda.evals).toEqual(r.cpu.evals);
      expect(r.cudaCalls).toBeGreaterThan(100);
    }, 60_000);
  }
});

/**
 * The host's reads of device values within each training step, from the pretend device's trace (steps 2 and 3;
 * the first also moves the model): how many come before the step's last optimizer call (each a wait for the device
 * mid-step on a GPU) and how many after it (read together, once the whole step is queued). With the steps' losses and
 * logged parts, which must be the CPU run's.
 */
type StepHooks = { output: null; onStep: (s: { loss: number; parts?: Record<string, number> }) => void };
interface Logged {
  losses: number[];
  parts: Array<Record<string, number> | undefined>;
}

async function cpuRun(run: (hooks: StepHooks) => Promise<unknown>): Promise<Logged> {
  const r: Logged = { losses: [], parts: [] };
  await run({ output: null, onStep: (s) => (r.losses.push(s.loss), r.parts.push(s.parts)) });
  return r;
}

async function stepReads(run: (hooks: StepHooks) => Promise<unknown>): Promise<Logged & { steps: Array<{ before: number; after: number }> }> {
  const trace: string[] = [];
  const r: Logged = { losses: [], parts: [] };
  const steps: Array<{ before: number; after: number }> = [];
  let from = 0;
  fake.trace = trace;
  try {
    await run({
      output: null,
      onStep: (s) => {
        r.losses.push(s.loss);
        r.parts.push(s.parts);
        const slice = trace.slice(from);
        from = trace.length;
        const lastStep = slice.lastIndexOf('adamw');
        expect(lastStep, 'an optimizer call on the device in every step').toBeGreaterThanOrEqual(0);
        const reads = (a: string[]): number => a.filter((x) => x === 'read').length;
        steps.push({ before: reads(slice.slice(0, lastStep)), after: reads(slice.slice(lastStep + 1)) });
      },
    });
  } finally {
    fake.trace = null;
  }
  return { ...r, steps: steps.slice(1) };
}

describe('host reads per step on cuda (pretend)', () => {
  const corpusRoot = join(root, 'reads');
  type Run = (o: Record<string, unknown>, device: string, name: string) => (hooks: StepHooks) => Promise<unknown>;
  const text: Run = (o, device, name) => (hooks) =>
    pretrain({ data: writeFixtureCorpus(join(corpusRoot, 'data')), tokenizer: fixtureTokenizerIn(corpusRoot), maxSteps: 3, lr: 1e-3, maxLength: 32, batchSize: 8, threads: 0, precision: 'fp32', ...o, device, out: join(corpusRoot, `${name}-${device}`) }, hooks);
  const image: Run = (o, device, name) => (hooks) =>
    pretrain({ data: images, batchSize: 16, augment: false, probeImages: 32, probeEpochs: 1, epochs: 0, maxSteps: 3, threads: 0, precision: 'fp32', ...o, device, out: join(root, `reads-${name}-${device}`) }, hooks);
  const mae = { task: 'mim', preset: 'vit-micro-fmnist', trainImages: 64, method: 'mae', mto: true };
  // [name, run, options, reads before the optimizer step, reads after it]
  const cases: Array<[string, Run, Record<string, unknown>, number, number]> = [
    // The loss and the gradient norm, once the step is queued.
    ['mlm', text, {}, 0, 2],
    // One loss per micro-batch.
    ['mlm --grad-accum 2', text, { gradAccum: 2 }, 0, 3],
    // The generator's samples are read mid-step (the discriminator's input is built on the host); the two parts
    // (generator and discriminator losses) are read with the loss.
    ['electra', text, { objective: 'electra' }, 1, 4],
    // Per micro-batch: its samples mid-step; its loss and two parts after the step.
    ['electra --grad-accum 2', text, { objective: 'electra', gradAccum: 2 }, 2, 7],
    // The image losses' backwards still read their upstream gradient on the host (maskedPatchLoss, and maskedCosine
    // for MTO's singularity: one read each, mid-backward), and on cuda their bindings copy the mask to the host to
    // check and count it in every call, which this trace does not see. The logged parts no longer add reads mid-step.
    // MAE+MTO: the loss, the norm and three parts (reconstruction, singularity, entropy) after the step.
    ['mim mae+mto', image, mae, 2, 5],
    // Two micro-batches: each its gradient reads, its loss and three parts.
    ['mim mae+mto --grad-accum 2', image, { ...mae, gradAccum: 2, batchSize: 8 }, 4, 9],
    // The loss, the norm and the reconstruction part after the step; one gradient read mid-backward.
    ['spark', image, { task: 'spark', preset: 'spark-resnet-mini' }, 1, 3],
  ];
  for (const [name, run, o, before, after] of cases) {
    it(`${name}: ${before} read(s) mid-step, ${after} after the optimizer step is queued, and the CPU's losses and parts`, async () => {
      const cuda = await stepReads(run(o, 'cuda', name.replace(/\W+/g, '-')));
      const cpu = await cpuRun(run(o, 'cpu', name.replace(/\W+/g, '-')));
      expect(cuda.losses).toEqual(cpu.losses);
      expect(cuda.parts).toEqual(cpu.parts);
      // Every task but MLM logs parts.
      expect(cuda.parts.every((p) => (p ? Object.keys(p).length > 0 : name.startsWith('mlm')))).toBe(true);
      expect(cuda.steps).toEqual([{ before, after }, { before, after }]);
    }, 60_000);
  }
});
