/**
 * linearCrossEntropy (fused, vocabulary-chunked linear + cross-entropy) against the
 * unfused crossEntropy(linear(h, W, b), targets): value and every gradient, at odd
 * sizes and chunk sizes, in float32 and float64; plus finite differences, large
 * logits, bad input and the bytes kept between forward and backward. The CUDA
 * kernels' tests are in linear_ce-cuda.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  backward, crossEntropy, embedding, linear, linearCrossEntropy, liveBytes, noGrad, Rng, runtimeInfo, scope, setNumThreads, tensor, Tensor, type DType,
} from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { crossEntropyRef, matmulRef } from '../helpers/reference.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

const rng = new Rng(2024);

function rand(shape: number[], dtype: DType, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = tensor(Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform()), shape, dtype);
  t.requiresGrad = true;
  return t;
}

/** M targets in [0, V), about `ignoreFrac` of them replaced by the ignore index. */
function randTargets(M: number, V: number, ignoreFrac: number, ignore = -100): Tensor {
  return tensor(Array.from({ length: M }, () => (rng.uniform() < ignoreFrac ? ignore : rng.int(V))), [M], 'int32');
}

interface Result {
  loss: number;
  dh: Float64Array;
  dw: Float64Array;
  db: Float64Array | null;
}

/** Runs loss = f(h, w, b), backward, and reads the loss and the three gradients. */
function run(f: (h: Tensor, w: Tensor, b: Tensor | null) => Tensor, h: Tensor, w: Tensor, b: Tensor | null): Result {
  return scope(() => {
    for (const t of [h, w, b]) {
      if (!t) continue;
      t.grad?.dispose();
      t.grad = null;
    }
    const loss = f(h, w, b);
    backward(loss);
    const read = (t: Tensor | null): Float64Array | null => (t ? Float64Array.from(t.grad!.toArray()) : null);
    return { loss: loss.item(), dh: read(h)!, dw: read(w)!, db: read(b) };
  });
}

function expectFinite(label: string, xs: ArrayLike<number>): void {
  for (let i = 0; i < xs.length; i++) if (!Number.isFinite(xs[i]!)) throw new Error(`${label}[${i}] = ${xs[i]}`);
}

function compareWithUnfused(dtype: DType, M: number, D: number, V: number, chunkSize: number, withBias: boolean,
  ignoreFrac: number): void {
  const tol = tolFor(dtype);
  const h = rand([M, D], dtype);
  const w = rand([V, D], dtype);
  const b = withBias ? rand([V], dtype) : null;
  const targets = randTargets(M, V, ignoreFrac);
  const fused = run((h, w, b) => linearCrossEntropy(h, w, b, targets, { chunkSize }), h, w, b);
  const ref = run((h, w, b) => crossEntropy(linear(h, w, b ?? undefined), targets), h, w, b);
  const tag = `${dtype} M=${M} D=${D} V=${V} chunk=${chunkSize} bias=${withBias}`;
  assertClose([fused.loss], [ref.loss], tol, `loss ${tag}`);
  assertClose(fused.dh, ref.dh, tol, `dh ${tag}`);
  assertClose(fused.dw, ref.dw, tol, `dW ${tag}`);
  if (withBias) assertClose(fused.db!, ref.db!, tol, `db ${tag}`);
  for (const t of [h, w, b, targets]) t?.dispose();
}

