/**
 * SparK end to end: the sparse model equals its masked-dense execution (loss,
 * every gradient, BatchNorm's running statistics), masks are nested across
 * scales, edge ratios run, a tiny pre-training lowers the loss, resumes
 * exactly, `cloze eval` probes its checkpoint, and a checkpoint of the earlier
 * decoder layout is refused for resume.
 */
import { cpSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { add, backward, Rng, scope, sum, tensor, type Tensor } from '../src/index.js';
import { evaluateImageCheckpoint } from '../src/tasks/evaluate.js';
import { sparkPreset, type SparkConfig } from '../src/models/spark/config.js';
import { MaskContext, sparkCoarseMask } from '../src/models/spark/mask-context.js';
import { encode, SparkModel } from '../src/tasks/spark/model.js';
import { pretrain, type StepInfo } from '../src/tasks/pretrain.js';
import { writeImageFixture } from './helpers/image-fixture.js';
import { straightAndResumed } from './helpers/resume.js';
import { assertClose, tolFor } from './helpers/tolerance.js';


const root = mkdtempSync(join(tmpdir(), 'cloze-spark-'));
let data = '';
beforeAll(() => {
  data = writeImageFixture(join(root, 'images'), { train: 128, test: 32, classes: 4 });
});

function images(B: number, size: number, seed: number): Tensor {
  const r = new Rng(seed);
  return tensor(Float32Array.from({ length: B * size * size }, () => r.normal()), [B, 1, size, size]);
}

/** Loss, gradients by parameter name and running stats after one step in `mode`, the model cast to `dtype`. */
function step(c: SparkConfig, mode: 'sparse' | 'masked-dense', ratio: number, x: ArrayLike<number>, B: number, dtype: 'float32' | 'float64' = 'float32') {
  const m = new SparkModel(c, { mode, maskRatio: ratio, seed: 3 });
  try {
    if (dtype === 'float64') m.to('cpu', 'float64');
    return scope(() => {
      const r = m.loss(tensor(dtype === 'float64' ? Float64Array.from(x) : Float32Array.from(x), [B, 1, c.imageSize, c.imageSize], dtype), 5);
      const loss = r.loss.item();
      backward(r.loss);
      const grads = Object.fromEntries(m.namedParameters().map(([n, p]) => [n, p.grad ? Float64Array.from(p.grad.toArray()) : null]));
      const buffers = Object.fromEntries(m.namedBuffers().map(([n, b]) => [n, Float64Array.from(b.toArray())]));
      return { loss, grads, buffers, visible: r.visible };
    });
  } finally {
    m.dispose();
  }
}

describe('SparK: sparse execution equals masked-dense', () => {
  for (const arch of ['resnet', 'convnext'] as const) {
    for (const ratio of [0, 0.6]) {
      // At 0% masked no patch is scored, so the loss and its gradients are 0: that case checks the statistics.
      // Both executions compute the same sums in different orders, so they must agree under the
      // kernels' per-element rule (tolerance.ts: atol + rtol·|ref| per entry, not a bound scaled by a
      // tensor's largest entry, which let small entries be wrong): in float64 to float64 rounding
      // (atol 1e-12, rtol 1e-10), and in float32, the dtype training runs in, to the float32 rule
      // (atol 2e-6, rtol 2e-4). Measured on this fixture in float32: the largest relative
      // differences (up to 6%) are float32 rounding on entries of ~4e-8 whose sums nearly cancel
      // (≈2e-9 absolute, inside atol); in float64 no entry differs by more than 1e-9.
      for (const dtype of ['float64', 'float32'] as const) {
        it(`${arch}, ${ratio * 100}% masked, ${dtype}: the same loss, every gradient and the BatchNorm running statistics`, () => {
          const c: SparkConfig = { ...sparkPreset(arch === 'resnet' ? 'spark-resnet-mini' : 'spark-convnext-mini').config, widths: [8, 12, 16, 20], depths: [1, 1, 1, 1], decoderWidth: 16 };
          const B = 3;
          const tol = tolFor(dtype);
          const x = images(B, 32, 7).toArray();
          const s = step(c, 'sparse', ratio, x, B, dtype);
          const d = step(c, 'masked-dense', ratio, x, B, dtype);
          expect(Array.from(s.visible)).toEqual(Array.from(d.visible));
          assertClose([s.loss], [d.loss], tol, 'loss');
          for (const [name, g] of Object.entries(d.grads)) {
            expect(g, `gradient of ${name}`).toBeTruthy();
            // With masked cells every parameter gets a gradient: no comparison is of zeros alone.
            if (ratio > 0) expect(g!.some((v) => v !== 0), `gradient of ${name} is not all zeros`).toBe(true);
            assertClose(s.grads[name]!, g!, tol, `d${name}`);
          }
          for (const [name, b] of Object.entries(d.buffers)) assertClose(s.buffers[name]!, b, tol, name);
        });
      }
    }
  }

  for (const arch of ['resnet', 'convnext'] as const) {
    it(`${arch} encoder alone (float64): the sum of every stage's features and every encoder gradient agree at 0%, 60% and 100% masked`, () => {
      const c: SparkConfig = { ...sparkPreset(arch === 'resnet' ? 'spark-resnet-mini' : 'spark-convnext-mini').config, widths: [8, 12, 16, 20], depths: [1, 1, 1, 1], decoderWidth: 16 };
      const B = 2;
      const x = Float64Array.from(images(B, 32, 11).toArray());
      for (const ratio of [0, 0.6, 1]) {
        const run = (mode: 'sparse' | 'masked-dense') => {
          const m = new SparkModel(c, { mode, maskRatio: ratio, seed: 4 }).to('cpu', 'float64');
          try {
            return scope(() => {
              const ctx = new MaskContext(mode, B, 32, 4, sparkCoarseMask(B, 4, ratio, 0, 2));
              // Masked sites are exact zeros in masked-dense maps, so plain sums compare rows with maps.
              let total: Tensor | null = null;
              for (const f of encode(m.encoder, tensor(x, [B, 1, 32, 32], 'float64'), ctx)) total = total ? add(total, sum(f.t)) : sum(f.t);
              const v = total!.item();
              backward(total!);
              return { v, grads: m.encoder.namedParameters().map(([n, p]) => [n, Float64Array.from(p.grad?.toArray() ?? [])] as const) };
            });
          } finally {
            m.dispose();
          }
        };
        const sp = run('sparse');
        const de = run('masked-dense');
        assertClose([sp.v], [de.v], tolFor('float64'), `${ratio}: feature sum`);
        if (ratio < 1) expect(de.grads.some(([, g]) => g.some((v) => v !== 0))).toBe(true);
        de.grads.forEach(([n, g], i) => assertClose(sp.grads[i]![1], g, tolFor('float64'), `${ratio}: d${n}`));
      }
    });
  }

  it('runs with every cell masked (no active site anywhere) without NaN', () => {
    const c: SparkConfig = { ...sparkPreset('spark-resnet-mini').config, widths: [8, 12, 16, 20], decoderWidth: 16 };
    const r = step(c, 'sparse', 1, images(2, 32, 1).toArray() as Float32Array, 2);
    expect(Number.isFinite(r.loss)).toBe(true);
    expect(Array.from(r.visible).every((v) => v === 0)).toBe(true);
  });
});

describe('SparK masks', () => {
  it('keep round(g²·(1 − r)) cells per image and nest across scales', () => {
    const v = sparkCoarseMask(4, 4, 0.6, 0, 9);
    for (let b = 0; b < 4; b++) expect(Array.from(v.subarray(b * 16, b * 16 + 16)).reduce((a, x) => a + x, 0)).toBe(Math.round(16 * 0.4));
    scope(() => {
      const ctx = new MaskContext('sparse', 4, 32, 4, v);
      for (let s = 0; s < 3; s++) {
        const fine = ctx.mask(s).toArray();
        const coarse = ctx.mask(s + 1).toArray();
        const n = 32 >> s;
        for (let b = 0; b < 4; b++) for (let y = 0; y < n; y++) for (let x = 0; x < n; x++) {
          expect(fine[(b * n + y) * n + x]).toBe(coarse[(b * (n / 2) + (y >> 1)) * (n / 2) + (x >> 1)]);
        }
      }
    });
  });
});

describe('SparK training', () => {
  it('a tiny sparse run lowers the loss and cloze eval probes and fine-tunes its checkpoint', async () => {
    const steps: StepInfo[] = [];
    const out = join(root, 'run');
    const r = await pretrain(
      { task: 'spark', preset: 'spark-resnet-mini', data, out, epochs: 8, batchSize: 32, augment: false, probeImages: 128, probeEpochs: 20, lr: 2e-3, warmupRatio: 0.1, threads: 0 },
      { output: null, onStep: (s) => steps.push(s) },
    );
    expect(r.step).toBe(8 * 4);
    const first = steps.slice(0, 4).reduce((a, s) => a + s.loss, 0) / 4;
    const last = steps.slice(-4).reduce((a, s) => a + s.loss, 0) / 4;
    expect(last).toBeLessThan(first);
    const e = await evaluateImageCheckpoint({ checkpoint: out, data, probeEpochs: 20 });
    expect(e.mode).toBe('linear-probe');
    expect(e.accuracy).toBeGreaterThan(0.3);
    const ft = await evaluateImageCheckpoint({ checkpoint: out, data, finetuneEpochs: 1 });
    expect(ft.mode).toBe('finetune');
    expect(ft.testImages).toBe(32);

    // The same checkpoint as the earlier decoder layout wrote it (no decoder_layout in its config.json):
    // resuming is refused, naming why, instead of loading weights into a different structure; eval still reads its encoder.
    const legacy = join(root, 'legacy');
    cpSync(out, legacy, { recursive: true });
    const ck = join(legacy, `checkpoint-${r.step}`);
    const cfgFile = join(ck, 'config.json');
    const json = JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>;
    expect(json.decoder_layout).toBe('official-unet');
    delete json.decoder_layout;
    writeFileSync(cfgFile, JSON.stringify(json));
    const marker = JSON.parse(readFileSync(join(ck, 'complete'), 'utf8')) as { files: Record<string, number> };
    marker.files['config.json'] = statSync(cfgFile).size;
    writeFileSync(join(ck, 'complete'), JSON.stringify(marker));
    await expect(
      pretrain({ task: 'spark', preset: 'spark-resnet-mini', data, out: legacy, epochs: 8, batchSize: 32, augment: false, probeImages: 128, probeEpochs: 20, lr: 2e-3, warmupRatio: 0.1, threads: 0, resume: true }, { output: null }),
    ).rejects.toThrow(/Expected decoder_layout "official-unet" .* the checkpoint holds the earlier SparK decoder/);
    const old = await evaluateImageCheckpoint({ checkpoint: ck, data, probeEpochs: 20 });
    expect(old.accuracy).toBe(e.accuracy);
  }, 240_000);

  it('resumes exactly: the losses after an interruption equal those of an uninterrupted run (decoder and BatchNorm state included)', async () => {
    const cfg = { task: 'spark', preset: 'spark-resnet-mini', data, epochs: 2, batchSize: 32, augment: false, probeImages: 64, probeEpochs: 2, lr: 2e-3, warmupRatio: 0.1, threads: 0 };
    const { straight, resumed, stoppedAt, finalStep } = await straightAndResumed(pretrain, cfg, join(root, 'resume'), 3);
    expect(stoppedAt).toBe(3);
    expect(finalStep).toBe(8);
    expect(resumed).toEqual(straight);
  }, 120_000);
});
