// matmul, linear and the fused linear + cross-entropy on cuda against the CPU:
// float32 on cuda vs float64 on the CPU, bfloat16 by the naive-bf16 rule.
import { expect, it } from 'vitest';
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';
import { assertBf16, bf16, describeCuda, get, put, roundBf16 } from './harness.js';

// A dot product's float32 error scales with Σ|aᵢ·bᵢ| (up to a few 1e-6 here),
// not with |result|, so entries that cancel to near 0 need a larger atol.
const F32 = { ...tolFor('float32'), atol: 2e-5 };

function vals(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 2 - 1;
  });
}

/** [M, N] = op(A)·op(B) in float64; A stored [a0, a1], B stored [b0, b1]. */
function mm(A: ArrayLike<number>, a1: number, B: ArrayLike<number>, b1: number, M: number, N: number, K: number, ta: boolean, tb: boolean): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[ta ? k * a1 + i : i * a1 + k]! * B[tb ? j * b1 + k : k * b1 + j]!;
      C[i * N + j] = s;
    }
  return C;
}

function cpu64(v: ArrayLike<number>, shape: number[]): NativeTensor {
  return put(v, shape, 'float64', 'cpu');
}

describeCuda('matmul', () => {
  const cases: Array<{ a: number[]; b: number[]; ta: boolean; tb: boolean }> = [];
  for (const ta of [false, true])
    for (const tb of [false, true]) {
      cases.push({ a: ta ? [37, 5] : [5, 37], b: tb ? [3, 37] : [37, 3], ta, tb });
      cases.push({ a: ta ? [2, 19, 7] : [2, 7, 19], b: tb ? [11, 19] : [19, 11], ta, tb }); // shared 2-D b
      cases.push({ a: ta ? [3, 9, 1] : [3, 1, 9], b: tb ? [3, 13, 9] : [3, 9, 13], ta, tb }); // batched b
    }

  it('float32 forward and backward match float64 on the CPU (every transpose, shared and batched b)', () => {
    for (const c of cases) {
      const na = c.a.reduce((x, y) => x * y, 1);
      const nb = c.b.reduce((x, y) => x * y, 1);
      const av = vals(na, 1 + na);
      const bv = vals(nb, 2 + nb);
      const ref = native().matmul(cpu64(av, c.a), cpu64(bv, c.b), c.ta, c.tb);
      const got = native().matmul(put(av, c.a, 'float32', 'cuda'), put(bv, c.b, 'float32', 'cuda'), c.ta, c.tb);
      expect(got.device).toBe('cuda');
      expect(got.shape).toEqual(ref.shape);
      assertClose(get(got), get(ref), F32, `matmul ${JSON.stringify(c)}`);
      const gv = vals(get(ref).length, 3 + na);
      const [rda, rdb] = native().matmulBackward(cpu64(gv, [...ref.shape]), cpu64(av, c.a), cpu64(bv, c.b), c.ta, c.tb, true, true);
      const [gda, gdb] = native().matmulBackward(
        put(gv, [...ref.shape], 'float32', 'cuda'), put(av, c.a, 'float32', 'cuda'), put(bv, c.b, 'float32', 'cuda'),
        c.ta, c.tb, true, true,
      );
      assertClose(get(gda!), get(rda!), F32, `dA ${JSON.stringify(c)}`);
      assertClose(get(gdb!), get(rdb!), F32, `dB ${JSON.stringify(c)}`);
      // One gradient alone takes the same path.
      const [, only] = native().matmulBackward(
        put(gv, [...ref.shape], 'float32', 'cuda'), put(av, c.a, 'float32', 'cuda'), put(bv, c.b, 'float32', 'cuda'),
        c.ta, c.tb, false, true,
      );
      assertClose(get(only!), get(rdb!), F32, `dB alone ${JSON.stringify(c)}`);
    }
  });

  it('bfloat16 forward and backward are within 2x the naive bf16 error', () => {
    for (const ta of [false, true])
      for (const tb of [false, true]) {
        const [M, K, N] = [33, 70, 17];
        const aShape = ta ? [K, M] : [M, K];
        const bShape = tb ? [N, K] : [K, N];
        const av = vals(M * K, 7);
        const bv = vals(K * N, 8);
        const ref = mm(av, aShape[1]!, bv, bShape[1]!, M, N, K, ta, tb);
        const naive = roundBf16(mm(roundBf16(av), aShape[1]!, roundBf16(bv), bShape[1]!, M, N, K, ta, tb));
        const got = native().matmul(put(av, aShape, 'bfloat16', 'cuda'), put(bv, bShape, 'bfloat16', 'cuda'), ta, tb);
        expect(got.dtype).toBe('bfloat16');
        assertBf16(`matmul ta=${ta} tb=${tb}`, get(got), ref, naive);
        const gv = vals(M * N, 9);
        const rda = cpu64(av, aShape);
        const rdb = cpu64(bv, bShape);
        const [da64, db64] = native().matmulBackward(cpu64(gv, [M, N]), rda, rdb, ta, tb, true, true);
        const [daN, dbN] = native().matmulBackward(
          cpu64(roundBf16(gv), [M, N]), cpu64(roundBf16(av), aShape), cpu64(roundBf16(bv), bShape), ta, tb, true, true,
        );
        const [da, db] = native().matmulBackward(
          put(gv, [M, N], 'bfloat16', 'cuda'), put(av, aShape, 'bfloat16', 'cuda'), put(bv, bShape, 'bfloat16', 'cuda'),
          ta, tb, true, true,
        );
        assertBf16('dA', get(da!), get(da64!), roundBf16(get(daN!)));
        assertBf16('dB', get(db!), get(db64!), roundBf16(get(dbN!)));
      }
  });

  it("accepts impl 'auto' and rejects the CPU-only 'builtin' and 'blas' on cuda", () => {
    const a = put(vals(6, 1), [2, 3], 'float32', 'cuda');
    const b = put(vals(6, 2), [3, 2], 'float32', 'cuda');
    expect(native().matmul(a, b, false, false, 'auto').shape).toEqual([2, 2]);
    for (const impl of ['builtin', 'blas'] as const)
      expect(() => native().matmul(a, b, false, false, impl)).toThrow(/Expected 'auto' .* for impl but received 'b/);
  });

  it('handles K = 0 (zeros) and refuses operands on different devices', () => {
    const z = native().matmul(native().empty('float32', [3, 0], 'cuda'), native().empty('float32', [0, 4], 'cuda'), false, false);
    expect(Array.from(get(z))).toEqual(new Array(12).fill(0));
    expect(() => native().matmul(put([1], [1, 1], 'float32', 'cuda'), put([1], [1, 1], 'float32', 'cpu'), false, false)).toThrow(
      /must be on one device/,
    );
  });
});

describeCuda('linear', () => {
  it('float32 forward and backward (bias gradient included) match float64 on the CPU', () => {
    for (const [xs, N, bias] of [
      [[3, 5, 7], 9, true],
      [[1, 33], 1, true],
      [[300, 17], 65, false],
      [[600, 3], 5, true], // more rows than one column-sum segment (256)
    ] as Array<[number[], number, boolean]>) {
      const K = xs[xs.length - 1]!;
      const R = xs.reduce((a, b) => a * b, 1) / K;
      const xv = vals(R * K, R);
      const wv = vals(N * K, N);
      const bv = vals(N, 5);
      const ref = native().linear(cpu64(xv, xs), cpu64(wv, [N, K]), bias ? cpu64(bv, [N]) : null);
      const got = native().linear(put(xv, xs, 'float32', 'cuda'), put(wv, [N, K], 'float32', 'cuda'), bias ? put(bv, [N], 'float32', 'cuda') : null);
      assertClose(get(got), get(ref), F32, `linear ${xs} N=${N}`);
      const gv = vals(R * N, 11);
      const gs = [...xs.slice(0, -1), N];
      const r = native().linearBackward(cpu64(gv, gs), cpu64(xv, xs), cpu64(wv, [N, K]), true, true, true);
      const g = native().linearBackward(put(gv, gs, 'float32', 'cuda'), put(xv, xs, 'float32', 'cuda'), put(wv, [N, K], 'float32', 'cuda'), true, true, true);
      for (let i = 0; i < 3; i++) assertClose(get(g[i]!), get(r[i]!), F32, `linearBackward[${i}] ${xs}`);
    }
  });

  it('bfloat16 forward and backward are within 2x the naive bf16 error', () => {
    const [R, K, N] = [45, 64, 31];
    const xv = vals(R * K, 21);
    const wv = vals(N * K, 22);
    const bv = vals(N, 23);
    const y64 = get(native().linear(cpu64(xv, [R, K]), cpu64(wv, [N, K]), cpu64(bv, [N])));
    // naive: the GEMM rounds, then the bias add rounds.
    const mmN = roundBf16(get(native().linear(cpu64(roundBf16(xv), [R, K]), cpu64(roundBf16(wv), [N, K]), null)));
    const naive = Float64Array.from(mmN, (v, i) => bf16(v + bf16(bv[i % N]!)));
    const got = native().linear(put(xv, [R, K], 'bfloat16', 'cuda'), put(wv, [N, K], 'bfloat16', 'cuda'), put(bv, [N], 'bfloat16', 'cuda'));
    assertBf16('linear', get(got), y64, naive);
    const gv = vals(R * N, 24);
    const r = native().linearBackward(cpu64(gv, [R, N]), cpu64(xv, [R, K]), cpu64(wv, [N, K]), true, true, true);
    const n = native().linearBackward(cpu64(roundBf16(gv), [R, N]), cpu64(roundBf16(xv), [R, K]), cpu64(roundBf16(wv), [N, K]), true, true, true);
    const g = native().linearBackward(put(gv, [R, N], 'bfloat16', 'cuda'), put(xv, [R, K], 'bfloat16', 'cuda'), put(wv, [N, K], 'bfloat16', 'cuda'), true, true, true);
    for (let i = 0; i < 3; i++) assertBf16(`linearBackward[${i}]`, get(g[i]!), get(r[i]!), roundBf16(get(n[i]!)));
  });
});

describeCuda('linearCrossEntropy', () => {
  const M = 29;
  const D = 24;
  const V = 37;
  const hv = vals(M * D, 31).map((x) => 2 * x);
  const wv = vals(V * D, 32);
  const bv = vals(V, 33);
  /** targets with `frac` of the rows ignored (-100). */
  const targetsFor = (frac: number) => Array.from({ length: M }, (_, i) => ((i * 7919) % 100 < frac * 100 ? -100 : (i * 13) % V));

  for (const frac of [0, 0.3, 1])
    for (const chunk of [8, 37, 4096])
      for (const bias of [true, false])
        it(`float32 matches float64 on the CPU (${frac * 100}% ignored, chunk ${chunk}, bias ${bias})`, () => {
          const t = targetsFor(frac);
          const r = native().linearCrossEntropy(cpu64(hv, [M, D]), cpu64(wv, [V, D]), bias ? cpu64(bv, [V]) : null, put(t, [M], 'int32', 'cpu'), -100, chunk);
          const h = put(hv, [M, D], 'float32', 'cuda');
          const w = put(wv, [V, D], 'float32', 'cuda');
          const b = bias ? put(bv, [V], 'float32', 'cuda') : null;
          const tg = put(t, [M], 'int32', 'cuda');
          const g = native().linearCrossEntropy(h, w, b, tg, -100, chunk);
          expect(g.count).toBe(r.count);
          expect(g.loss.device).toBe('cuda');
          expect(g.lse.dtype).toBe('float32');
          assertClose(get(g.loss), get(r.loss), tolFor('float32'), 'loss');
          assertClose(get(g.lse), get(r.lse), tolFor('float32'), 'lse');
          const rb = native().linearCrossEntropyBackward(1.5, cpu64(hv, [M, D]), cpu64(wv, [V, D]), bias ? cpu64(bv, [V]) : null, put(t, [M], 'int32', 'cpu'), r.lse, -100, r.count, chunk, true, true, true);
          const gb = native().linearCrossEntropyBackward(1.5, h, w, b, tg, g.lse, -100, g.count, chunk, true, true, true);
          for (let i = 0; i < 3; i++) assertClose(get(gb[i]!), get(rb[i]!), F32, `grad[${i}]`);
        });

  it('bfloat16 is within 2x the naive bf16 error (lse, dh, dW, db) and the loss within bf16 rounding', () => {
    const t = targetsFor(0.3);
    const chunk = 8;
    // float64 reference on the unrounded inputs.
    const r = native().linearCrossEntropy(cpu64(hv, [M, D]), cpu64(wv, [V, D]), cpu64(bv, [V]), put(t, [M], 'int32', 'cpu'), -100, chunk);
    const rb = native().linearCrossEntropyBackward(1, cpu64(hv, [M, D]), cpu64(wv, [V, D]), cpu64(bv, [V]), put(t, [M], 'int32', 'cpu'), r.lse, -100, r.count, chunk, true, true, true);
    // naive bf16: logits = bf16(bf16(h·Wᵀ) + b), lse and softmax from them, G = bf16(softmax − onehot)/count, products rounded.
    const hr = roundBf16(hv);
    const wr = roundBf16(wv);
    const br = roundBf16(bv);
    const lg = mm(hr, D, wr, D, M, V, D, false, true).map((x, i) => bf16(bf16(x) + br[i % V]!));
    const lseN = new Float64Array(M);
    const G = new Float64Array(M * V);
    const count = t.filter((x) => x !== -100).length;
    for (let m = 0; m < M; m++) {
      if (t[m] === -100) continue;
      let mx = -Infinity;
      for (let j = 0; j < V; j++) mx = Math.max(mx, lg[m * V + j]!);
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(lg[m * V + j]! - mx);
      lseN[m] = mx + Math.log(s);
      for (let j = 0; j < V; j++) G[m * V + j] = bf16((Math.exp(lg[m * V + j]! - lseN[m]!) - (j === t[m] ? 1 : 0)) / count);
    }
    const dhN = roundBf16(mm(G, V, wr, D, M, D, V, false, false));
    const dwN = roundBf16(mm(G, V, hr, D, V, D, M, true, false));
    const dbN = roundBf16(Float64Array.from({ length: V }, (_, j) => { let s = 0; for (let m = 0; m < M; m++) s += G[m * V + j]!; return s; }));

    const h = put(hv, [M, D], 'bfloat16', 'cuda');
    const w = put(wv, [V, D], 'bfloat16', 'cuda');
    const b = put(bv, [V], 'bfloat16', 'cuda');
    const tg = put(t, [M], 'int32', 'cuda');
    const g = native().linearCrossEntropy(h, w, b, tg, -100, chunk);
    expect(g.loss.dtype).toBe('bfloat16');
    expect(g.lse.dtype).toBe('float32');
    assertBf16('lse', get(g.lse), get(r.lse), lseN);
    // A single scalar: relErr against the naive one is noise, so bound it by
    // bf16's own resolution instead (logit rounding plus the output rounding).
    const ref = get(r.loss)[0]!;
    expect(Math.abs(get(g.loss)[0]! - ref)).toBeLessThanOrEqual(2 ** -7 * Math.abs(ref));
    const gb = native().linearCrossEntropyBackward(1, h, w, b, tg, g.lse, -100, g.count, chunk, true, true, true);
    assertBf16('dh', get(gb[0]!), get(rb[0]!), dhN);
    assertBf16('dW', get(gb[1]!), get(rb[1]!), dwN);
    assertBf16('db', get(gb[2]!), get(rb[2]!), dbN);
  });

  it('rejects out-of-range targets with the CPU message, and a bf16-shaped lse in the backward', () => {
    const t = targetsFor(0);
    t[5] = V;
    const args = (dev: 'cpu' | 'cuda') =>
      [put(hv, [M, D], 'float32', dev), put(wv, [V, D], 'float32', dev), null, put(t, [M], 'int32', dev), -100, 8] as const;
    let cpuMsg = '';
    try {
      native().linearCrossEntropy(...args('cpu'));
    } catch (e) {
      cpuMsg = (e as Error).message;
    }
    expect(cpuMsg).toMatch(/targets/);
    expect(() => native().linearCrossEntropy(...args('cuda'))).toThrow(cpuMsg);
    const ok = targetsFor(0);
    const h = put(hv, [M, D], 'bfloat16', 'cuda');
    const w = put(wv, [V, D], 'bfloat16', 'cuda');
    const tg = put(ok, [M], 'int32', 'cuda');
    const lse16 = native().empty('bfloat16', [M], 'cuda');
    expect(() => native().linearCrossEntropyBackward(1, h, w, null, tg, lse16, -100, M, 8, true, false, false)).toThrow(/float32 tensor for lse/);
  });
});