for (const dtype of ['float32', 'float64'] as const) {
  describe(`linearCrossEntropy equals crossEntropy(linear(h, W, b)) in ${dtype}`, () => {
    const shapes: Array<[number, number, number]> = [[1, 24, 1], [7, 40, 97], [33, 24, 1003], [1, 40, 97]];
    for (const [M, D, V] of shapes) {
      const chunks = [...new Set([1, 64, V, V + 37])];
      it(`M=${M} D=${D} V=${V}, chunk sizes ${chunks.join(', ')}, with ignored rows`, () => {
        chunks.forEach((chunk, i) => compareWithUnfused(dtype, M, D, V, chunk, i % 2 === 0, M > 1 ? 0.25 : 0));
        // The other bias setting at the chunk size that does not divide V.
        compareWithUnfused(dtype, M, D, V, 64, false, 0.25);
      });
    }

    it('all rows ignored: loss 0, zero gradients, no NaN', () => {
      const [M, D, V] = [7, 24, 97];
      const h = rand([M, D], dtype);
      const w = rand([V, D], dtype);
      const b = rand([V], dtype);
      const targets = tensor(Array(M).fill(-100), [M], 'int32');
      for (const chunkSize of [1, 64, 200]) {
        const r = run((h, w, b) => linearCrossEntropy(h, w, b, targets, { chunkSize }), h, w, b);
        expect(r.loss).toBe(0);
        for (const g of [r.dh, r.dw, r.db!]) expect(g.every((v) => v === 0)).toBe(true);
      }
    });

    it('a custom ignore index zeroes the gradient of its rows', () => {
      const [M, D, V] = [5, 24, 97];
      const h = rand([M, D], dtype);
      const w = rand([V, D], dtype);
      const targets = tensor([3, 7, 96, 7, 0], [M], 'int32');
      const fused = run((h, w) => linearCrossEntropy(h, w, null, targets, { chunkSize: 10, ignoreIndex: 7 }), h, w, null);
      const ref = run((h, w) => crossEntropy(linear(h, w), targets, { ignoreIndex: 7 }), h, w, null);
      const tol = tolFor(dtype);
      assertClose([fused.loss], [ref.loss], tol, 'loss');
      assertClose(fused.dh, ref.dh, tol, 'dh');
      assertClose(fused.dw, ref.dw, tol, 'dW');
      // Rows 1 and 3 are ignored: their dh rows are zero.
      for (const m of [1, 3]) expect(fused.dh.slice(m * D, (m + 1) * D).every((v) => v === 0)).toBe(true);
    });
  });
}

describe('linearCrossEntropy: normalizer (a data-parallel rank divides by the global count)', () => {
  it('two halves of the rows, each divided by the whole count, sum to the whole mean and its gradients (float64)', () => {
    const [M, D, V] = [9, 4, 7];
    const hv = rand([M, D], 'float64').toArray();
    const wv = rand([V, D], 'float64').toArray();
    const tv = Array.from(randTargets(M, V, 0.2).toArray());
    const count = tv.filter((x) => x !== -100).length;
    const run = (lo: number, hi: number, normalizer?: number): { loss: number; dh: number[]; dw: number[] } => {
      const h = tensor(Array.from(hv.slice(lo * D, hi * D)), [hi - lo, D], 'float64');
      const w = tensor(Array.from(wv), [V, D], 'float64');
      h.requiresGrad = true;
      w.requiresGrad = true;
      const loss = linearCrossEntropy(h, w, null, tensor(tv.slice(lo, hi), [hi - lo], 'int32'), normalizer === undefined ? {} : { normalizer });
      backward(loss);
      return { loss: loss.item(), dh: Array.from(h.grad!.toArray()), dw: Array.from(w.grad!.toArray()) };
    };
    const whole = run(0, M);
    const a = run(0, 4, count);
    const b = run(4, M, count);
    expect(a.loss + b.loss).toBeCloseTo(whole.loss, 12);
    [...a.dh, ...b.dh].forEach((x, i) => expect(x).toBeCloseTo(whole.dh[i]!, 12));
    a.dw.forEach((x, i) => expect(x + b.dw[i]!).toBeCloseTo(whole.dw[i]!, 12));
  });
  it('refuses a normalizer that is not positive', () => {
    const h = rand([2, 3], 'float32');
    const w = rand([5, 3], 'float32');
    expect(() => linearCrossEntropy(h, w, null, tensor([0, 1], [2], 'int32'), { normalizer: 0 })).toThrow(/normalizer/);
  });
  it('refuses a fractional normalizer, or one below the non-ignored rows, naming it', () => {
    const h = rand([2, 3], 'float32');
    const w = rand([5, 3], 'float32');
    expect(() => linearCrossEntropy(h, w, null, tensor([0, 1], [2], 'int32'), { normalizer: 2.5 })).toThrow(/normalizer/);
    expect(() => linearCrossEntropy(h, w, null, tensor([0, 1], [2], 'int32'), { normalizer: 1 })).toThrow(/normalizer of at least 2/);
    // An ignored row does not count: 1 is enough for one real target.
    expect(linearCrossEntropy(h, w, null, tensor([0, -100], [2], 'int32'), { normalizer: 1 }).item()).toBeGreaterThan(0);
  });
});

