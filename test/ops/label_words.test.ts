/**
 * MVP's label-word scoring. labelWordLogits against the naive unfused chain
 * (the full [M, V] logits of linear(h, W, b), then its word columns picked by
 * a one-hot [V, K] matmul): value and every gradient at odd sizes, repeated
 * words, with and without bias, float32 and float64; float64 finite
 * differences; the bytes it keeps. verbalizerPool against a plain-TypeScript
 * max/mean and its hand-written gradient, ties, NaN, finite differences, and
 * the two ops chained into a loss. Bad input at both boundaries. CUDA against
 * the CPU (skipped without a GPU).
 */
import { describe, expect, it } from 'vitest';
import {
  backward, crossEntropy, labelWordLogits, linear, liveBytes, matmul, mul, reshape, Rng, scope, sum, tensor, verbalizerPool,
  type DType, type Tensor,
} from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import { assertBf16, describeCuda, get, put, roundBf16, bf16 } from '../helpers/cuda-harness.js';
import { cpu64, F32, mm, vals } from '../helpers/cuda-linalg.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

const rng = new Rng(4242);

function rand(shape: number[], dtype: DType, requiresGrad = true): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = tensor(Array.from({ length: n }, () => 2 * rng.uniform() - 1), shape, dtype);
  t.requiresGrad = requiresGrad;
  return t;
}

/** The one-hot selection matrix [V, K]: column k is 1 at row words[k]. */
function selection(words: number[], V: number, dtype: DType): Tensor {
  const K = words.length;
  const s = new Array<number>(V * K).fill(0);
  words.forEach((w, k) => (s[w * K + k] = 1));
  return tensor(s, [V, K], dtype);
}

interface Grads {
  out: Float64Array;
  dh: Float64Array;
  dw: Float64Array;
  db: Float64Array | null;
}

/** out = f(h, w, b); backward of Σ out ⊙ weights; the output and the three gradients. */
function run(f: (h: Tensor, w: Tensor, b: Tensor | null) => Tensor, h: Tensor, w: Tensor, b: Tensor | null, weights: Tensor): Grads {
  return scope(() => {
    for (const t of [h, w, b]) {
      if (!t) continue;
      t.grad?.dispose();
      t.grad = null;
    }
    const out = f(h, w, b);
    backward(sum(mul(out, weights)));
    const read = (t: Tensor | null): Float64Array | null => (t ? Float64Array.from(t.grad!.toArray()) : null);
    return { out: Float64Array.from(out.toArray()), dh: read(h)!, dw: read(w)!, db: read(b) };
  });
}

function compareWithFullLogits(dtype: DType, M: number, D: number, V: number, words: number[], withBias: boolean): void {
  const K = words.length;
  const tol = tolFor(dtype);
  const h = rand([M, D], dtype);
  const w = rand([V, D], dtype);
  const b = withBias ? rand([V], dtype) : null;
  const ids = tensor(words, [K], 'int32');
  const sel = selection(words, V, dtype);
  const weights = rand([M, K], dtype, false);
  const fused = run((h, w, b) => labelWordLogits(h, w, b, ids), h, w, b, weights);
  const naive = run((h, w, b) => matmul(linear(h, w, b), sel), h, w, b, weights);
  const tag = `${dtype} M=${M} D=${D} V=${V} K=${K} bias=${withBias}`;
  assertClose(fused.out, naive.out, tol, `logits ${tag}`);
  assertClose(fused.dh, naive.dh, tol, `dh ${tag}`);
  assertClose(fused.dw, naive.dw, tol, `dW ${tag}`);
  if (b) assertClose(fused.db!, naive.db!, tol, `db ${tag}`);
  // Rows of W (and entries of b) that are no label word get exactly zero.
  const isWord = new Set(words);
  for (let v = 0; v < V; v++) {
    if (isWord.has(v)) continue;
    expect(fused.dw.slice(v * D, (v + 1) * D).every((x) => x === 0)).toBe(true);
    if (b) expect(fused.db![v]).toBe(0);
  }
  for (const t of [h, w, b, ids, sel, weights]) t?.dispose();
}

