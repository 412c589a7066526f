/**
 * The MIM models and trainer: MTO's exclusion inside a ViT block against a
 * naive masked attention, each method's loss and parts, a tiny MAE run whose
 * loss falls, exact resume (with HPM's EMA teacher), `cloze eval` on a MIM
 * checkpoint, and the comparison suite's outputs.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { add, backward, liveBytes, Rng, scope, tensor, type Tensor } from '../src/index.js';
import { chooseBlr, runMimSuite } from '../src/commands/bench-mim.js';
import { rauc } from '../src/report/curves.js';
import { evaluateImageCheckpoint } from '../src/tasks/evaluate.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { VitBlock } from '../src/models/vit/block.js';
import { vitPreset } from '../src/models/vit/config.js';
import { sincos2d } from '../src/models/vit/pos-embed.js';
import { MimModel } from '../src/tasks/mim/model.js';
import { mimSettings } from '../src/tasks/mim/settings.js';
import { resolveConfig } from '../src/tasks/config.js';
import { pretrain, type ProbeResult, type StepInfo } from '../src/tasks/pretrain.js';
import { naiveAttentionForward } from './helpers/naive-attention.js';
import { writeImageFixture } from './helpers/image-fixture.js';
import { partValues } from '../src/train/loss-parts.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-mim-'));
let data = '';
beforeAll(() => {
  data = writeImageFixture(join(root, 'images'), { train: 256, test: 64, classes: 4 });
});

describe('2D sin-cos positions', () => {
  it('follow MAE: the first half encodes the column, the second the row, each as [sin, cos]', () => {
    const D = 8;
    const p = sincos2d(2, 3, D);
    // Token (row 1, column 2): first quarter sin(2·ω), second cos(2·ω), third sin(1·ω), fourth cos(1·ω).
    const t = (1 * 3 + 2) * D;
    const omega = [1, 1 / 100];
    expect(p[t + 0]).toBeCloseTo(Math.sin(2 * omega[0]!), 12);
    expect(p[t + 1]).toBeCloseTo(Math.sin(2 * omega[1]!), 12);
    expect(p[t + 2]).toBeCloseTo(Math.cos(2 * omega[0]!), 12);
    expect(p[t + 4]).toBeCloseTo(Math.sin(1 * omega[0]!), 12);
    expect(p[t + 6]).toBeCloseTo(Math.cos(1 * omega[0]!), 12);
  });
});

describe("MTO's exclusion in a ViT block", () => {
  const [B, L, D, H] = [2, 7, 12, 3];
  const rng = new Rng(3);
  const block = new VitBlock(D, H, 4, 1e-6, { rng, dtype: 'float64' });
  const x = Float64Array.from({ length: B * L * D }, () => rng.normal());

  /** The block with naive float64 attention in place of the fused kernel. */
  function naiveBlock(xv: Float64Array, mask: Uint8Array): Float64Array {
    return scope(() => {
      const xt = tensor(xv, [B, L, D], 'float64');
      const a = block.norm1.forward(xt);
      const proj = (l: typeof block.attn.query): Float64Array => l.forward(a).toArray() as Float64Array;
      const att = naiveAttentionForward({ B, L, H, Dh: D / H, q: proj(block.attn.query), k: proj(block.attn.key), v: proj(block.attn.value), tokenMask: mask, excludeMaskedKeys: true });
      const h = add(xt, block.attn.output.forward(tensor(att.out, [B, L, D], 'float64')));
      return add(h, block.mlp.forward(block.norm2.forward(h))).toArray() as Float64Array;
    });
  }

  for (const [label, maskOf] of [
    ['some masked', (i: number) => (i % 3 === 1 ? 1 : 0)],
    ['none masked', () => 0],
    ['all masked', () => 1],
  ] as const) {
    it(`equals the block on a naive masked attention (${label})`, () => {
      const mask = Uint8Array.from({ length: B * L }, (_, i) => maskOf(i));
      const got = scope(() => block.forward(tensor(x, [B, L, D], 'float64'), { tokenMask: tensor(mask, [B, L], 'uint8'), excludeMaskedKeys: true }).out.toArray());
      const ref = naiveBlock(x, mask);
      for (let i = 0; i < ref.length; i++) expect(Math.abs(got[i]! - ref[i]!)).toBeLessThan(1e-10);
    });
  }

  it("keeps visible tokens blind to masked ones: changing a masked token's input leaves visible outputs unchanged", () => {
    const mask = Uint8Array.from({ length: B * L }, (_, i) => (i % L === 2 || i % L === 5 ? 1 : 0));
    const run = (xv: Float64Array): Float64Array =>
      scope(() => block.forward(tensor(xv, [B, L, D], 'float64'), { tokenMask: tensor(mask, [B, L], 'uint8'), excludeMaskedKeys: true }).out.toArray() as Float64Array);
    const x2 = Float64Array.from(x);
    for (let d = 0; d < D; d++) x2[2 * D + d] += 3;
    const a = run(x);
    const b = run(x2);
    for (let t = 0; t < B * L; t++) {
      const same = Array.from({ length: D }, (_, d) => a[t * D + d] === b[t * D + d]).every(Boolean);
      // Only batch 0's masked tokens (2 itself, and 5, a masked query that sees every key) may change.
      expect(same).toBe(!(t === 2 || t === 5));
    }
  });
});