describe('linearCrossEntropy: finite-difference gradcheck (float64)', () => {
  const leaf = (...shape: number[]): Tensor => randLeaf(shape, rng);
  it('h, W and b, chunk sizes 1, 2 and larger than V, with an ignored row', () => {
    const targets = tensor([4, -100, 0, 2], [4], 'int32');
    for (const chunkSize of [1, 2, 9])
      gradcheck(([h, w, b]) => linearCrossEntropy(h!, w!, b!, targets, { chunkSize }), [leaf(4, 3), leaf(5, 3), leaf(5)]);
  });
  it('without bias, V = 1 and M = 1', () => {
    gradcheck(([h, w]) => linearCrossEntropy(h!, w!, null, tensor([2, 1, 1], [3], 'int32'), { chunkSize: 2 }), [leaf(3, 2), leaf(3, 2)]);
    gradcheck(([h, w, b]) => linearCrossEntropy(h!, w!, b!, tensor([0], [1], 'int32'), { chunkSize: 1 }), [leaf(1, 3), leaf(1, 3), leaf(1)]);
  });
});

// ---- Adding into an existing .grad (AdamW's flat buffer) in place ----

/**
 * h, W and b get .grad views of one flat buffer holding `old` (as AdamW's
 * flatten() rebinds them); returns the buffer.
 */
function flatGrads(leaves: Array<Tensor | null>, old: number[], dtype: DType): { flat: NativeTensor; views: Tensor[] } {
  const live = leaves.filter((t): t is Tensor => t !== null);
  const n = live.reduce((a, t) => a + t.size, 0);
  const flat = native().fromTypedArray(dtype === 'float64' ? Float64Array.from(old.slice(0, n)) : Float32Array.from(old.slice(0, n)), [n]);
  let off = 0;
  const views = live.map((t) => {
    t.grad?.dispose();
    t.grad = new Tensor(flat.view(off, t.shape));
    off += t.size;
    return t.grad;
  });
  return { flat, views };
}

function addInPlaceVsUnfused(dtype: DType, M: number, D: number, V: number, chunkSize: number, withBias: boolean,
  ignoreFrac: number): void {
  const tol = tolFor(dtype);
  const h = rand([M, D], dtype);
  const w = rand([V, D], dtype);
  const b = withBias ? rand([V], dtype) : null;
  const targets = ignoreFrac >= 1 ? tensor(Array(M).fill(-100), [M], 'int32') : randTargets(M, V, ignoreFrac);
  const ref = run((h, w, b) => crossEntropy(linear(h, w, b ?? undefined), targets), h, w, b);
  const total = M * D + V * D + (withBias ? V : 0);
  const old = Array.from({ length: total }, () => rng.uniform() * 2 - 1);
  const { flat, views } = flatGrads([h, w, b], old, dtype);
  const live0 = liveBytes();
  let loss = 0;
  let grown = 0;
  scope(() => {
    const l = linearCrossEntropy(h, w, b, targets, { chunkSize });
    backward(l);
    grown = liveBytes() - live0;
    loss = l.item();
  });
  const tag = `${dtype} M=${M} D=${D} V=${V} chunk=${chunkSize} bias=${withBias} ignored=${ignoreFrac}`;
  // The same .grad objects, still views of the flat buffer: nothing was re-bound.
  [h, w, b].filter((t) => t !== null).forEach((t, i) => expect(t!.grad).toBe(views[i]));
  // No gradient tensor was born: only the 0-d loss and the [M] lse were (freed by the scope).
  expect(grown).toBeLessThanOrEqual((M + 1) * (dtype === 'float64' ? 8 : 4));
  const got = Float64Array.from(flat.read());
  const want = Float64Array.from([...ref.dh, ...ref.dw, ...(ref.db ?? [])], (g, i) => g + old[i]!);
  assertClose([loss], [ref.loss], tol, `loss ${tag}`);
  assertClose(got.subarray(0, M * D), want.subarray(0, M * D), tol, `old + dh ${tag}`);
  assertClose(got.subarray(M * D, M * D + V * D), want.subarray(M * D, M * D + V * D), tol, `old + dW ${tag}`);
  if (withBias) assertClose(got.subarray(M * D + V * D), want.subarray(M * D + V * D), tol, `old + db ${tag}`);
  if (ignoreFrac >= 1) expect(Array.from(got)).toEqual(Array.from(Float64Array.from(old, (x) => (dtype === 'float32' ? Math.fround(x) : x))));
  for (const t of [h, w, b, targets]) t?.dispose();
  flat.dispose();
}

