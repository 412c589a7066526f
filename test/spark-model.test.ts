/**
 * SparK end to end: the sparse model equals its masked-dense execution (loss,
 * every gradient, BatchNorm's running statistics), masks are nested across
 * scales, edge ratios run, a tiny pre-training lowers the loss and `cloze
 * eval` probes its checkpoint.
 */
import { mkdtempSync } from 'node:fs';
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

const root = mkdtempSync(join(tmpdir(), 'cloze-spark-'));
let data = '';
beforeAll(() => {
  data = writeImageFixture(join(root, 'images'), { train: 128, test: 32, classes: 4 });
});

function images(B: number, size: number, seed: number): Tensor {
  const r = new Rng(seed);
  return tensor(Float32Array.from({ length: B * size * size }, () => r.normal()), [B, 1, size, size]);
}

/** Loss, gradients by parameter name and running stats after one step in `mode`. */
function step(c: SparkConfig, mode: 'sparse' | 'masked-dense', ratio: number, x: Float32Array, B: number) {
  const m = new SparkModel(c, { mode, maskRatio: ratio, seed: 3 });
  try {
    return scope(() => {
      const r = m.loss(tensor(x, [B, 1, c.imageSize, c.imageSize]), 5);
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

function close(a: Float64Array, b: Float64Array, tol: number, label: string): void {
  expect(a.length, label).toBe(b.length);
  let scaleMax = 0;
  for (let i = 0; i < b.length; i++) scaleMax = Math.max(scaleMax, Math.abs(b[i]!));
  for (let i = 0; i < a.length; i++) {
    if (Math.abs(a[i]! - b[i]!) > tol * (1 + scaleMax)) expect.fail(`${label}[${i}]: sparse ${a[i]} vs masked-dense ${b[i]}`);
  }
}

describe('SparK: sparse execution equals masked-dense', () => {
  for (const arch of ['resnet', 'convnext'] as const) {
    for (const ratio of [0, 0.6]) {
      // At 0% masked no patch is scored, so the loss and its gradients are 0: that case checks the statistics.
      it(`${arch}, ${ratio * 100}% masked: the same loss, every gradient and the BatchNorm running statistics`, () => {
        const c: SparkConfig = { ...sparkPreset(arch === 'resnet' ? 'spark-resnet-mini' : 'spark-convnext-mini').config, widths: [8, 12, 16, 20], depths: [1, 1, 1, 1], decoderWidth: 16 };
        const B = 3;
        const x = images(B, 32, 7).toArray() as Float32Array;
        const s = step(c, 'sparse', ratio, x, B);
        const d = step(c, 'masked-dense', ratio, x, B);
        expect(Array.from(s.visible)).toEqual(Array.from(d.visible));
        expect(Math.abs(s.loss - d.loss)).toBeLessThan(1e-4 * (1 + Math.abs(d.loss)));
        for (const [name, g] of Object.entries(d.grads)) {
          if (g === null) continue;
          expect(s.grads[name], `gradient of ${name}`).toBeTruthy();
          close(s.grads[name]!, g, 2e-3, `d${name}`);
        }
        for (const [name, b] of Object.entries(d.buffers)) close(s.buffers[name]!, b, 1e-4, name);
      });
    }
  }

  for (const arch of ['resnet', 'convnext'] as const) {
    it(`${arch} encoder alone: the sum of every stage's features and every encoder gradient agree at 0%, 60% and 100% masked`, () => {
      const c: SparkConfig = { ...sparkPreset(arch === 'resnet' ? 'spark-resnet-mini' : 'spark-convnext-mini').config, widths: [8, 12, 16, 20], depths: [1, 1, 1, 1], decoderWidth: 16 };
      const B = 2;
      const x = images(B, 32, 11).toArray() as Float32Array;
      for (const ratio of [0, 0.6, 1]) {
        const run = (mode: 'sparse' | 'masked-dense') => {
          const m = new SparkModel(c, { mode, maskRatio: ratio, seed: 4 });
          try {
            return scope(() => {
              const ctx = new MaskContext(mode, B, 32, 4, sparkCoarseMask(B, 4, ratio, 0, 2));
              // Masked sites are exact zeros in masked-dense maps, so plain sums compare rows with maps.
              let total: Tensor | null = null;
              for (const f of encode(m.encoder, tensor(x, [B, 1, 32, 32]), ctx)) total = total ? add(total, sum(f.t)) : sum(f.t);
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
        expect(Math.abs(sp.v - de.v)).toBeLessThanOrEqual(1e-4 * (1 + Math.abs(de.v)));
        if (ratio < 1) expect(de.grads.some(([, g]) => g.some((v) => v !== 0))).toBe(true);
        de.grads.forEach(([n, g], i) => close(sp.grads[i]![1], g, 2e-3, `${ratio}: d${n}`));
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
  }, 120_000);
});