function model(o: Record<string, unknown>): MimModel {
  const cfg = resolveConfig({ task: 'mim', ...o });
  const c = vitPreset('vit-micro-fmnist').config;
  return new MimModel(c, mimSettings(cfg, cfg.method === 'mae' ? c.decoderDepth : c.depth), 0);
}

function images(B: number, seed: number): Tensor {
  const r = new Rng(seed);
  return tensor(Float32Array.from({ length: B * 28 * 28 }, () => r.normal()), [B, 1, 28, 28]);
}

describe('MIM losses', () => {
  const cases: Array<[string, Record<string, unknown>, string[]]> = [
    ['mae', { method: 'mae', maskRatio: 0.75 }, ['reconstruction']],
    ['simmim', { method: 'simmim', maskRatio: 0.6, imageMasking: 'block', maskPatch: 2 }, ['reconstruction']],
    ['simmim+mto', { method: 'simmim', maskRatio: 0.6, mto: true }, ['reconstruction', 'singularity', 'entropy']],
    ['mae+mto', { method: 'mae', maskRatio: 0.75, mto: true, mtoSingularityBlocks: 1 }, ['reconstruction', 'singularity', 'entropy']],
    ['mae+sbam', { method: 'mae', maskRatio: 0.75, imageMasking: 'sbam' }, ['reconstruction', 'sbamRho']],
    ['mae+hpm', { method: 'mae', maskRatio: 0.75, imageMasking: 'hpm' }, ['reconstruction', 'hpmHard', 'ranking']],
  ];
  for (const [name, settings, parts] of cases) {
    it(`${name}: a finite loss with its parts, the expected mask count, and gradients on every trained parameter`, () => {
      const m = model(settings);
      try {
        scope(() => {
          const r = m.loss(images(4, 1), { k: 0, epoch: 0, epochs: 10 });
          expect(Object.keys(r.parts).sort()).toEqual([...parts].sort());
          const v = r.loss.item();
          expect(Number.isFinite(v)).toBe(true);
          const mask = r.mask.toArray();
          const masked = Array.from(mask).reduce((a, x) => a + x, 0);
          if (name.startsWith('mae') && name !== 'mae+sbam') expect(masked).toBe(4 * (49 - Math.floor(49 * 0.25)));
          expect(r.maskRatio).toBeCloseTo(masked / (4 * 49), 12);
          const values = partValues(r.parts);
          for (const [n, x] of Object.entries(values)) expect(Number.isFinite(x), n).toBe(true);
          if (values.singularity !== undefined) expect(Math.abs(values.singularity)).toBeLessThanOrEqual(1 + 1e-6 + (settings.mtoSingularityBlocks ? 0.5 : 0));
          backward(r.loss);
          for (const p of m.trainableParameters()) {
            expect(p.grad, 'every trained parameter gets a gradient').toBeTruthy();
          }
          for (const p of m.teacher?.parameters() ?? []) expect(p.grad ?? null).toBeNull();
        });
      } finally {
        m.dispose();
      }
    });
  }

  it('MTO with every part switched off is plain SimMIM: the same loss on the same batch', () => {
    const plain = model({ method: 'simmim' });
    const off = model({ method: 'simmim', mto: true, mtoExclusion: false, mtoSingularityWeight: 0, mtoEntropyWeight: 0 });
    const on = model({ method: 'simmim', mto: true, mtoSingularityWeight: 0, mtoEntropyWeight: 0 });
    try {
      scope(() => {
        const ctx = { k: 3, epoch: 0, epochs: 1 };
        const a = plain.loss(images(3, 2), ctx).loss.item();
        expect(off.loss(images(3, 2), ctx).loss.item()).toBe(a);
        // Exclusion alone changes what visible tokens see, so the loss moves.
        expect(on.loss(images(3, 2), ctx).loss.item()).not.toBe(a);
      });
    } finally {
      plain.dispose();
      off.dispose();
      on.dispose();
    }
  });
});