for (const dtype of ['float32', 'float64'] as const)
  describe(`linearCrossEntropy adds into an existing .grad in place (${dtype})`, () => {
    for (const [M, D, V] of [[7, 40, 97], [33, 24, 1003], [1, 24, 1]] as Array<[number, number, number]>)
      it(`M=${M} D=${D} V=${V}: old value + the unfused chain's gradient, 0%, 25% and 100% ignored rows`, () => {
        for (const frac of [0, 0.25, 1])
          for (const chunk of [...new Set([1, 64, V + 37])]) addInPlaceVsUnfused(dtype, M, D, V, chunk, chunk !== 64, frac);
      });
  });

describe('linearCrossEntropy: thread count', () => {
  // Each logits row is owned by one task, the GEMMs split rows and columns (not
  // the sum), and the loss and db are reduced in a fixed order: the loss and
  // every gradient, added in place or not, must not change by a bit.
  it('does not change a single bit of the loss or the gradients (fresh and added in place)', () => {
    const [M, D, V] = [37, 40, 1003];
    const h = rand([M, D], 'float32');
    const w = rand([V, D], 'float32');
    const b = rand([V], 'float32');
    const targets = randTargets(M, V, 0.25);
    const old = Array.from({ length: M * D + V * D + V }, () => rng.uniform() * 2 - 1);
    const before = runtimeInfo().threads;
    const results: Array<{ fresh: Result; inPlace: number[] }> = [];
    try {
      for (const n of [1, 3]) {
        setNumThreads(n);
        const fresh = run((h, w, b) => linearCrossEntropy(h, w, b, targets, { chunkSize: 256 }), h, w, b);
        const { flat } = flatGrads([h, w, b], old, 'float32');
        scope(() => backward(linearCrossEntropy(h, w, b, targets, { chunkSize: 256 })));
        results.push({ fresh, inPlace: Array.from(flat.read()) });
        flat.dispose();
      }
    } finally {
      setNumThreads(before);
    }
    expect(results[1]!.fresh).toEqual(results[0]!.fresh);
    expect(results[1]!.inPlace).toEqual(results[0]!.inPlace);
    for (const t of [h, w, b, targets]) t.dispose();
  });
});

describe('linearCrossEntropy: finite-difference gradcheck with the gradient added in place (float64)', () => {
  // The tied decoder: h = embedding(W, ids) → loss = linearCrossEntropy(h, W, b).
  // W.grad is a view of a flat buffer that already holds a value, and receives
  // both the head's dW (added in place by the kernel) and the embedding's
  // gradient (added by backward()). Checked: W.grad − old against central
  // differences of the loss.
  const fd = (f: () => number, x: Tensor, eps = 1e-6): Float64Array => {
    const v = x.toArray() as Float64Array;
    const out = new Float64Array(v.length);
    for (let j = 0; j < v.length; j++) {
      const x0 = v[j]!;
      v[j] = x0 + eps;
      x.native.write(v);
      const lp = f();
      v[j] = x0 - eps;
      x.native.write(v);
      const lm = f();
      v[j] = x0;
      x.native.write(v);
      out[j] = (lp - lm) / (2 * eps);
    }
    return out;
  };
  for (const chunkSize of [1, 2, 9])
    it(`tied W and b, chunk ${chunkSize}, an ignored row`, () => {
      const [V, D] = [5, 3];
      const w = randLeaf([V, D], rng);
      const b = randLeaf([V], rng);
      const ids = tensor([4, 0, 2, 4], [4], 'int32');
      const targets = tensor([1, -100, 4, 0], [4], 'int32');
      const f = (): Tensor => linearCrossEntropy(embedding(w, ids), w, b, targets, { chunkSize });
      const old = Array.from({ length: V * D + V }, () => rng.uniform() * 2 - 1);
      const { flat } = flatGrads([w, b], old, 'float64');
      scope(() => backward(f()));
      const got = Float64Array.from(flat.read(), (g, i) => g - old[i]!);
      const lossAt = (): number => noGrad(() => scope(() => f().item()));
      const tol = { atol: 1e-7, rtol: 1e-5 };
      assertClose(got.subarray(0, V * D), fd(lossAt, w), tol, `dW chunk ${chunkSize}`);
      assertClose(got.subarray(V * D), fd(lossAt, b), tol, `db chunk ${chunkSize}`);
      for (const t of [w, b, ids, targets]) t.dispose();
      flat.dispose();
    });
});

