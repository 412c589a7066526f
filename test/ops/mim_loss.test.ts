/**
 * The masked-image-modeling losses (maskedPatchLoss, maskedCosine, rankingLoss) against
 * plain float64 TypeScript references at odd sizes, finite-difference gradients in float64,
 * the edge cases (nothing / everything masked, ties, clamped norms), thread-count
 * independence and bad input at both the TypeScript and the native boundary; the
 * CUDA kernels against the CPU.
 */
import { describe, expect, it } from 'vitest';
import { backward, Rng, scope, setNumThreads, runtimeInfo, tensor, type DType, type Tensor } from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import { maskedCosine, maskedPatchLoss, rankingLoss, type PatchLossKind } from '../../src/ops/mim_loss.js';
import { assertBf16, bf16, describeCuda, get, itOnDevice, roundBf16 } from '../helpers/cuda-harness.js';
import { close, closeBf16Scalar, cpu, dev, maskOf, rnd, thrown, uniform } from '../helpers/cuda-mim.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

const rng = new Rng(4242);

function rand(shape: number[], dtype: DType, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform()), shape, dtype);
}

/** uint8 [B, L] with each token masked with probability `frac`. */
function randMask(B: number, L: number, frac: number): Tensor {
  return tensor(Array.from({ length: B * L }, () => (rng.uniform() < frac ? 1 : 0)), [B, L], 'uint8');
}

const constMask = (B: number, L: number, v: 0 | 1): Tensor => tensor(new Array<number>(B * L).fill(v), [B, L], 'uint8');

/** The gradient of each input after backward(f(inputs)), as float64 arrays (zeros when none arrived). */
function grads(f: () => Tensor, inputs: Tensor[]): { loss: number; g: Float64Array[] } {
  return scope(() => {
    for (const t of inputs) {
      t.grad?.dispose();
      t.grad = null;
    }
    const loss = f();
    backward(loss);
    return { loss: loss.item(), g: inputs.map((t) => (t.grad ? Float64Array.from(t.grad.toArray()) : new Float64Array(t.size))) };
  });
}

function expectAllZero(label: string, xs: ArrayLike<number>): void {
  for (let i = 0; i < xs.length; i++) if (xs[i] !== 0) throw new Error(`${label}[${i}] = ${xs[i]}`);
}

// ---------------------------------------------------------------------------------------------
// References (float64, straight from the definitions).

function patchLossRef(
  pred: ArrayLike<number>, target: ArrayLike<number>, mask: ArrayLike<number>, P: number,
  kind: PatchLossKind, normPix: boolean, eps: number,
): { loss: number; perPatch: Float64Array } {
  const R = mask.length;
  const perPatch = new Float64Array(R);
  let total = 0;
  let count = 0;
  for (let r = 0; r < R; r++) {
    const t = Array.from({ length: P }, (_, k) => target[r * P + k]!);
    let tn = t;
    if (normPix) {
      const mean = t.reduce((a, b) => a + b, 0) / P;
      const varUnbiased = t.reduce((a, b) => a + (b - mean) ** 2, 0) / (P - 1);
      tn = t.map((v) => (v - mean) / Math.sqrt(varUnbiased + eps));
    }
    let s = 0;
    for (let k = 0; k < P; k++) {
      const d = pred[r * P + k]! - tn[k]!;
      s += kind === 'mse' ? d * d : Math.abs(d);
    }
    perPatch[r] = s / P;
    if (mask[r]) {
      total += perPatch[r]!;
      count++;
    }
  }
  return { loss: count ? total / count : 0, perPatch };
}

/** Mean cosine over every (masked, visible) pair of each image, then over the images with both. */
function cosineRef(x: ArrayLike<number>, mask: ArrayLike<number>, B: number, L: number, D: number, eps: number): number {
  const unit = (b: number, i: number): number[] => {
    const v = Array.from({ length: D }, (_, k) => x[(b * L + i) * D + k]!);
    const n = Math.max(Math.sqrt(v.reduce((a, c) => a + c * c, 0)), eps);
    return v.map((c) => c / n);
  };
  let total = 0;
  let images = 0;
  for (let b = 0; b < B; b++) {
    let s = 0;
    let pairs = 0;
    for (let i = 0; i < L; i++) {
      if (!mask[b * L + i]) continue;
      const u = unit(b, i);
      for (let j = 0; j < L; j++) {
        if (mask[b * L + j]) continue;
        const v = unit(b, j);
        s += u.reduce((a, c, k) => a + c * v[k]!, 0);
        pairs++;
      }
    }
    if (pairs) {
      total += s / pairs;
      images++;
    }
  }
  return images ? total / images : 0;
}

