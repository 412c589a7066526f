/**
 * The image evaluations of probe.ts against references:
 * - the linear classifier (the probe's head) against an independent float64
 *   multinomial logistic regression solved to convergence by full-batch
 *   gradient descent, on overlapping Gaussian blobs (not separable, so the
 *   unregularised optimum exists and is unique up to the softmax's shift);
 * - fine-tuning against the linear probe on a fixture where the frozen
 *   features provably carry no information about the label, but the encoder
 *   can learn it.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../src/index.js';
import { fitLinearClassifier, finetuneEncoder, linearProbe, trainLinearClassifier } from '../src/eval/probe.js';
import { VitEncoder } from '../src/models/vit/encoder.js';
import type { ImageSet } from '../src/data/images/dataset.js';
import { assertClose } from './helpers/tolerance.js';

/** N points in D dims, K classes: class k centred at a fixed point, unit noise (the blobs overlap). */
function blobs(N: number, D: number, K: number, seed: number): { x: Float32Array; y: Int32Array } {
  const rng = new Rng(seed);
  const centres = [[1, 0, 0.5], [-0.5, 1, 0], [0, -1, -0.5]];
  const x = new Float32Array(N * D);
  const y = new Int32Array(N);
  for (let i = 0; i < N; i++) {
    const k = i % K;
    y[i] = k;
    for (let d = 0; d < D; d++) x[i * D + d] = centres[k]![d]! + rng.normal();
  }
  return { x, y };
}

/**
 * Multinomial logistic regression, mean cross-entropy, no penalty, by full-batch
 * gradient descent in float64 with step 1/L (L = λmax(X̃ᵀX̃)/N bounds the
 * Hessian, X̃ = [X, 1]), until the gradient's max-norm is below 1e-10.
 */
function referenceLogReg(x: Float32Array, y: Int32Array, D: number, K: number): { W: Float64Array; b: Float64Array; gradNorm: number } {
  const N = y.length;
  // λmax of X̃ᵀX̃/N ≤ its trace.
  let trace = 0;
  for (let i = 0; i < N; i++) {
    trace += 1;
    for (let d = 0; d < D; d++) trace += x[i * D + d]! ** 2;
  }
  const step = 1 / (trace / N);
  const W = new Float64Array(K * D);
  const b = new Float64Array(K);
  let gradNorm = Infinity;
  for (let it = 0; it < 200_000 && gradNorm > 1e-10; it++) {
    const gW = new Float64Array(K * D);
    const gb = new Float64Array(K);
    for (let i = 0; i < N; i++) {
      const z = Array.from({ length: K }, (_, k) => b[k]! + Array.from({ length: D }, (_, d) => W[k * D + d]! * x[i * D + d]!).reduce((a, v) => a + v, 0));
      const m = Math.max(...z);
      const e = z.map((v) => Math.exp(v - m));
      const s = e.reduce((a, v) => a + v, 0);
      for (let k = 0; k < K; k++) {
        const r = (e[k]! / s - (k === y[i] ? 1 : 0)) / N;
        gb[k]! += r;
        for (let d = 0; d < D; d++) gW[k * D + d]! += r * x[i * D + d]!;
      }
    }
    gradNorm = Math.max(...Array.from(gW, Math.abs), ...Array.from(gb, Math.abs));
    for (let j = 0; j < K * D; j++) W[j]! -= step * gW[j]!;
    for (let k = 0; k < K; k++) b[k]! -= step * gb[k]!;
  }
  return { W, b, gradNorm };
}

/** Softmax probabilities [N, K] of a linear classifier. */
function probabilities(W: ArrayLike<number>, b: ArrayLike<number>, x: Float32Array, D: number, K: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < x.length / D; i++) {
    const z = Array.from({ length: K }, (_, k) => b[k]! + Array.from({ length: D }, (_, d) => W[k * D + d]! * x[i * D + d]!).reduce((a, v) => a + v, 0));
    const m = Math.max(...z);
    const e = z.map((v) => Math.exp(v - m));
    const s = e.reduce((a, v) => a + v, 0);
    out.push(...e.map((v) => v / s));
  }
  return out;
}