describe('linearCrossEntropy: large logits stay finite', () => {
  for (const dtype of ['float32', 'float64'] as const)
    it(`logits of ±50 in ${dtype}, the maximum in a later chunk than the first`, () => {
      // D = 2: logit[m, v] = h[m]·W[v]. Rows of W give logits −50, …, +50 for h = [1, 0] or [0, 1].
      const V = 11;
      const wv: number[] = [];
      for (let v = 0; v < V; v++) wv.push(-50 + 10 * v, 50 - 10 * v);
      const hv = [1, 0, 0, 1, 1, 0, 0.5, 0.5];
      const h = tensor(hv, [4, 2], dtype);
      const w = tensor(wv, [V, 2], dtype);
      const b = tensor(Array(V).fill(0), [V], dtype);
      for (const t of [h, w, b]) t.requiresGrad = true;
      const tg = [0, 0, 10, 5];  // rows 0 and 1 target the smallest logit of their row: loss 100 each
      const targets = tensor(tg, [4], 'int32');
      const logits = matmulRef(hv, wv, 4, V, 2, false, true);
      const ref = crossEntropyRef(logits, V, tg, null, -100);
      for (const chunkSize of [1, 3, 4096]) {
        const r = run((h, w, b) => linearCrossEntropy(h, w, b, targets, { chunkSize }), h, w, b);
        assertClose([r.loss], [ref], tolFor(dtype), `loss chunk=${chunkSize}`);
        for (const [n, g] of [['dh', r.dh], ['dW', r.dw], ['db', r.db!]] as const) expectFinite(`${n} chunk=${chunkSize}`, g);
        const un = run((h, w, b) => crossEntropy(linear(h, w, b!), targets), h, w, b);
        assertClose(r.dh, un.dh, tolFor(dtype), 'dh');
        assertClose(r.dw, un.dw, tolFor(dtype), 'dW');
        assertClose(r.db!, un.db!, tolFor(dtype), 'db');
      }
    });
});