/**
 * HPM's relative loss as its official code writes it (models_mae_learn_loss.py), over the full
 * L×L grid of ordered masked pairs: positive where t_j > t_i, negative where t_j < t_i, and the
 * textbook −log σ(z) / −log(1 − σ(z)) of z = pred_j − pred_i (without its +1e-6); the sum over the
 * batch divided by the number of positive plus negative pairs. Tied pairs are in neither.
 */
function rankingRef(pred: ArrayLike<number>, target: ArrayLike<number>, mask: ArrayLike<number>, B: number, L: number): number {
  let total = 0;
  let valid = 0;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < L; i++)
      for (let j = 0; j < L; j++) {
        if (!mask[b * L + i] || !mask[b * L + j]) continue;
        const s = 1 / (1 + Math.exp(-(pred[b * L + j]! - pred[b * L + i]!)));
        const ti = target[b * L + i]!;
        const tj = target[b * L + j]!;
        if (tj > ti) total -= Math.log(s);
        if (tj < ti) total -= Math.log(1 - s);
        if (tj > ti || tj < ti) valid++;
      }
  return valid ? total / valid : 0;
}

// ---------------------------------------------------------------------------------------------

describe('maskedPatchLoss', () => {
  const shapes: Array<[number, number, number]> = [[3, 7, 5], [2, 49, 16], [1, 1, 2]];
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const [B, L, P] of shapes)
      for (const kind of ['mse', 'l1'] as PatchLossKind[])
        for (const normPix of [false, true])
          it(`matches the reference: ${dtype} [${B}, ${L}, ${P}] ${kind} normPix=${normPix}`, () => {
            const pred = rand([B, L, P], dtype);
            const target = rand([B, L, P], dtype, -2, 3);
            const mask = randMask(B, L, 0.6);
            const { loss, perPatch } = maskedPatchLoss(pred, target, mask, { kind, normPix });
            const ref = patchLossRef(pred.toArray(), target.toArray(), mask.toArray(), P, kind, normPix, 1e-6);
            expect(loss.shape).toEqual([]);
            expect(perPatch.shape).toEqual([B, L]);
            expect(perPatch.requiresGrad).toBe(false);
            assertClose([loss.item()], [ref.loss], tolFor(dtype), 'loss');
            assertClose(perPatch.toArray(), ref.perPatch, tolFor(dtype), 'perPatch');
          });

  it('normalises with the unbiased variance, as MAE (target.var(dim=-1))', () => {
    // t = [1, 2, 3, 4]: Σ(t − mean)² = 5, unbiased var 5/3. With pred 0 the loss is 5 / (4·(5/3 + eps)) ≈ 3/4
    // (the biased variance would give ≈ 1).
    const target = tensor([1, 2, 3, 4], [1, 1, 4], 'float64');
    const pred = tensor([0, 0, 0, 0], [1, 1, 4], 'float64');
    const { loss } = maskedPatchLoss(pred, target, constMask(1, 1, 1), { normPix: true, eps: 1e-6 });
    assertClose([loss.item()], [5 / (4 * (5 / 3 + 1e-6))], tolFor('float64'), 'loss');
  });

  for (const kind of ['mse', 'l1'] as PatchLossKind[])
    for (const normPix of [false, true])
      it(`backward matches finite differences (float64, ${kind}, normPix=${normPix}) for pred and target`, () => {
        const pred = randLeaf([3, 7, 5], rng);
        const target = randLeaf([3, 7, 5], rng);
        const mask = randMask(3, 7, 0.5);
        gradcheck(([p, t]) => maskedPatchLoss(p!, t!, mask, { kind, normPix }).loss, [pred, target]);
      });

  it('with nothing masked: loss 0, zero gradients, no NaN; perPatch still holds every patch', () => {
    const pred = randLeaf([2, 5, 4], rng);
    const target = randLeaf([2, 5, 4], rng);
    const mask = constMask(2, 5, 0);
    for (const normPix of [false, true]) {
      const r = grads(() => maskedPatchLoss(pred, target, mask, { normPix }).loss, [pred, target]);
      expect(r.loss).toBe(0);
      expectAllZero('dpred', r.g[0]!);
      expectAllZero('dtarget', r.g[1]!);
      const ref = patchLossRef(pred.toArray(), target.toArray(), mask.toArray(), 4, 'mse', normPix, 1e-6);
      assertClose(maskedPatchLoss(pred, target, mask, { normPix }).perPatch.toArray(), ref.perPatch, tolFor('float64'), 'perPatch');
    }
  });

  it('with everything masked the loss averages every patch', () => {
    const pred = rand([3, 4, 6], 'float64');
    const target = rand([3, 4, 6], 'float64');
    const { loss, perPatch } = maskedPatchLoss(pred, target, constMask(3, 4, 1), { kind: 'l1' });
    const all = Array.from(perPatch.toArray());
    assertClose([loss.item()], [all.reduce((a, b) => a + b, 0) / all.length], tolFor('float64'), 'loss');
  });

  it("L1's gradient is 0 where pred equals the target", () => {
    const vals = Array.from({ length: 2 * 3 * 4 }, () => rng.uniform());
    const pred = tensor(vals, [2, 3, 4], 'float64');
    pred.requiresGrad = true;
    const target = tensor(vals, [2, 3, 4], 'float64');
    const r = grads(() => maskedPatchLoss(pred, target, constMask(2, 3, 1), { kind: 'l1' }).loss, [pred]);
    expect(r.loss).toBe(0);
    expectAllZero('dpred', r.g[0]!);
  });

  it('float32 gradients agree with the float64 ones', () => {
    const pred64 = randLeaf([2, 9, 7], rng);
    const target64 = randLeaf([2, 9, 7], rng);
    const mask = randMask(2, 9, 0.5);
    const pred32 = tensor(pred64.toArray(), pred64.shape, 'float32');
    pred32.requiresGrad = true;
    const target32 = tensor(target64.toArray(), target64.shape, 'float32');
    target32.requiresGrad = true;
    for (const kind of ['mse', 'l1'] as PatchLossKind[]) {
      const a = grads(() => maskedPatchLoss(pred64, target64, mask, { kind, normPix: true }).loss, [pred64, target64]);
      const b = grads(() => maskedPatchLoss(pred32, target32, mask, { kind, normPix: true }).loss, [pred32, target32]);
      assertClose(b.g[0]!, a.g[0]!, tolFor('float32'), `dpred ${kind}`);
      assertClose(b.g[1]!, a.g[1]!, tolFor('float32'), `dtarget ${kind}`);
    }
  });

  it('rejects bad input, naming the argument', () => {
    const pred = rand([2, 3, 4], 'float32');
    const target = rand([2, 3, 4], 'float32');
    const mask = randMask(2, 3, 0.5);
    expect(() => maskedPatchLoss(rand([6, 4], 'float32'), target, mask)).toThrow(/Expected a 3-D tensor for pred/);
    expect(() => maskedPatchLoss(tensor([1], [1, 1, 1], 'int32'), target, mask)).toThrow(/for pred/);
    expect(() => maskedPatchLoss(pred, rand([2, 3, 5], 'float32'), mask)).toThrow(/Expected shape \[2, 3, 4\] for target/);
    expect(() => maskedPatchLoss(pred, rand([2, 3, 4], 'float64'), mask)).toThrow(/Expected a float32 tensor for target/);
    expect(() => maskedPatchLoss(pred, target, tensor([1, 0, 1, 0, 1, 0], [2, 3], 'float32'))).toThrow(/Expected a uint8 tensor for mask/);
    expect(() => maskedPatchLoss(pred, target, randMask(3, 2, 0.5))).toThrow(/Expected shape \[2, 3\] for mask/);
    expect(() => maskedPatchLoss(pred, target, tensor([0, 1, 2, 0, 0, 0], [2, 3], 'uint8'))).toThrow(
      /Expected mask values 0 or 1 for mask but received 2 at position 2/,
    );
    expect(() => maskedPatchLoss(pred, target, mask, { kind: 'l2' as PatchLossKind })).toThrow(/for kind/);
    expect(() => maskedPatchLoss(pred, target, mask, { eps: 0 })).toThrow(/for eps/);
    expect(() => maskedPatchLoss(rand([2, 3, 1], 'float32'), rand([2, 3, 1], 'float32'), mask, { normPix: true })).toThrow(
      /at least 2 pixels per patch with normPix .* for pred/,
    );
  });

  it('the native binding checks its arguments too', () => {
    const n = native();
    const pred = rand([2, 3, 4], 'float64');
    const target = rand([2, 3, 4], 'float64');
    const mask = randMask(2, 3, 0.5);
    expect(() => n.maskedPatchLoss(pred.native, target.native, randMask(2, 4, 0.5).native, {})).toThrow(
      /maskedPatchLoss: Expected shape \[2, 3\] for mask but received uint8 tensor \[2, 4\]/,
    );
    expect(() => n.maskedPatchLoss(pred.native, rand([2, 3, 3], 'float64').native, mask.native, {})).toThrow(/for target/);
    expect(() => n.maskedPatchLoss(pred.native, target.native, mask.native, { kind: 'huber' as 'l1' })).toThrow(/for kind/);
    expect(() => n.maskedPatchLossBackward(1, pred.native, target.native, tensor([3, 0, 0, 0, 0, 0], [2, 3], 'uint8').native, {}, true, false)).toThrow(
      /maskedPatchLossBackward: Expected mask values 0 or 1 for mask/,
    );
    expect(() => n.maskedPatchLoss(rand([2, 3, 0], 'float64').native, rand([2, 3, 0], 'float64').native, mask.native, {})).toThrow(
      /non-empty last dimension .* for pred/,
    );
  });
});