for (const dtype of ['float32', 'float64'] as const) {
  describe(`labelWordLogits equals the word columns of linear(h, W, b) in ${dtype}`, () => {
    it('one row, one word, D = 1, V = 1', () => {
      compareWithFullLogits(dtype, 1, 1, 1, [0], true);
      compareWithFullLogits(dtype, 1, 1, 1, [0], false);
    });
    it('odd sizes (M=7 D=13 V=97, K=5) with a word listed twice: its gradient rows add up', () => {
      compareWithFullLogits(dtype, 7, 13, 97, [96, 3, 40, 3, 0], true);
      compareWithFullLogits(dtype, 7, 13, 97, [96, 3, 40, 3, 0], false);
    });
    it('M=33 D=40 V=203, K=17 words spread over the vocabulary', () => {
      const words = Array.from({ length: 17 }, (_, k) => (k * 37 + 5) % 203);
      compareWithFullLogits(dtype, 33, 40, 203, words, true);
    });
    it('a word listed three times, M = 129 rows (more than one pool task)', () => {
      compareWithFullLogits(dtype, 129, 24, 50, [7, 7, 1, 7, 49], true);
    });
  });
}

describe('labelWordLogits: no rows', () => {
  it('M = 0 gives [0, K] logits and zero weight and bias gradients', () => {
    const h = rand([0, 6], 'float64');
    const w = rand([9, 6], 'float64');
    const b = rand([9], 'float64');
    const words = tensor([2, 8], [2], 'int32');
    const out = labelWordLogits(h, w, b, words);
    expect(out.shape).toEqual([0, 2]);
    backward(sum(out));
    expect(w.grad!.toArray().every((x) => x === 0)).toBe(true);
    expect(b.grad!.toArray().every((x) => x === 0)).toBe(true);
    expect(h.grad!.shape).toEqual([0, 6]);
  });
});

describe('labelWordLogits: finite-difference gradcheck (float64)', () => {
  const leaf = (...shape: number[]): Tensor => randLeaf(shape, rng);
  it('h, W and b, with a repeated word', () => {
    const words = tensor([4, 1, 4], [3], 'int32');
    gradcheck(([h, w, b]) => labelWordLogits(h!, w!, b!, words), [leaf(5, 3), leaf(6, 3), leaf(6)]);
  });
  it('without bias, K = 1 and M = 1', () => {
    gradcheck(([h, w]) => labelWordLogits(h!, w!, null, tensor([2], [1], 'int32')), [leaf(1, 4), leaf(3, 4)]);
  });
});

describe('labelWordLogits: memory', () => {
  it('keeps only the [M, K] output between forward and backward, never the [M, V] logits', () => {
    const [M, D, V, K] = [64, 32, 5000, 6];
    const h = rand([M, D], 'float32');
    const w = rand([V, D], 'float32');
    const b = rand([V], 'float32');
    const words = tensor([10, 4999, 0, 2500, 17, 10], [K], 'int32');
    const before = liveBytes();
    const out = labelWordLogits(h, w, b, words);
    expect(liveBytes() - before).toBe(M * K * 4);
    backward(sum(out));
    expect(h.grad!.shape).toEqual([M, D]);
    for (const t of [out, h, w, b, words]) t.dispose();
  });
});

// ---- verbalizerPool ----

/** Plain TypeScript: out[b, c] = mean_t max_{k in c} s[b, t, k]; pick[b, t, c] = the first max's k. */
function poolRef(s: ArrayLike<number>, B: number, T: number, K: number, classOf: number[], C: number): { out: Float64Array; pick: Int32Array } {
  const out = new Float64Array(B * C);
  const pick = new Int32Array(B * T * C).fill(-1);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let k = 0; k < K; k++) {
        const c = classOf[k]!;
        const i = (b * T + t) * C + c;
        const x = s[(b * T + t) * K + k]!;
        const cur = pick[i]! < 0 ? null : s[(b * T + t) * K + pick[i]!]!;
        if (cur === null || x > cur || (Number.isNaN(x) && !Number.isNaN(cur))) pick[i] = k;
      }
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++) {
      let acc = 0;
      for (let t = 0; t < T; t++) acc += s[(b * T + t) * K + pick[(b * T + t) * C + c]!]!;
      out[b * C + c] = acc / T;
    }
  return { out, pick };
}

function poolGradRef(g: ArrayLike<number>, pick: Int32Array, B: number, T: number, K: number, C: number): Float64Array {
  const d = new Float64Array(B * T * K);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++)
      for (let c = 0; c < C; c++) d[(b * T + t) * K + pick[(b * T + t) * C + c]!] = g[b * C + c]! / T;
  return d;
}