describe('linearCrossEntropy: bad input', () => {
  const h = tensor(Array(6).fill(0.5), [2, 3]);
  const w = tensor(Array(15).fill(0.1), [5, 3]);
  const t = tensor([1, -100], [2], 'int32');
  it('TypeScript checks use the one wording', () => {
    expect(() => linearCrossEntropy(tensor([1, 2], [2], 'int32'), w, null, t)).toThrow(
      'Expected a float32 or float64 tensor for input but received int32 tensor [2]',
    );
    expect(() => linearCrossEntropy(tensor([1, 2, 3], [3]), w, null, t)).toThrow(
      'Expected a 2-D tensor for input but received float32 tensor [3]',
    );
    expect(() => linearCrossEntropy(h, tensor(Array(15).fill(0), [5, 3], 'float64'), null, t)).toThrow(
      'Expected a float32 tensor for weight but received float64 tensor [5, 3]',
    );
    expect(() => linearCrossEntropy(h, tensor(Array(20).fill(0), [5, 4]), null, t)).toThrow(
      'Expected shape [5, 3] for weight but received float32 tensor [5, 4]',
    );
    expect(() => linearCrossEntropy(h, w, tensor([0, 0, 0, 0], [4]), t)).toThrow(
      'Expected shape [5] for bias but received float32 tensor [4]',
    );
    expect(() => linearCrossEntropy(h, w, null, tensor([1, 2], [2]))).toThrow(
      'Expected an int32 tensor for targets but received float32 tensor [2]',
    );
    expect(() => linearCrossEntropy(h, w, null, tensor([1, 2, 3], [3], 'int32'))).toThrow(
      'Expected shape [2] for targets but received int32 tensor [3]',
    );
    expect(() => linearCrossEntropy(h, w, null, t, { chunkSize: 0 })).toThrow(
      'Expected a positive integer for chunkSize but received 0',
    );
    expect(() => linearCrossEntropy(h, w, null, t, { chunkSize: 2.5 })).toThrow(
      'Expected a positive integer for chunkSize but received 2.5',
    );
  });

  it('a target out of range is an E_INDEX error from the native side that names the position', () => {
    let err: { code?: string; op?: string; message?: string } = {};
    try {
      linearCrossEntropy(h, w, null, tensor([1, 5], [2], 'int32'));
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.code).toBe('E_INDEX');
    expect(err.op).toBe('linearCrossEntropy');
    expect(err.message).toBe(
      'linearCrossEntropy: Expected indices in [0, 5) or the ignore index -100 for targets but received 5 at position 1',
    );
    expect(() => linearCrossEntropy(h, w, null, tensor([-1, 0], [2], 'int32'))).toThrow(
      'Expected indices in [0, 5) or the ignore index -100 for targets but received -1 at position 0',
    );
  });

  it('the native binding checks shapes, dtypes and chunk size itself', () => {
    const n = native();
    expect(() => n.linearCrossEntropy(h.native, w.native, null, t.native, -100, 0)).toThrow(
      'linearCrossEntropy: Expected an integer in [1, 2147483647] for chunkSize but received 0',
    );
    expect(() => n.linearCrossEntropy(h.native, tensor(Array(8).fill(0), [2, 4]).native, null, t.native, -100, 4)).toThrow(
      'linearCrossEntropy: Expected weight of shape [V, 3] with V >= 1 (input has float32 tensor [2, 3]) for weight but received float32 tensor [2, 4]',
    );
    expect(() => n.linearCrossEntropy(h.native, w.native, null, tensor([0, 1], [2]).native, -100, 4)).toThrow(
      'linearCrossEntropy: Expected an int32 tensor for targets but received float32 tensor [2]',
    );
    const f = n.linearCrossEntropy(h.native, w.native, null, t.native, -100, 4);
    expect(() =>
      n.linearCrossEntropyBackward(1, h.native, w.native, null, t.native, tensor([0], [1]).native, -100, f.count, 4, true, true, false),
    ).toThrow('linearCrossEntropyBackward: Expected shape [2] for lse but received float32 tensor [1]');
    // A count above the rows' is a divisor (a data-parallel rank's global count): the gradients scale by count/3.
    const [dh2, dw2] = n.linearCrossEntropyBackward(1, h.native, w.native, null, t.native, f.lse, -100, f.count, 4, true, true, false);
    const [dh3, dw3] = n.linearCrossEntropyBackward(1, h.native, w.native, null, t.native, f.lse, -100, 3, 4, true, true, false);
    for (const [a, b] of [[dh2!, dh3!], [dw2!, dw3!]] as const) {
      const x = a.read(), y = b.read();
      for (let i = 0; i < x.length; i++) expect(y[i]!).toBeCloseTo((x[i]! * f.count) / 3, 6);
    }
    // Gradient buffers to add into: X's shape and dtype, only for a gradient that is needed.
    const into = (shape: number[], dtype: DType = 'float32') => tensor(Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), shape, dtype).native;
    expect(() =>
      n.linearCrossEntropyBackward(1, h.native, w.native, null, t.native, f.lse, -100, f.count, 4, true, true, false, null, into([4, 3])),
    ).toThrow('linearCrossEntropyBackward: Expected shape [5, 3] for intoWeight but received float32 tensor [4, 3]');
    expect(() =>
      n.linearCrossEntropyBackward(1, h.native, w.native, null, t.native, f.lse, -100, f.count, 4, true, true, false, into([2, 3], 'float64')),
    ).toThrow('linearCrossEntropyBackward: Expected a float32 tensor for intoInput but received float64 tensor [2, 3]');
    expect(() =>
      n.linearCrossEntropyBackward(1, h.native, w.native, null, t.native, f.lse, -100, f.count, 4, true, false, false, null, into([5, 3])),
    ).toThrow('linearCrossEntropyBackward: Expected null when that gradient is not needed for intoWeight but received float32 tensor [5, 3]');
    expect(() =>
      n.linearCrossEntropyBackward(1, h.native, w.native, null, t.native, f.lse, -100, f.count, 4, true, true, false, null, w.native),
    ).toThrow('linearCrossEntropyBackward: Expected a gradient buffer, not one of the operands for intoWeight but received float32 tensor [5, 3]');
    // Given one, its slot of the result is null and the buffer holds 0.5 + the gradient.
    const fresh = n.linearCrossEntropyBackward(1, h.native, w.native, null, t.native, f.lse, -100, f.count, 4, true, true, false);
    const buf = into([5, 3]);
    const r = n.linearCrossEntropyBackward(1, h.native, w.native, null, t.native, f.lse, -100, f.count, 4, true, true, false, null, buf);
    expect(r[1]).toBeNull();
    expect(Array.from(r[0]!.read())).toEqual(Array.from(fresh[0]!.read()));
    assertClose(buf.read(), Array.from(fresh[1]!.read(), (g) => 0.5 + g), tolFor('float32'), 'intoWeight');
  });
});