describe('maskedCosine', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const [B, L, D] of [[3, 7, 5], [2, 49, 16], [4, 2, 1]] as Array<[number, number, number]>)
      it(`matches the mean over (masked, visible) pairs: ${dtype} [${B}, ${L}, ${D}]`, () => {
        const x = rand([B, L, D], dtype);
        const mask = randMask(B, L, 0.5);
        const got = maskedCosine(x, mask).item();
        assertClose([got], [cosineRef(x.toArray(), mask.toArray(), B, L, D, 1e-8)], tolFor(dtype), 'maskedCosine');
      });

  it('backward matches finite differences (float64)', () => {
    const mask = tensor([1, 0, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1], [2, 7], 'uint8');
    gradcheck(([x]) => maskedCosine(x!, mask), [randLeaf([2, 7, 5], rng)]);
  });

  it('backward matches finite differences where norms are clamped to eps', () => {
    // eps 0.5: the tokens scaled to norms below it take the x/eps branch.
    const x = randLeaf([2, 6, 3], rng);
    const vals = x.toArray() as Float64Array;
    for (let i = 0; i < 12; i += 3) for (let k = 0; k < 3; k++) vals[i * 3 + k]! *= 0.05;
    x.native.write(vals);
    const mask = tensor([1, 1, 0, 0, 1, 0, 0, 1, 1, 0, 1, 0], [2, 6], 'uint8');
    gradcheck(([t]) => maskedCosine(t!, mask, 0.5), [x]);
    assertClose([maskedCosine(x, mask, 0.5).item()], [cosineRef(x.toArray(), mask.toArray(), 2, 6, 3, 0.5)], tolFor('float64'), 'clamped');
  });

  it('is 1 for identical vectors and −1 for opposite ones', () => {
    const v = [0.3, -1.2, 2.5, 0.7];
    const L = 5;
    const mask = tensor([1, 0, 1, 1, 0], [1, L], 'uint8');
    const same = tensor(Array.from({ length: L }, (_, i) => v.map((c) => c * (i + 1))).flat(), [1, L, 4], 'float64');
    assertClose([maskedCosine(same, mask).item()], [1], tolFor('float64'), 'identical');
    const opposite = tensor(Array.from({ length: L }, (_, i) => v.map((c) => (mask.toArray()[i] ? c : -2 * c))).flat(), [1, L, 4], 'float64');
    assertClose([maskedCosine(opposite, mask).item()], [-1], tolFor('float64'), 'opposite');
  });

  it('is 0 with zero gradient when every token, or none, is masked; averages only images with both', () => {
    const x = randLeaf([2, 4, 3], rng);
    for (const v of [0, 1] as const) {
      const r = grads(() => maskedCosine(x, constMask(2, 4, v)), [x]);
      expect(r.loss).toBe(0);
      expectAllZero('dx', r.g[0]!);
    }
    // Image 0 is fully masked, so only image 1 counts and image 0 gets no gradient.
    const mask = tensor([1, 1, 1, 1, 0, 1, 0, 1], [2, 4], 'uint8');
    const r = grads(() => maskedCosine(x, mask), [x]);
    const img1 = cosineRef((x.toArray() as Float64Array).slice(12), mask.toArray().slice(4), 1, 4, 3, 1e-8);
    assertClose([r.loss], [img1], tolFor('float64'), 'one image');
    expectAllZero('dx of image 0', r.g[0]!.slice(0, 12));
  });

  it('rejects bad input, naming the argument', () => {
    const x = rand([2, 3, 4], 'float32');
    expect(() => maskedCosine(rand([2, 3], 'float32'), randMask(2, 3, 0.5))).toThrow(/Expected a 3-D tensor for x/);
    expect(() => maskedCosine(x, randMask(2, 4, 0.5))).toThrow(/Expected shape \[2, 3\] for mask/);
    expect(() => maskedCosine(x, randMask(2, 3, 0.5), -1)).toThrow(/for eps/);
    expect(() => maskedCosine(rand([2, 3, 0], 'float32'), randMask(2, 3, 0.5))).toThrow(/non-empty last dimension for x/);
    expect(() => native().maskedCosine(x.native, tensor([0, 1, 0, 7, 0, 1], [2, 3], 'uint8').native, 1e-8)).toThrow(
      /maskedCosine: Expected mask values 0 or 1 for mask/,
    );
    expect(() => native().maskedCosineBackward(1, x.native, randMask(2, 3, 0.5).native, 0)).toThrow(/maskedCosineBackward: .* for eps/);
  });
});