describe('linear classifier (the probe head)', () => {
  it('converges to the float64 logistic-regression optimum: same probabilities, same loss', () => {
    const D = 3, K = 3;
    const train = blobs(150, D, K, 11);
    const test = blobs(60, D, K, 12);
    const ref = referenceLogReg(train.x, train.y, D, K);
    expect(ref.gradNorm).toBeLessThan(1e-10);
    // Full batch (one step per epoch), so AdamW minimises the same objective; the cosine decays its lr to 0.
    const o = { epochs: 3000, batchSize: 150, lr: 3e-2, seed: 0 };
    const head = fitLinearClassifier(train.x, train.y, D, K, o);
    const W = head.weight.toArray();
    const b = head.bias!.toArray();
    head.dispose();
    const got = probabilities(W, b, test.x, D, K);
    const want = probabilities(ref.W, ref.b, test.x, D, K);
    // Probabilities, not weights: the optimum is unique only up to adding one vector to every class.
    // The gap is Adam's distance from the optimum when its lr reaches 0 plus float32 rounding of
    // the weights (~6e-8 relative); measured 1.3e-7. 1e-5 demands convergence: the same head after
    // 100 epochs is off by 0.064, after 300 by 5e-4.
    assertClose(got, want, { atol: 1e-5, rtol: 0 }, 'test probabilities');
    // The weights' class differences (identifiable) agree too.
    const diff = (w: ArrayLike<number>): number[] => Array.from({ length: (K - 1) * D }, (_, j) => w[D + j]! - w[j % D]!);
    // Weights of magnitude ~1: 1e-4 leaves room for the same float32 and Adam gaps, amplified by the
    // conditioning of the overlapping blobs.
    assertClose(diff(W), diff(ref.W), { atol: 1e-4, rtol: 1e-4 }, 'W_k − W_0');
    // And trainLinearClassifier reports the loss of those probabilities.
    const r = trainLinearClassifier(train.x, train.y, test.x, test.y, D, K, o);
    const refLoss = -test.y.reduce((a, k, i) => a + Math.log(want[i * K + k]!), 0) / test.y.length;
    // The loss is computed in float32 on the native side: ~1e-7 relative; measured 2e-8.
    expect(Math.abs(r.loss - refLoss)).toBeLessThan(1e-5);
  }, 60_000);
});

/**
 * 8×8 one-channel images of uniform noise; the label is the brightness of the
 * top-left pixel of every 4×4 patch (255: class 1, 0: class 0). The encoder's
 * patch embedding is given a zero weight column for that pixel, so its frozen
 * features are a function of the noise pixels only, which are independent of
 * the label: any probe's test top-1 is Binomial(n, ½)/n. Fine-tuning updates
 * that column (its gradient is the pixel times the upstream gradient) and can
 * read the label.
 */
function hiddenPixelSet(n: number, seed: number): ImageSet {
  const rng = new Rng(seed);
  const images = new Uint8Array(n * 64);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2;
    for (let y = 0; y < 8; y++)
      for (let x = 0; x < 8; x++) images[i * 64 + y * 8 + x] = y % 4 === 0 && x % 4 === 0 ? 255 * labels[i]! : rng.int(256);
  }
  return { images, labels, n, channels: 1, height: 8, width: 8, classes: ['dark', 'bright'], source: 'hidden-pixel fixture' };
}

describe('fine-tuning', () => {
  it('beats the linear probe where the frozen features provably cannot see the label', () => {
    const config = { imageSize: [8, 8] as [number, number], channels: 1, patch: 4, dim: 16, depth: 2, heads: 2, mlpRatio: 2, cls: false, lnEps: 1e-6, decoderDim: 8, decoderDepth: 1, decoderHeads: 2 };
    const train = hiddenPixelSet(256, 1);
    const test = hiddenPixelSet(200, 2);
    const norm = { mean: [0.5], std: [0.3] };
    const make = (): VitEncoder => {
      const enc = new VitEncoder(config, { seed: 3 });
      // patch_embed.weight is [dim, 16]: column 0 reads each patch's top-left pixel.
      const w = enc.patchEmbed.weight.toArray() as Float32Array;
      for (let r = 0; r < 16; r++) w[r * 16] = 0;
      enc.patchEmbed.weight.native.write(w);
      return enc;
    };
    const probed = make();
    const probe = linearProbe(probed, train, test, { epochs: 100, seed: 0, norm });
    probed.dispose();
    // Binomial(200, ½): 4 standard deviations above chance is 0.5 + 4·0.035 = 0.64.
    expect(probe.accuracy).toBeLessThan(0.64);
    const tuned = make();
    // No augmentation: a crop or flip would move the label pixel.
    const normBefore = [...tuned.norm.parameters()].map((p) => Array.from(p.toArray()));
    const ft = finetuneEncoder(tuned, train, test, { epochs: 30, seed: 0, norm, augment: false, batchSize: 32, blr: 1e-2 });
    // MAE's global pool: the fc_norm head reads the pooled pre-norm tokens, so the final norm took no part.
    expect([...tuned.norm.parameters()].map((p) => Array.from(p.toArray()))).toEqual(normBefore);
    tuned.dispose();
    expect(ft.accuracy).toBeGreaterThan(0.9);
    expect(ft.accuracy).toBeGreaterThan(probe.accuracy + 0.25);
  }, 120_000);
});