function comparePool(dtype: DType, B: number, T: number, K: number, classOf: number[], C: number, values?: number[]): void {
  const scores = values ? tensor(values, [B, T, K], dtype) : rand([B, T, K], dtype);
  scores.requiresGrad = true;
  const cls = tensor(classOf, [K], 'int32');
  const gv = Array.from({ length: B * C }, () => 2 * rng.uniform() - 1);
  const g = tensor(gv, [B, C], dtype);
  const sv = scores.toArray();
  const ref = poolRef(sv, B, T, K, classOf, C);
  scope(() => {
    const out = verbalizerPool(scores, cls, C);
    expect(out.shape).toEqual([B, C]);
    assertClose(out.toArray(), ref.out, tolFor(dtype), `pooled ${dtype} B=${B} T=${T} K=${K} C=${C}`);
    backward(sum(mul(out, g)));
  });
  // The gradient is a copy of g/T at the picks: compare exactly what the
  // kernel's own dtype rounds (g[b, c] / T in that dtype).
  const want = poolGradRef(g.toArray(), ref.pick, B, T, K, C);
  assertClose(scores.grad!.toArray(), want, tolFor(dtype), `dscores ${dtype}`);
  for (const t of [scores, cls, g]) t.dispose();
}

for (const dtype of ['float32', 'float64'] as const) {
  describe(`verbalizerPool equals a plain-TypeScript max over words and mean over templates in ${dtype}`, () => {
    it('B=5 T=3 K=7 C=3, classes of 3, 1 and 3 words interleaved', () => comparePool(dtype, 5, 3, 7, [0, 2, 1, 0, 2, 2, 0], 3));
    it('one template, one word per class (T = 1, K = C = 4)', () => comparePool(dtype, 6, 1, 4, [3, 1, 0, 2], 4));
    it('one class holding every word, B = 1', () => comparePool(dtype, 1, 4, 5, [0, 0, 0, 0, 0], 1));
    it('B = 301 examples (several pool tasks), T = 4, K = 9, C = 2', () => comparePool(dtype, 301, 4, 9, [1, 0, 1, 0, 0, 1, 1, 0, 1], 2));
    it('B = 0 gives [0, C]', () => comparePool(dtype, 0, 2, 3, [0, 1, 1], 2));
    it('ties pick the first word of the class, and the gradient goes there only', () => {
      // Class 0 = words 0, 2, 3; class 1 = words 1, 4. Row 0: words 2 and 3 tie at 5; row 1: words 1 and 4 tie at 2.
      comparePool(dtype, 1, 2, 5, [0, 1, 0, 0, 1], 2, [1, -1, 5, 5, -2, 0, 2, 0, 0, 2]);
      const s = tensor([1, -1, 5, 5, -2], [1, 1, 5], dtype);
      s.requiresGrad = true;
      backward(sum(verbalizerPool(s, tensor([0, 1, 0, 0, 1], [5], 'int32'), 2)));
      expect(Array.from(s.grad!.toArray())).toEqual([0, 1, 1, 0, 0]);
    });
  });
}

describe('verbalizerPool: NaN propagates, as torch.max does', () => {
  it('a NaN word score makes its class NaN even when it is not the first word', () => {
    const s = tensor([0.5, 3, NaN, -1, 2, 1], [1, 2, 3], 'float64');
    const out = verbalizerPool(s, tensor([0, 1, 0], [3], 'int32'), 2).toArray();
    expect(Number.isNaN(out[0]!)).toBe(true);
    expect(out[1]).toBe((3 + 2) / 2);
  });
});

describe('verbalizerPool: finite-difference gradcheck (float64)', () => {
  it('scores [3, 2, 6] into 3 classes', () => {
    const cls = tensor([2, 0, 1, 0, 2, 2], [6], 'int32');
    gradcheck(([s]) => verbalizerPool(s!, cls, 3), [randLeaf([3, 2, 6], rng)]);
  });
  it('MVP end to end: labelWordLogits at B·T [MASK] rows, pooled, cross-entropy', () => {
    const [B, T, D, V] = [3, 2, 4, 11];
    const words = tensor([7, 2, 9, 2, 0], [5], 'int32');  // word 2 serves two classes
    const cls = tensor([0, 1, 2, 0, 1], [5], 'int32');
    const labels = tensor([2, 0, 1], [B], 'int32');
    gradcheck(
      ([h, w, b]) => crossEntropy(verbalizerPool(reshape(labelWordLogits(h!, w!, b!, words), [B, T, 5]), cls, 3), labels),
      [randLeaf([B * T, D], rng), randLeaf([V, D], rng), randLeaf([V], rng)],
    );
  });
});