describe('rankingLoss', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const [B, L] of [[3, 7], [2, 49], [1, 2]] as Array<[number, number]>)
      it(`matches the pairwise BCE reference: ${dtype} [${B}, ${L}]`, () => {
        const pred = rand([B, L], dtype, -3, 3);
        const target = rand([B, L], dtype, 0, 2);
        const mask = B * L === 2 ? constMask(1, 2, 1) : randMask(B, L, 0.7);
        const got = rankingLoss(pred, target, mask).item();
        assertClose([got], [rankingRef(pred.toArray(), target.toArray(), mask.toArray(), B, L)], tolFor(dtype), 'rankingLoss');
      });

  it('leaves tied pairs out of the sum and the count: all-tied targets give 0 and no gradient', () => {
    const pred = tensor([0.4, -1.3, 2.2, 0.7], [1, 4], 'float64');
    pred.requiresGrad = true;
    const r = grads(() => rankingLoss(pred, tensor([1, 1, 1, 1], [1, 4], 'float64'), constMask(1, 4, 1)), [pred]);
    expect(r.loss).toBe(0);
    expectAllZero('dpred', r.g[0]!);
    expect(native().rankingLoss(pred.native, tensor([1, 1, 1, 1], [1, 4], 'float64').native, constMask(1, 4, 1).native).count).toBe(0);
    // Masked 0, 2, 3 with targets 1, 2, 1: two untied pairs and one tied.
    const one = rankingLoss(pred, tensor([1, 1, 2, 1], [1, 4], 'float64'), tensor([1, 0, 1, 1], [1, 4], 'uint8'));
    // Pairs (0,2) z = 1.8, y = 1 and (2,3) z = −1.5, y = 0; (0,3) is tied and left out.
    assertClose([one.item()], [(Math.log1p(Math.exp(-1.8)) + Math.log1p(Math.exp(-1.5))) / 2], tolFor('float64'), 'one tie left out');
  });

  it('counts the untied masked pairs of the whole batch (the normaliser), NaN targets comparing with nothing', () => {
    const target = tensor([0.5, 0.2, 0.5, 0.9, 0.2, 0.1, 0.3, 0.3, 0.3, NaN, 0.8, 0.3], [2, 6], 'float64');
    const mask = tensor([1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1], [2, 6], 'uint8');
    // Image 0: masked targets 0.5, 0.2, 0.5, 0.2, 0.1 → 10 pairs less 2 ties = 8.
    // Image 1: masked 0.3, 0.3, NaN, 0.8, 0.3 → the 4 comparable give 6 pairs less 3 ties = 3.
    const r = native().rankingLoss(rand([2, 6], 'float64').native, target.native, mask.native);
    expect(r.count).toBe(11);
  });

  it('handles ties among other targets, and matches finite differences (float64)', () => {
    const target = tensor([0.5, 0.2, 0.5, 0.9, 0.2, 0.1, 0.5, 0.3, 0.3, 0.3, 0.8, 0.1], [2, 6], 'float64');
    const mask = tensor([1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1], [2, 6], 'uint8');
    const pred = randLeaf([2, 6], rng);
    assertClose([rankingLoss(pred, target, mask).item()], [rankingRef(pred.toArray(), target.toArray(), mask.toArray(), 2, 6)], tolFor('float64'), 'ties');
    gradcheck(([p]) => rankingLoss(p!, target, mask), [pred]);
    const target2 = randLeaf([3, 9], rng, false);
    const mask2 = randMask(3, 9, 0.6);
    gradcheck(([p]) => rankingLoss(p!, target2, mask2), [randLeaf([3, 9], rng)]);
  });

  it('is stable at large logits', () => {
    const pred = tensor([1000, -1000, 0], [1, 3], 'float64');
    pred.requiresGrad = true;
    const target = tensor([1, 2, 3], [1, 3], 'float64');
    // pairs (0,1): z = −2000, y = 1 → 2000; (0,2): z = −1000, y = 1 → 1000; (1,2): z = 1000, y = 1 → 0.
    // dBCE/dz = σ(z) − y is −1, −1, 0, and z = pred_j − pred_i.
    const r = grads(() => rankingLoss(pred, target, constMask(1, 3, 1)), [pred]);
    assertClose([r.loss], [1000], tolFor('float64'), 'loss');
    assertClose(r.g[0]!, [2 / 3, -1 / 3, -1 / 3], tolFor('float64'), 'dpred');
  });

  it('is 0 with zero gradient without two masked patches in any image; the target gets no gradient', () => {
    const pred = randLeaf([2, 5], rng);
    const target = randLeaf([2, 5], rng);
    const mask = tensor([0, 0, 1, 0, 0, 0, 0, 0, 0, 1], [2, 5], 'uint8');
    const r = grads(() => rankingLoss(pred, target, mask), [pred, target]);
    expect(r.loss).toBe(0);
    expectAllZero('dpred', r.g[0]!);
    // 0% masked: no pair at all.
    const r0 = grads(() => rankingLoss(pred, target, constMask(2, 5, 0)), [pred, target]);
    expect(r0.loss).toBe(0);
    expectAllZero('dpred (0% masked)', r0.g[0]!);
    const r2 = grads(() => rankingLoss(pred, target, constMask(2, 5, 1)), [pred, target]);
    expect(r2.loss).toBeGreaterThan(0);
    expect(target.grad).toBeNull();
  });

  it('rejects bad input, naming the argument', () => {
    const pred = rand([2, 3], 'float32');
    const mask = randMask(2, 3, 0.5);
    expect(() => rankingLoss(rand([2, 3, 1], 'float32'), pred, mask)).toThrow(/Expected a 2-D tensor for pred/);
    expect(() => rankingLoss(pred, rand([2, 3], 'float64'), mask)).toThrow(/Expected a float32 tensor for target/);
    expect(() => rankingLoss(pred, rand([3, 2], 'float32'), mask)).toThrow(/Expected shape \[2, 3\] for target/);
    expect(() => rankingLoss(pred, pred, tensor([1, 1, 1, 0, 0, 0], [2, 3], 'int32'))).toThrow(/for mask/);
    expect(() => native().rankingLoss(pred.native, rand([2, 4], 'float32').native, mask.native)).toThrow(/rankingLoss: .* for target/);
    expect(() => native().rankingLossBackward(1, pred.native, pred.native, tensor([0, 255, 0, 0, 0, 0], [2, 3], 'uint8').native)).toThrow(
      /rankingLossBackward: Expected mask values 0 or 1 for mask but received 255/,
    );
  });
});