describe('MIM training', () => {
  const base = { task: 'mim', preset: 'vit-micro-fmnist', batchSize: 32, augment: false, probeImages: 256, probeEpochs: 10, logEvery: 4, threads: 0 };

  it('a tiny MAE run lowers the loss, probes at fixed epochs and writes a cloze-mim checkpoint that cloze eval reads', async () => {
    const steps: StepInfo[] = [];
    const probes: ProbeResult[] = [];
    const out = join(root, 'mae');
    const r = await pretrain({ ...base, data, out, method: 'mae', epochs: 6, probeEvery: 3, lr: 2e-3, warmupRatio: 0.1 }, {
      output: null, onStep: (s) => steps.push(s), onEval: (e) => probes.push(e as ProbeResult),
    });
    expect(r.step).toBe(6 * 8);
    const first = steps.slice(0, 4).reduce((a, s) => a + s.loss, 0) / 4;
    const last = steps.slice(-4).reduce((a, s) => a + s.loss, 0) / 4;
    expect(last).toBeLessThan(first * 0.8);
    expect(steps[0]!.parts!.reconstruction).toBeCloseTo(steps[0]!.loss, 5);
    expect(probes.map((p) => p.epoch)).toEqual([3, 6]);
    for (const p of probes) expect(p.accuracy).toBeGreaterThan(0.4); // 4 classes: chance is 0.25
    const ck = loadCheckpoint(r.checkpoint!);
    expect(ck.config.model_type).toBe('cloze-mim');
    expect(Object.keys(ck.model)).toContain('encoder.blocks.0.attn.query.weight');
    expect(Object.keys(ck.model)).toContain('decoder.mask_token');
    ck.dispose();
    const e = await evaluateImageCheckpoint({ checkpoint: out, data, probeEpochs: 10 });
    expect(e.mode).toBe('linear-probe');
    expect(e.accuracy).toBeGreaterThan(0.4);
    expect(e.testImages).toBe(64);
    // Fine-tuning by MAE's recipe through cloze eval learns the task (the case where it must beat the
    // probe, which provably cannot see the label, is in linear-probe.test.ts). No augmentation: a
    // flip maps this fixture's vertical bar of class 1 onto class 3's. 256 images at batch 64 are 4
    // steps an epoch, so the base lr is raised to reach the plateau in 10 epochs.
    const ft = await evaluateImageCheckpoint({ checkpoint: out, data, finetuneEpochs: 10, finetune: { augment: false, blr: 1e-2 } });
    expect(ft.mode).toBe('finetune');
    expect(ft.accuracy).toBeGreaterThan(0.9); // 4 classes: chance is 0.25
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.kind === 'eval').map((l) => l.epoch)).toEqual([3, 6]);
  }, 180_000);

  it('resumes exactly, EMA teacher included: HPM losses after an interruption equal an uninterrupted run', async () => {
    const cfg = { ...base, data, method: 'mae', imageMasking: 'hpm', maxSteps: 6, trainImages: 128, probeEpochs: 1 };
    const straight: number[] = [];
    await pretrain({ ...cfg, out: join(root, 'hpm-straight') }, { output: null, onStep: (s) => straight.push(s.loss) });
    const resumed: number[] = [];
    const ac = new AbortController();
    const first = await pretrain({ ...cfg, out: join(root, 'hpm-resumed') }, {
      output: null, signal: ac.signal, onStep: (s) => {
        resumed.push(s.loss);
        if (s.step === 3) ac.abort();
      },
    });
    expect(first.stopped).toBe('aborted');
    await expect(pretrain({ ...cfg, imageMasking: 'sbam', out: join(root, 'hpm-resumed'), resume: true }, { output: null })).rejects.toThrow(
      /Expected imageMasking "hpm" \(the setting of the run in .*checkpoint-3\) for resume but received "sbam"/,
    );
    await pretrain({ ...cfg, out: join(root, 'hpm-resumed'), resume: true }, { output: null, onStep: (s) => resumed.push(s.loss) });
    expect(resumed).toEqual(straight);
  }, 180_000);

  it('frees every native tensor of a model on dispose, position tables of every submodule included', () => {
    // Synchronous, so no finalizer of another test's garbage runs in between.
    const before = liveBytes();
    const m = model({ method: 'mae', imageMasking: 'hpm' });
    expect(liveBytes()).toBeGreaterThan(before);
    m.dispose();
    expect(liveBytes()).toBe(before);
  });

  it('starts an HPM teacher from the loaded student when the checkpoint has none', async () => {
    const src = join(root, 'mae');
    const m = model({ method: 'mae', imageMasking: 'hpm' });
    try {
      const ck = loadCheckpoint(join(src, readdirSync(src).filter((d) => d.startsWith('checkpoint-')).sort().pop()!));
      m.loadStateDict(ck.model, { strict: false });
      m.syncTeacher();
      const w = ck.model['encoder.blocks.0.attn.query.weight']!.toArray();
      ck.dispose();
      expect(m.teacher!.encoder.blocks.items[0]!.attn.query.weight.toArray()).toEqual(w);
    } finally {
      m.dispose();
    }
  });

  it('rejects a data directory of the wrong kind and a text preset, naming them', async () => {
    await expect(pretrain({ ...base, data: root, out: join(root, 'bad') }, { output: null })).rejects.toThrow(/Expected .* to hold train-images-idx3-ubyte/);
    await expect(pretrain({ ...base, data, preset: 'bert-tiny', out: join(root, 'bad2') }, { output: null })).rejects.toThrow(/Expected a ViT preset .* for preset but received "bert-tiny"/);
  });
});