// ---- bad input ----

function nativeError(f: () => unknown): { code?: string; op?: string; message?: string } {
  try {
    f();
  } catch (e) {
    return e as { code?: string; op?: string; message?: string };
  }
  throw new Error('expected an error');
}

describe('labelWordLogits: bad input', () => {
  const h = tensor(Array(6).fill(0.5), [2, 3]);
  const w = tensor(Array(15).fill(0.1), [5, 3]);
  const words = tensor([1, 4], [2], 'int32');
  it('TypeScript checks use the one wording', () => {
    expect(() => labelWordLogits(tensor([1, 2], [2], 'int32'), w, null, words)).toThrow(
      'Expected a float32 or float64 tensor for input but received int32 tensor [2]',
    );
    expect(() => labelWordLogits(tensor([1, 2, 3], [3]), w, null, words)).toThrow('Expected a 2-D tensor for input but received float32 tensor [3]');
    expect(() => labelWordLogits(h, tensor(Array(15).fill(0), [5, 3], 'float64'), null, words)).toThrow(
      'Expected a float32 tensor for weight but received float64 tensor [5, 3]',
    );
    expect(() => labelWordLogits(h, tensor(Array(20).fill(0), [5, 4]), null, words)).toThrow(
      'Expected shape [5, 3] for weight but received float32 tensor [5, 4]',
    );
    expect(() => labelWordLogits(h, w, tensor([0, 0, 0, 0], [4]), words)).toThrow('Expected shape [5] for bias but received float32 tensor [4]');
    expect(() => labelWordLogits(h, w, null, tensor([1, 2], [2]))).toThrow('Expected an int32 tensor for words but received float32 tensor [2]');
    expect(() => labelWordLogits(h, w, null, tensor([1, 2], [1, 2], 'int32'))).toThrow(
      'Expected a 1-D tensor for words but received int32 tensor [1, 2]',
    );
  });

  it('a word id out of [0, V) is an E_INDEX error naming the op, the argument and the position', () => {
    const err = nativeError(() => labelWordLogits(h, w, null, tensor([1, 5], [2], 'int32')));
    expect(err.code).toBe('E_INDEX');
    expect(err.op).toBe('labelWordLogits');
    expect(err.message).toBe('labelWordLogits: Expected indices in [0, 5) for words but received 5 at position 1');
    expect(() => labelWordLogits(h, w, null, tensor([-1, 0], [2], 'int32'))).toThrow(
      'labelWordLogits: Expected indices in [0, 5) for words but received -1 at position 0',
    );
  });

  it('the native binding checks shapes, dtypes and K >= 1 itself', () => {
    const n = native();
    expect(() => n.labelWordLogits(h.native, w.native, null, tensor([], [0], 'int32').native)).toThrow(
      'labelWordLogits: Expected at least one label word ([K] with K >= 1) for words but received int32 tensor [0]',
    );
    expect(() => n.labelWordLogits(h.native, tensor(Array(8).fill(0), [2, 4]).native, null, words.native)).toThrow(
      'labelWordLogits: Expected weight of shape [V, 3] with V >= 1 (input has float32 tensor [2, 3]) for weight but received float32 tensor [2, 4]',
    );
    expect(() => n.labelWordLogits(h.native, w.native, tensor([0, 0], [2]).native, words.native)).toThrow(
      'labelWordLogits: Expected shape [5] for bias but received float32 tensor [2]',
    );
    expect(() => n.labelWordLogits(tensor(Array(2).fill(0), [2, 1, 1]).native, w.native, null, words.native)).toThrow(
      'labelWordLogits: Expected a 2-D tensor for input but received float32 tensor [2, 1, 1]',
    );
    expect(() => n.labelWordLogits(tensor([], [2, 0]).native, w.native, null, words.native)).toThrow(
      'labelWordLogits: Expected a non-empty last dimension for input but received float32 tensor [2, 0]',
    );
    expect(() => n.labelWordLogitsBackward(tensor([0, 0, 0], [1, 3]).native, h.native, w.native, words.native, true, true, true)).toThrow(
      'labelWordLogitsBackward: Expected shape [2, 2] for grad but received float32 tensor [1, 3]',
    );
    expect(() =>
      n.labelWordLogitsBackward(tensor([0, 0, 0, 0], [2, 2], 'float64').native, h.native, w.native, words.native, true, true, true),
    ).toThrow('labelWordLogitsBackward: Expected a float32 tensor for grad but received float64 tensor [2, 2]');
    expect(() => n.labelWordLogitsBackward(tensor([0, 0, 0, 0], [2, 2]).native, h.native, w.native, tensor([0, 9], [2], 'int32').native, true, true, true)).toThrow(
      'labelWordLogitsBackward: Expected indices in [0, 5) for words but received 9 at position 1',
    );
  });
});