describe('thread-count independence', () => {
  it('every loss and gradient is bitwise identical with 1 and several threads', () => {
    const threads = runtimeInfo().threads;
    const pred = rand([6, 49, 48], 'float32');
    pred.requiresGrad = true;
    const target = rand([6, 49, 48], 'float32');
    const x = rand([6, 49, 32], 'float32');
    x.requiresGrad = true;
    const lossPred = rand([6, 49], 'float32');
    lossPred.requiresGrad = true;
    const lossTarget = rand([6, 49], 'float32', 0, 1);
    const mask = randMask(6, 49, 0.75);
    const runAll = (): number[][] =>
      [
        grads(() => maskedPatchLoss(pred, target, mask, { normPix: true }).loss, [pred]),
        grads(() => maskedCosine(x, mask), [x]),
        grads(() => rankingLoss(lossPred, lossTarget, mask), [lossPred]),
      ].flatMap((r) => [[r.loss], Array.from(r.g[0]!)]);
    try {
      setNumThreads(1);
      const one = runAll();
      setNumThreads(Math.max(2, threads));
      expect(runAll()).toEqual(one);
    } finally {
      setNumThreads(threads);
    }
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on cuda against float64 on the CPU by the tolerance rule, bfloat16 by
// the bf16 rule against a naive bf16 version (inputs rounded to bf16, the
// float64 CPU op, its output rounded to bf16), exact ops bit for bit, odd sizes,
// nothing and everything masked, the backwards, and the CPU's error messages.

describeCuda('mim losses', () => {
  const masks = (B: number, L: number): [string, number[]][] => [
    ['random', maskOf(B * L, 0.6)],
    ['none masked', new Array<number>(B * L).fill(0)],
    ['all masked', new Array<number>(B * L).fill(1)],
  ];

  it('maskedPatchLoss and its backward (mse, l1, normPix), every mask', () => {
    for (const [B, L, P] of [[2, 5, 48], [3, 7, 37], [1, 1, 2]]) {
      const shape = [B, L, P];
      const pred = uniform(B * L * P);
      const target = uniform(B * L * P, -2, 3);
      for (const [mname, m] of masks(B, L)) {
        for (const opts of [{ kind: 'mse' as const }, { kind: 'l1' as const }, { kind: 'mse' as const, normPix: true }, { kind: 'l1' as const, normPix: true, eps: 1e-4 }]) {
          const label = `${JSON.stringify(opts)} ${mname} [${shape}]`;
          const ref = native().maskedPatchLoss(cpu(pred, shape), cpu(target, shape), cpu(m, [B, L], 'uint8'), opts);
          const f = native().maskedPatchLoss(dev(pred, shape, 'float32'), dev(target, shape, 'float32'), dev(m, [B, L], 'uint8'), opts);
          expect(f.count).toBe(ref.count);
          expect(f.loss.shape).toEqual([]);
          expect(f.loss.dtype).toBe('float32');
          close(`loss ${label}`, f.loss, ref.loss);
          close(`perPatch ${label}`, f.perPatch, ref.perPatch);
          const gl = 0.7;
          const rb = native().maskedPatchLossBackward(gl, cpu(pred, shape), cpu(target, shape), cpu(m, [B, L], 'uint8'), opts, true, true);
          const fb = native().maskedPatchLossBackward(gl, dev(pred, shape, 'float32'), dev(target, shape, 'float32'), dev(m, [B, L], 'uint8'), opts, true, true);
          close(`dpred ${label}`, fb[0]!, rb[0]!);
          close(`dtarget ${label}`, fb[1]!, rb[1]!);

          const hb = native().maskedPatchLoss(dev(pred, shape, 'bfloat16'), dev(target, shape, 'bfloat16'), dev(m, [B, L], 'uint8'), opts);
          const nv = native().maskedPatchLoss(cpu(roundBf16(pred), shape), cpu(roundBf16(target), shape), cpu(m, [B, L], 'uint8'), opts);
          expect(hb.loss.dtype).toBe('bfloat16');
          closeBf16Scalar(`loss bf16 ${label}`, get(hb.loss)[0]!, get(ref.loss)[0]!, bf16(get(nv.loss)[0]!));
          assertBf16(`perPatch bf16 ${label}`, get(hb.perPatch), get(ref.perPatch), roundBf16(get(nv.perPatch)));
          const hbb = native().maskedPatchLossBackward(gl, dev(pred, shape, 'bfloat16'), dev(target, shape, 'bfloat16'), dev(m, [B, L], 'uint8'), opts, true, true);
          const nb = native().maskedPatchLossBackward(gl, cpu(roundBf16(pred), shape), cpu(roundBf16(target), shape), cpu(m, [B, L], 'uint8'), opts, true, true);
          assertBf16(`dpred bf16 ${label}`, get(hbb[0]!), get(rb[0]!), roundBf16(get(nb[0]!)));
          assertBf16(`dtarget bf16 ${label}`, get(hbb[1]!), get(rb[1]!), roundBf16(get(nb[1]!)));
        }
      }
    }
  });

  itOnDevice('maskedPatchLoss checks the mask on the device tensors as the CPU does', () => {
    const shape = [1, 2, 4];
    const v = uniform(8);
    const bad = [0, 2];
    expect(thrown(() => native().maskedPatchLoss(dev(v, shape, 'float32'), dev(v, shape, 'float32'), dev(bad, [1, 2], 'uint8'), {}))).toBe(
      thrown(() => native().maskedPatchLoss(cpu(v, shape, 'float32'), cpu(v, shape, 'float32'), cpu(bad, [1, 2], 'uint8'), {})),
    );
    // A mask left on the CPU is refused: every tensor argument must be on one device.
    expect(thrown(() => native().maskedPatchLoss(dev(v, shape, 'float32'), dev(v, shape, 'float32'), cpu([0, 1], [1, 2], 'uint8'), {}))).toMatch(/one device/);
  });

  it('maskedCosine and its backward, with clamped norms and images of one kind only', () => {
    const B = 5, L = 9, D = 40;
    const x = uniform(B * L * D);
    for (let k = 0; k < D; k++) x[(1 * L + 2) * D + k] = 0; // a zero token: ‖x‖ < eps
    for (let k = 0; k < D; k++) x[(2 * L + 4) * D + k] = Math.fround(x[(2 * L + 4) * D + k]! * 1e-9); // ‖x‖ ≈ 4e-9 < eps = 1e-8
    const m = maskOf(B * L, 0.5);
    for (let i = 0; i < L; i++) {
      m[3 * L + i] = 1; // image 3: all masked
      m[4 * L + i] = 0; // image 4: all visible
    }
    m[1 * L + 2] = 1;
    for (const [mname, mk] of [['mixed', m], ...masks(B, L)] as [string, number[]][]) {
      for (const eps of [1e-8, 0.5]) {
        const label = `${mname} eps ${eps}`;
        const ref = native().maskedCosine(cpu(x, [B, L, D]), cpu(mk, [B, L], 'uint8'), eps);
        const f = native().maskedCosine(dev(x, [B, L, D], 'float32'), dev(mk, [B, L], 'uint8'), eps);
        expect(f.count).toBe(ref.count);
        close(`cosine ${label}`, f.loss, ref.loss);
        const rb = native().maskedCosineBackward(1.3, cpu(x, [B, L, D]), cpu(mk, [B, L], 'uint8'), eps);
        close(`cosine dx ${label}`, native().maskedCosineBackward(1.3, dev(x, [B, L, D], 'float32'), dev(mk, [B, L], 'uint8'), eps), rb);

        const hb = native().maskedCosine(dev(x, [B, L, D], 'bfloat16'), dev(mk, [B, L], 'uint8'), eps);
        const nv = native().maskedCosine(cpu(roundBf16(x), [B, L, D]), cpu(mk, [B, L], 'uint8'), eps);
        closeBf16Scalar(`cosine bf16 ${label}`, get(hb.loss)[0]!, get(ref.loss)[0]!, bf16(get(nv.loss)[0]!));
        const hbb = native().maskedCosineBackward(1.3, dev(x, [B, L, D], 'bfloat16'), dev(mk, [B, L], 'uint8'), eps);
        const nb = native().maskedCosineBackward(1.3, cpu(roundBf16(x), [B, L, D]), cpu(mk, [B, L], 'uint8'), eps);
        assertBf16(`cosine dx bf16 ${label}`, get(hbb), get(rb), roundBf16(get(nb)));
      }
    }
  });

  it('rankingLoss and its backward, with tied targets', () => {
    for (const [B, L] of [[1, 1], [3, 20], [2, 197]]) {
      const pred = uniform(B * L, -3, 3);
      const target = Array.from({ length: B * L }, () => Math.floor(rnd() * 5) / 5); // ties: left out of the sum and the count
      for (const [mname, m] of masks(B, L)) {
        const label = `${mname} [${B}, ${L}]`;
        const ref = native().rankingLoss(cpu(pred, [B, L]), cpu(target, [B, L]), cpu(m, [B, L], 'uint8'));
        const f = native().rankingLoss(dev(pred, [B, L], 'float32'), dev(target, [B, L], 'float32'), dev(m, [B, L], 'uint8'));
        expect(f.count).toBe(ref.count);
        close(`ranking ${label}`, f.loss, ref.loss);
        const rb = native().rankingLossBackward(0.9, cpu(pred, [B, L]), cpu(target, [B, L]), cpu(m, [B, L], 'uint8'));
        close(`ranking dpred ${label}`, native().rankingLossBackward(0.9, dev(pred, [B, L], 'float32'), dev(target, [B, L], 'float32'), dev(m, [B, L], 'uint8')), rb);

        // bf16 targets keep their ties (multiples of 1/5 round to bf16 consistently).
        const hb = native().rankingLoss(dev(pred, [B, L], 'bfloat16'), dev(target, [B, L], 'bfloat16'), dev(m, [B, L], 'uint8'));
        const nv = native().rankingLoss(cpu(roundBf16(pred), [B, L]), cpu(roundBf16(target), [B, L]), cpu(m, [B, L], 'uint8'));
        const refb = native().rankingLoss(cpu(pred, [B, L]), cpu(roundBf16(target), [B, L]), cpu(m, [B, L], 'uint8'));
        // Labels come from the targets: the reference takes the bf16 targets too, since rounding may create or break a tie.
        closeBf16Scalar(`ranking bf16 ${label}`, get(hb.loss)[0]!, get(refb.loss)[0]!, bf16(get(nv.loss)[0]!));
        const rbb = native().rankingLossBackward(0.9, cpu(pred, [B, L]), cpu(roundBf16(target), [B, L]), cpu(m, [B, L], 'uint8'));
        const hbb = native().rankingLossBackward(0.9, dev(pred, [B, L], 'bfloat16'), dev(target, [B, L], 'bfloat16'), dev(m, [B, L], 'uint8'));
        const nb = native().rankingLossBackward(0.9, cpu(roundBf16(pred), [B, L]), cpu(roundBf16(target), [B, L]), cpu(m, [B, L], 'uint8'));
        assertBf16(`ranking dpred bf16 ${label}`, get(hbb), get(rbb), roundBf16(get(nb)));
      }
    }
  });
});