describe("linearCrossEntropy: the caller's count, host targets and a gradient tensor", () => {
  const M = 7, D = 5, V = 11;
  const hv = Array.from({ length: M * D }, (_, i) => Math.sin(i + 1));
  const wv = Array.from({ length: V * D }, (_, i) => Math.cos(2 * i + 1) / 2);
  const t = [3, -100, 10, 0, -100, 7, 7];

  it('the native forward takes the count its caller made, and refuses one that disagrees with the targets', () => {
    const args = () => [tensor(hv, [M, D]).native, tensor(wv, [V, D]).native, null, tensor(t, [M], 'int32').native, -100, 4] as const;
    const plain = native().linearCrossEntropy(...args());
    const given = native().linearCrossEntropy(...args(), 5);
    expect(given.count).toBe(5);
    expect(Array.from(given.loss.read())).toEqual(Array.from(plain.loss.read()));
    expect(() => native().linearCrossEntropy(...args(), 4)).toThrow('Expected 5 (the non-ignored rows of targets) for count but received 4');
    expect(() => native().linearCrossEntropy(...args(), 8)).toThrow('Expected at most the 7 rows of targets for count but received 8');
  });

  it('the native backward takes the loss gradient as a 0-d tensor, with the same bits as the number', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const h = tensor(hv, [M, D], dtype).native, w = tensor(wv, [V, D], dtype).native, tg = tensor(t, [M], 'int32').native;
      const r = native().linearCrossEntropy(h, w, null, tg, -100, 4);
      const byNumber = native().linearCrossEntropyBackward(1.5, h, w, null, tg, r.lse, -100, r.count, 4, true, true, false);
      const byTensor = native().linearCrossEntropyBackward(tensor([1.5], [], dtype).native, h, w, null, tg, r.lse, -100, r.count, 4, true, true, false);
      for (let i = 0; i < 2; i++) expect(Array.from(byTensor[i]!.read())).toEqual(Array.from(byNumber[i]!.read()));
      expect(() => native().linearCrossEntropyBackward(tensor([1, 2], [2], dtype).native, h, w, null, tg, r.lse, -100, r.count, 4, true, true, false))
        .toThrow(/gradLoss/);
    }
  });
});

describe('linearCrossEntropy: memory', () => {
  it('keeps only O(M) native bytes between forward and backward, not the [M, V] logits', () => {
    const [M, D, V] = [64, 32, 5000];
    const h = rand([M, D], 'float32');
    const w = rand([V, D], 'float32');
    const b = rand([V], 'float32');
    const targets = randTargets(M, V, 0.1);
    const before = liveBytes();
    const loss = linearCrossEntropy(h, w, b, targets, { chunkSize: 512 });
    const held = liveBytes() - before;
    // The loss scalar and the saved lse [M]: (M + 1)·4 bytes, against M·V·4 = 1.28 MB for the logits.
    expect(held).toBe((M + 1) * 4);
    expect(held).toBeLessThan((M * V * 4) / 1000);
    backward(loss);
    expect(Number.isFinite(loss.item())).toBe(true);
    for (const t of [loss, h, w, b, targets]) t.dispose();
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on cuda vs float64 on the CPU, bfloat16 by the naive-bf16 rule.