describe('verbalizerPool: bad input', () => {
  const s = tensor(Array(12).fill(0.5), [2, 2, 3]);
  it('TypeScript checks use the one wording', () => {
    expect(() => verbalizerPool(tensor(Array(6).fill(0), [2, 3]), tensor([0, 1, 1], [3], 'int32'), 2)).toThrow(
      'Expected a 3-D tensor for scores but received float32 tensor [2, 3]',
    );
    expect(() => verbalizerPool(s, tensor([0, 1], [2], 'int32'), 2)).toThrow('Expected shape [3] for classOf but received int32 tensor [2]');
    expect(() => verbalizerPool(s, tensor([0, 1, 1], [3]), 2)).toThrow('Expected an int32 tensor for classOf but received float32 tensor [3]');
    expect(() => verbalizerPool(s, tensor([0, 1, 1], [3], 'int32'), 0)).toThrow('Expected a positive integer for numClasses but received 0');
    expect(() => verbalizerPool(s, tensor([0, 1, 1], [3], 'int32'), 1.5)).toThrow('Expected a positive integer for numClasses but received 1.5');
  });

  it('class ids out of [0, C), a class without a word and more classes than words are errors naming classOf or numClasses', () => {
    const err = nativeError(() => verbalizerPool(s, tensor([0, 2, 1], [3], 'int32'), 2));
    expect(err.code).toBe('E_INDEX');
    expect(err.message).toBe('verbalizerPool: Expected indices in [0, 2) for classOf but received 2 at position 1');
    const gap = nativeError(() => verbalizerPool(s, tensor([0, 2, 0], [3], 'int32'), 3));
    expect(gap.code).toBe('E_VALUE');
    expect(gap.message).toBe('verbalizerPool: Expected at least one word for every class in [0, 3) for classOf but received no word of class 1');
    expect(() => verbalizerPool(s, tensor([0, 0, 1], [3], 'int32'), 3)).toThrow(
      'verbalizerPool: Expected at least one word for every class in [0, 3) for classOf but received no word of class 2',
    );
    expect(() => native().verbalizerPool(s.native, tensor([0, 1, 2], [3], 'int32').native, 5)).toThrow(
      'verbalizerPool: Expected at most K = 3 classes (each class needs a word) for numClasses but received 5',
    );
  });

  it('the native binding checks T, K >= 1, the gradient and numClasses itself', () => {
    const n = native();
    expect(() => n.verbalizerPool(tensor([], [2, 0, 3]).native, tensor([0, 1, 1], [3], 'int32').native, 2)).toThrow(
      'verbalizerPool: Expected scores [B, T, K] with at least one template (T) and one word (K) for scores but received float32 tensor [2, 0, 3]',
    );
    expect(() => n.verbalizerPool(s.native, tensor([0, 1, 1], [3], 'int32').native, 0)).toThrow(
      'verbalizerPool: Expected an integer in [1, 2147483647] for numClasses but received 0',
    );
    expect(() => n.verbalizerPoolBackward(tensor([0, 0], [1, 2]).native, s.native, tensor([0, 1, 1], [3], 'int32').native, 2)).toThrow(
      'verbalizerPoolBackward: Expected shape [2, 2] for grad but received float32 tensor [1, 2]',
    );
    expect(() => n.verbalizerPoolBackward(tensor([0, 0, 0, 0], [2, 2]).native, s.native, tensor([0, 0, 0], [3], 'int32').native, 2)).toThrow(
      'verbalizerPoolBackward: Expected at least one word for every class in [0, 2) for classOf but received no word of class 1',
    );
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on cuda vs float64 on the CPU; bfloat16 by the naive-bf16 rule.

describeCuda('labelWordLogits', () => {
  const [M, D, V] = [37, 40, 101];
  const words = [100, 3, 57, 3, 0, 64, 3];  // word 3 three times
  const K = words.length;
  const hv = vals(M * D, 41);
  const wv = vals(V * D, 42);
  const bv = vals(V, 43);
  const gv = vals(M * K, 44);

  for (const bias of [true, false])
    it(`float32 matches float64 on the CPU (bias ${bias}): logits, dh, dW, db`, () => {
      const r = native().labelWordLogits(cpu64(hv, [M, D]), cpu64(wv, [V, D]), bias ? cpu64(bv, [V]) : null, put(words, [K], 'int32', 'cpu'));
      const h = put(hv, [M, D], 'float32', 'cuda');
      const w = put(wv, [V, D], 'float32', 'cuda');
      const b = bias ? put(bv, [V], 'float32', 'cuda') : null;
      const wd = put(words, [K], 'int32', 'cuda');
      const g = native().labelWordLogits(h, w, b, wd);
      expect(g.device).toBe('cuda');
      assertClose(get(g), get(r), F32, 'logits');
      const rb = native().labelWordLogitsBackward(cpu64(gv, [M, K]), cpu64(hv, [M, D]), cpu64(wv, [V, D]), put(words, [K], 'int32', 'cpu'), true, true, true);
      const gb = native().labelWordLogitsBackward(put(gv, [M, K], 'float32', 'cuda'), h, w, wd, true, true, true);
      for (let i = 0; i < 3; i++) assertClose(get(gb[i]!), get(rb[i]!), F32, `grad[${i}]`);
    });

  it('words on the host (checked there, uploaded by the binding): the same bits as words on the device, and the same refusal', () => {
    const h = put(hv, [M, D], 'float32', 'cuda');
    const w = put(wv, [V, D], 'float32', 'cuda');
    const b = put(bv, [V], 'float32', 'cuda');
    const g = put(gv, [M, K], 'float32', 'cuda');
    const onDevice = put(words, [K], 'int32', 'cuda');
    const onHost = put(words, [K], 'int32', 'cpu');
    expect(Array.from(get(native().labelWordLogits(h, w, b, onHost)))).toEqual(Array.from(get(native().labelWordLogits(h, w, b, onDevice))));
    const gd = native().labelWordLogitsBackward(g, h, w, onDevice, true, true, true);
    const gh = native().labelWordLogitsBackward(g, h, w, onHost, true, true, true);
    for (let i = 0; i < 3; i++) expect(Array.from(get(gh[i]!))).toEqual(Array.from(get(gd[i]!)));
    const bad = put([1, V, 2], [3], 'int32', 'cpu');
    expect(() => native().labelWordLogits(h, w, b, bad)).toThrow(`Expected indices in [0, ${V}) for words but received ${V} at position 1`);
  });

  it('bfloat16 is within 2x the naive bf16 error (logits, dh, dW)', () => {
    const r = native().labelWordLogits(cpu64(hv, [M, D]), cpu64(wv, [V, D]), cpu64(bv, [V]), put(words, [K], 'int32', 'cpu'));
    const rb = native().labelWordLogitsBackward(cpu64(gv, [M, K]), cpu64(hv, [M, D]), cpu64(wv, [V, D]), put(words, [K], 'int32', 'cpu'), true, true, false);
    const hr = roundBf16(hv);
    const wr = roundBf16(wv);
    const br = roundBf16(bv);
    const gr = roundBf16(gv);
    const wk = Float64Array.from({ length: K * D }, (_, i) => wr[words[Math.floor(i / D)]! * D + (i % D)]!);
    // naive bf16: the full logits rounded, the bias added and rounded; the word rows' gradient rounded per word, summed, rounded.
    const lgN = mm(hr, D, wk, D, M, K, D, false, true).map((x, i) => bf16(bf16(x) + br[words[i % K]!]!));
    const dhN = roundBf16(mm(gr, K, wk, D, M, D, K, false, false));
    const dwk = roundBf16(mm(gr, K, hr, D, K, D, M, true, false));
    const dwN = new Float64Array(V * D);
    words.forEach((wd, k) => { for (let c = 0; c < D; c++) dwN[wd * D + c] = bf16(dwN[wd * D + c]! + dwk[k * D + c]!); });
    const h = put(hv, [M, D], 'bfloat16', 'cuda');
    const w = put(wv, [V, D], 'bfloat16', 'cuda');
    const wd = put(words, [K], 'int32', 'cuda');
    const g = native().labelWordLogits(h, w, put(bv, [V], 'bfloat16', 'cuda'), wd);
    expect(g.dtype).toBe('bfloat16');
    assertBf16('logits', get(g), get(r), lgN);
    const gb = native().labelWordLogitsBackward(put(gv, [M, K], 'bfloat16', 'cuda'), h, w, wd, true, true, false);
    assertBf16('dh', get(gb[0]!), get(rb[0]!), dhN);
    assertBf16('dW', get(gb[1]!), get(rb[1]!), dwN);
  });

  it('rejects out-of-range words with the CPU message', () => {
    const bad = [...words];
    bad[4] = V;
    const args = (dev: 'cpu' | 'cuda') => [put(hv, [M, D], 'float32', dev), put(wv, [V, D], 'float32', dev), null, put(bad, [K], 'int32', dev)] as const;
    const cpuMsg = nativeError(() => native().labelWordLogits(...args('cpu'))).message!;
    expect(cpuMsg).toMatch(/for words but received 101 at position 4/);
    expect(() => native().labelWordLogits(...args('cuda'))).toThrow(cpuMsg);
  });
});

describeCuda('verbalizerPool', () => {
  const [B, T, K, C] = [19, 4, 7, 3];
  const classOf = [0, 2, 1, 0, 2, 2, 0];
  const sv = vals(B * T * K, 51);
  sv[5] = sv[4]!;  // a tie inside class 2 of (b 0, t 0): words 4 and 5
  const gv = vals(B * C, 52);

  for (const dtype of ['float32', 'bfloat16'] as const)
    it(`${dtype} matches the CPU on the same (rounded) scores: pooled values and routed gradient`, () => {
      const s = dtype === 'bfloat16' ? roundBf16(sv) : Float64Array.from(sv);
      const gg = dtype === 'bfloat16' ? roundBf16(gv) : Float64Array.from(gv);
      const r = native().verbalizerPool(cpu64(s, [B, T, K]), put(classOf, [K], 'int32', 'cpu'), C);
      const rb = native().verbalizerPoolBackward(cpu64(gg, [B, C]), cpu64(s, [B, T, K]), put(classOf, [K], 'int32', 'cpu'), C);
      const sc = put(s, [B, T, K], dtype, 'cuda');
      const cc = put(classOf, [K], 'int32', 'cuda');
      const g = native().verbalizerPool(sc, cc, C);
      const gb = native().verbalizerPoolBackward(put(gg, [B, C], dtype, 'cuda'), sc, cc, C);
      // The picks are exact; the mean of T values and g/T are rounded once to the dtype.
      const tol = dtype === 'bfloat16' ? { atol: 1e-6, rtol: 2 ** -8 } : F32;
      assertClose(get(g), get(r), tol, 'pooled');
      assertClose(get(gb), get(rb), tol, 'dscores');
      const zerosCpu = get(rb).map((x) => (x === 0 ? 1 : 0));
      expect(get(gb).map((x) => (x === 0 ? 1 : 0))).toEqual(zerosCpu);
    });

  it('classOf on the host (checked there, uploaded by the binding): the same bits as classOf on the device', () => {
    const sc = put(sv, [B, T, K], 'float32', 'cuda');
    const g = put(gv, [B, C], 'float32', 'cuda');
    const onDevice = put(classOf, [K], 'int32', 'cuda');
    const onHost = put(classOf, [K], 'int32', 'cpu');
    expect(Array.from(get(native().verbalizerPool(sc, onHost, C)))).toEqual(Array.from(get(native().verbalizerPool(sc, onDevice, C))));
    expect(Array.from(get(native().verbalizerPoolBackward(g, sc, onHost, C)))).toEqual(
      Array.from(get(native().verbalizerPoolBackward(g, sc, onDevice, C))),
    );
  });

  it('rejects a class without a word with the CPU message', () => {
    const bad = [0, 2, 0, 0, 2, 2, 0];
    const cpuMsg = nativeError(() => native().verbalizerPool(put(sv, [B, T, K], 'float32', 'cpu'), put(bad, [K], 'int32', 'cpu'), C)).message!;
    expect(cpuMsg).toMatch(/no word of class 1/);
    expect(() => native().verbalizerPool(put(sv, [B, T, K], 'float32', 'cuda'), put(bad, [K], 'int32', 'cuda'), C)).toThrow(cpuMsg);
  });
});