describe('the MIM comparison suite', () => {
  const opts = {
    preset: 'vit-micro-fmnist', epochs: 2, batchSize: 64, trainImages: 128, probeEvery: 1, probeImages: 96, probeEpochs: 3, finetuneEpochs: 1, finetuneImages: 64,
    valImages: 32, seeds: [0, 1], methods: ['simmim', 'simmim+mto', 'mae+sbam'], threads: 0, scale: 1, finetuneBlrs: [1e-3, 3.2e-2],
  };

  it('chooses the base lr with the best validation top-1, the first in candidate order on a tie', () => {
    const t = (blr: number, validation: number) => ({ blr, validation, test: 1 - validation });
    expect(chooseBlr([t(1, 0.5), t(2, 0.7), t(3, 0.6)], [1, 2, 3]).blr).toBe(2);
    expect(chooseBlr([t(1, 0.7), t(2, 0.7)], [2, 1]).blr).toBe(2);
    expect(() => chooseBlr([t(1, 0.7)], [1, 2])).toThrow(/Expected a fine-tuning at blr 2/);
  });

  it('scores every point per seed, chooses on validation, compares fine-tuning curves paired by seed, and reruns only what it lacks', async () => {
    const out = join(root, 'suite');
    const lines: string[] = [];
    const r = await runMimSuite({ ...opts, out, data, log: (s) => lines.push(s) });
    expect(Object.keys(r.probe)).toEqual(opts.methods);
    const untrained = r.points['no pre-training']!;
    for (const m of opts.methods) {
      r.points[m]!.forEach((ps, i) => {
        expect(ps.map((p) => p.epoch)).toEqual([0, 1, 2]);
        // Epoch 0 is the seed's untrained encoder, shared by every ViT method.
        expect(ps[0]).toEqual(untrained[i]![0]);
        // The reported best is the test figure at the point with the highest validation figure (the earliest on a tie).
        const v = ps.map((p) => p.probe.validation);
        const at = v.indexOf(Math.max(...v));
        expect(r.selected[m]![i]).toEqual({ epoch: ps[at]!.epoch, validation: ps[at]!.probe.validation, test: ps[at]!.probe.test });
      });
      // The four MTO-related methods are fine-tuned at every point, the others at the end only.
      const grid = m === 'mae+sbam' ? [0, 2] : [0, 1, 2];
      for (const c of r.finetune[m]!) expect(c.epochs).toEqual(grid);
    }
    // The rate: every candidate on the first seed's final point, chosen there on validation, then used alone.
    for (const name of [...opts.methods, 'no pre-training']) {
      const runs = r.points[name]!;
      const finals = runs.map((ps) => ps.at(-1)!);
      expect(finals[0]!.tried!.map((x) => x.blr).sort()).toEqual([...opts.finetuneBlrs].sort());
      const pick = chooseBlr(finals[0]!.tried!, opts.finetuneBlrs);
      expect(finals[0]!.finetune).toBe(pick.test);
      expect(finals[0]!.finetuneValidation).toBe(pick.validation);
      expect(finals[1]!.tried!.map((x) => x.blr)).toEqual([pick.blr]);
      for (const ps of runs) for (const p of name === 'no pre-training' ? ps : ps.slice(1)) {
        if (p.finetune !== undefined) expect(p.finetuneBlr).toBe(pick.blr);
      }
      expect(r.table).toMatch(new RegExp(`\\| ${name.replace('+', '\\+')} *\\|[^\\n]*\\*\\*`));
    }
    // Seeds drive pre-training: the two seeds' runs differ.
    expect(r.points.simmim![0]![2]!.probe).not.toEqual(r.points.simmim![1]![2]!.probe);
    expect(r.comparisons.map((c) => `${c.method} vs ${c.base}`)).toEqual(['simmim+mto vs simmim']);
    for (const c of r.comparisons) {
      expect(c.raucBySeed).toEqual(r.finetune[c.method]!.map((f, i) => rauc(f, r.finetune[c.base]![i]!)));
      expect(c.reach.map((x) => x.target)).toEqual(r.finetune[c.base]!.map((f) => f.accuracy[2]));
    }
    for (const f of r.files) expect(existsSync(f)).toBe(true);
    expect(r.files.map((f) => f.split('/').pop())).toEqual(['summary.md', 'probe-accuracy.svg', 'results.json', 'finetune-accuracy.svg']);
    expect(r.table).toContain('simmim+mto vs simmim');
    expect(r.table).toContain('no pre-training');
    expect(readFileSync(r.files[3]!, 'utf8')).toMatch(/^<svg[\s\S]*simmim\+mto[\s\S]*class="spread"[\s\S]*<\/svg>\s*$/);
    expect(JSON.parse(readFileSync(r.files[2]!, 'utf8')).comparisons).toHaveLength(1);

    // A rerun finds every run finished and every point scored; losing one run's scores rescores that run only.
    rmSync(join(out, 'simmim', 'seed-1', 'points.json'));
    const again: string[] = [];
    const r2 = await runMimSuite({ ...opts, out, data, log: (s) => again.push(s) });
    expect(again.filter((l) => l.includes(': pre-training'))).toEqual([]);
    expect(again.filter((l) => !l.includes('chosen on validation')).map((l) => l.trim().split(' ').slice(0, 3).join(' '))).toEqual(['simmim seed 1', 'simmim seed 1']);
    expect(r2.points).toEqual(r.points);
  }, 300_000);
});
