/**
 * matmul and linear: forward against a float64 reference, finite-difference
 * gradients (float64), the BLAS and built-in GEMMs against each other, and the
 * CUDA kernels against the CPU.
 */
import { describe, expect, it } from 'vitest';
import { linear, matmul, Rng, runtimeInfo, tensor, type DType } from '../../src/index.js';
import { spawnSync } from 'node:child_process';
import { loadAddon, native } from '../../src/native/loader.js';
import { assertBf16, bf16, describeCuda, get, itOnDevice, put, roundBf16 } from '../helpers/cuda-harness.js';
import * as cudaLinalg from '../helpers/cuda-linalg.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { leaf, rand, vals } from '../helpers/op-inputs.js';
import { matmulRef } from '../helpers/reference.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

for (const dtype of ['float32', 'float64'] as const) {
  const tol = tolFor(dtype);
  describe(`forward ${dtype}`, () => {
    it('linear at odd sizes equals x·wᵀ + b', () => {
      const x = rand([3, 7, 13], dtype);
      const w = rand([11, 13], dtype);
      const b = rand([11], dtype);
      const ref = matmulRef(vals(x), vals(w), 21, 11, 13, false, true);
      const bv = vals(b);
      for (let i = 0; i < ref.length; i++) ref[i]! += bv[i % 11]!;
      assertClose(linear(x, w, b).toArray(), ref, tol, 'linear');
    });

    it('linear with K = 0 gives the bias in every row, and the bias gradient sums the rows of g', () => {
      // As F.linear of an empty feature dimension: every leading row still exists (rows were once counted as
      // numel / K, which made them 0 and the output all zeros).
      const x = native().empty(dtype, [3, 2, 0], 'cpu');
      const w = native().empty(dtype, [4, 0], 'cpu');
      const b = native().fromTypedArray(dtype === 'float32' ? Float32Array.from([1.5, -2, 0.25, 3]) : Float64Array.from([1.5, -2, 0.25, 3]), [4]);
      const y = native().linear(x, w, b);
      expect(y.shape).toEqual([3, 2, 4]);
      expect(Array.from(y.read())).toEqual(Array.from({ length: 24 }, (_, i) => [1.5, -2, 0.25, 3][i % 4]));
      const g = native().fromTypedArray(dtype === 'float32' ? Float32Array.from({ length: 24 }, (_, i) => i) : Float64Array.from({ length: 24 }, (_, i) => i), [3, 2, 4]);
      const [dx, dw, db] = native().linearBackward(g, x, w, true, true, true);
      expect(dx!.shape).toEqual([3, 2, 0]);
      expect(dw!.shape).toEqual([4, 0]);
      expect(Array.from(db!.read())).toEqual([0, 1, 2, 3].map((c) => [0, 1, 2, 3, 4, 5].reduce((s, r) => s + 4 * r + c, 0)));
    });
  });
}

describe('gradcheck: linear algebra', () => {
  for (const ta of [false, true])
    for (const tb of [false, true])
      it(`matmul batched transA=${ta} transB=${tb}`, () => {
        const a = leaf(2, ...(ta ? [5, 3] : [3, 5]));
        const b = leaf(2, ...(tb ? [4, 5] : [5, 4]));
        gradcheck(([a, b]) => matmul(a!, b!, { transA: ta, transB: tb }), [a, b]);
      });

  it('matmul with a 2-D b shared across the batch', () => {
    gradcheck(([a, b]) => matmul(a!, b!), [leaf(3, 2, 5), leaf(5, 3)]);
    gradcheck(([a, b]) => matmul(a!, b!, { transA: true, transB: true }), [leaf(2, 5, 3), leaf(4, 5)]);
  });

  it('linear with and without bias, over leading dims', () => {
    gradcheck(([x, w, b]) => linear(x!, w!, b!), [leaf(2, 3, 5), leaf(4, 5), leaf(4)]);
    gradcheck(([x, w]) => linear(x!, w!), [leaf(7, 5), leaf(3, 5)]);
  });
});

// ---- GEMM backends: the BLAS and the built-in GEMM against each other and a naive product ----

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  const rng = new Rng(5);
  const rand = (n: number, dtype: DType) => tensor(Array.from({ length: n }, () => rng.uniform() * 2 - 1), [n], dtype);

  describe('GEMM backends', () => {
    it('reports which BLAS is linked and which GEMM the ops use', () => {
      expect(['openblas', 'builtin']).toContain(runtimeInfo().blas);
      expect(['blas', 'builtin']).toContain(runtimeInfo().gemm);
      if (runtimeInfo().blas === 'builtin') expect(runtimeInfo().gemm).toBe('builtin');
    });

    // Odd sizes straddle the built-in kernel's 4-row, 2-vector and 64/256 blocking edges.
    const shapes: Array<[number, number, number]> = [[1, 1, 1], [3, 5, 7], [17, 33, 9], [65, 70, 257], [130, 31, 300]];
    for (const dtype of ['float32', 'float64'] as const)
      for (const [M, N, K] of shapes)
        for (const ta of [false, true])
          for (const tb of [false, true])
            it(`${dtype} M=${M} N=${N} K=${K} transA=${ta} transB=${tb}`, () => {
              const a = rand(M * K, dtype);
              const b = rand(K * N, dtype);
              const A = a.native.reshape(ta ? [K, M] : [M, K]);
              const B = b.native.reshape(tb ? [N, K] : [K, N]);
              const blas = native().matmul(A, B, ta, tb, 'blas').read();
              const builtin = native().matmul(A, B, ta, tb, 'builtin').read();
              const auto = native().matmul(A, B, ta, tb, 'auto').read();
              const ref = matmulRef(a.toArray(), b.toArray(), M, N, K, ta, tb);
              const eps = dtype === 'float32' ? 1.2e-7 : 2.2e-16;
              // Error of a K-term dot product grows with K: atol scales with K·eps.
              const tol = { atol: 4 * K * eps, rtol: 16 * eps };
              assertClose(blas, ref, tol, 'BLAS vs naive');
              assertClose(builtin, ref, tol, 'builtin vs naive');
              assertClose(builtin, blas, tol, 'builtin vs BLAS');
              // 'auto' is whichever the policy picked, bit for bit.
              expect(Array.from(auto)).toEqual(Array.from(runtimeInfo().gemm === 'builtin' ? builtin : blas));
              A.dispose();
              B.dispose();
            });

    // linear hands its bias to the GEMM, which adds it to each block of C after the product (blas.h). Each path
    // runs in a child (the policy is read once per process from CLOZE_GEMM) at sizes that split C into blocks:
    // by rows (tall) and, on the BLAS path, by columns (wide, where the bias is read from the block's column).
    // linear's output must be that path's matmul plus the bias, rounded once, bit for bit.
    it.each([['builtin', 300, 130, 70], ['blas', 300, 130, 70], ['builtin', 70, 300, 130], ['blas', 70, 300, 130]] as const)('linear adds its bias to every block of the %s GEMM, after the product: [%i × %i] rows of %i', (path, R, N, K) => {
      const script = `
        const a = require(process.argv[1]);
        const val = (n, s) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s) * 0.5);
        const [R, N, K] = [${R}, ${N}, ${K}];
        const x = a.fromTypedArray(val(R * K, 0.37), [R, K]), w = a.fromTypedArray(val(N * K, 0.11), [N, K]), b = a.fromTypedArray(val(N, 1.3), [N]);
        const y = a.linear(x, w, b).read(), p = a.matmul(x, w, false, true, process.env.CLOZE_GEMM).read(), bv = b.read();
        let diff = 0, moved = 0;
        for (let i = 0; i < y.length; i++) { if (y[i] !== Math.fround(p[i] + bv[i % N])) diff++; if (y[i] !== p[i]) moved++; }
        console.log(JSON.stringify({ gemm: a.info().gemm, diff, moved, n: y.length }));`;
      const r = spawnSync(process.execPath, ['-e', script, loadAddon().path], { encoding: 'utf8', env: { ...process.env, CLOZE_GEMM: path } });
      expect(r.stderr).toBe('');
      const o = JSON.parse(r.stdout.trim()) as { gemm: string; diff: number; moved: number; n: number };
      expect(o.gemm).toBe(path);  // the policy CLOZE_GEMM asked for (without OpenBLAS, 'blas' runs the built-in)
      expect(o).toMatchObject({ diff: 0, n: R * N });
      expect(o.moved).toBeGreaterThan(R * N * 0.9);  // the bias was added (not all zero where it lands)
    });

    // The GEMM outputs are not zero-filled (bind_linalg.cc out_tensor), so every path must write every element,
    // products over an empty inner dimension included (a BLAS may refuse their lda = 0 and leave C as it was). Each
    // case runs twice in a child (the GEMM policy is read once per process): first on fresh memory, then with one
    // NaN-filled block in the addon's cache per output (blocks of 128 KiB and more are cached and handed out again
    // unfilled; the cache is emptied first, so each output takes its own block, which cachedBytes() confirms). An
    // element left unwritten then shows as a NaN, or as a difference from the first run.
    it.each(['builtin', 'blas'] as const)('the %s GEMM path writes every element of outputs that come from recycled memory, K, R and N = 0 included', (path) => {
      const script = `
        const a = require(process.argv[1]);
        const f32 = (n, s) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * s) * 0.5);
        const t = (shape, s) => a.fromTypedArray(f32(shape.reduce((x, y) => x * y, 1), s), shape);
        const e = (shape) => a.empty('float32', shape, 'cpu');
        const impl = process.env.CLOZE_GEMM;
        const list = (r) => (Array.isArray(r) ? r : [r]).filter((x) => x);
        const cases = {
          linearK0: () => [e([256, 0]), e([128, 0]), t([128], 1.3)],
          matmulK0: () => [e([256, 0]), e([0, 128])],
          linear: () => [t([256, 64], 0.37), t([128, 64], 0.11), t([128], 1.3)],
          matmulBatched: () => [t([4, 64, 96], 0.2), t([4, 96, 128], 0.3)],
          linearBackward: () => [t([256, 256], 0.5), t([256, 256], 0.6), t([256, 256], 0.7)],
          linearBackwardR0: () => [e([0, 32768]), e([0, 4]), t([32768, 4], 0.8)],
          linearBackwardN0: () => [e([256, 0]), t([256, 256], 0.9), e([0, 256])],
          matmulBackwardM0: () => [e([0, 128]), e([0, 256]), t([256, 128], 0.4)],
          matmulBackwardSharedB: () => [t([4, 64, 128], 0.15), t([4, 64, 256], 0.25), t([256, 128], 0.35)],
        };
        const ops = {
          linearK0: (x) => a.linear(x[0], x[1], x[2]),
          matmulK0: (x) => a.matmul(x[0], x[1], false, false, impl),
          linear: (x) => a.linear(x[0], x[1], x[2]),
          matmulBatched: (x) => a.matmul(x[0], x[1], false, false, impl),
          linearBackward: (x) => a.linearBackward(x[0], x[1], x[2], true, true, false),
          linearBackwardR0: (x) => a.linearBackward(x[0], x[1], x[2], true, true, true),
          linearBackwardN0: (x) => a.linearBackward(x[0], x[1], x[2], true, true, true),
          matmulBackwardM0: (x) => a.matmulBackward(x[0], x[1], x[2], false, false, true, true),
          matmulBackwardSharedB: (x) => a.matmulBackward(x[0], x[1], x[2], false, false, true, true),
        };
        const out = {};
        for (const name of Object.keys(cases)) {
          const x = cases[name]();
          const fresh = list(ops[name](x)).map((y) => ({ shape: y.shape, v: y.read() }));
          a.releaseCache();
          // One NaN block per output of 128 KiB or more (smaller ones are not cached and come from malloc).
          const big = fresh.filter((y) => y.v.length * 4 >= 131072);
          const blocks = big.map((y) => { const g = e([y.v.length]); g.fill(NaN); return g; });
          for (const g of blocks) g.dispose();
          const before = a.cachedBytes();
          const again = list(ops[name](x)).map((y) => y.read());
          out[name] = {
            shapes: fresh.map((y) => y.shape),
            big: big.length,
            cachedBefore: before > 0,
            tookEvery: a.cachedBytes() === 0,
            nan: again.reduce((n, v) => n + v.filter(Number.isNaN).length, 0),
            same: again.every((v, i) => v.length === fresh[i].v.length && v.every((z, j) => z === fresh[i].v[j])),
            nonzero: fresh.map((y) => y.v.filter((z) => z !== 0).length),
          };
          if (name === 'linearK0') {
            const b = x[2].read();
            out[name].biasRows = fresh[0].v.every((z, j) => z === b[j % 128]);
          }
        }
        console.log(JSON.stringify({ gemm: a.info().gemm, out }));`;
      const r = spawnSync(process.execPath, ['-e', script, loadAddon().path], { encoding: 'utf8', env: { ...process.env, CLOZE_GEMM: path } });
      expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });  // OpenBLAS prints parameter errors to stderr
      type Case = { shapes: number[][]; big: number; cachedBefore: boolean; tookEvery: boolean; nan: number; same: boolean; nonzero: number[]; biasRows?: boolean };
      const o = JSON.parse(r.stdout.trim()) as { gemm: string; out: Record<string, Case> };
      expect(o.gemm).toBe(path);
      for (const [name, c] of Object.entries(o.out)) {
        expect({ name, cachedBefore: c.cachedBefore, tookEvery: c.tookEvery, nan: c.nan, same: c.same }).toEqual({ name, cachedBefore: true, tookEvery: true, nan: 0, same: true });
      }
      // How many outputs sat on NaN blocks, and which are all zeros (the sums over nothing) or not.
      const expectCase = (name: string, shapes: number[][], big: number, nonzero: Array<'none' | 'some'>) => {
        const c = o.out[name]!;
        expect(c.shapes).toEqual(shapes);
        expect(c.big).toBe(big);
        expect(c.nonzero.map((n) => (n === 0 ? 'none' : 'some'))).toEqual(nonzero);
      };
      expectCase('linearK0', [[256, 128]], 1, ['some']);
      expect(o.out.linearK0!.biasRows).toBe(true);
      expectCase('matmulK0', [[256, 128]], 1, ['none']);
      expectCase('linear', [[256, 128]], 1, ['some']);
      expectCase('matmulBatched', [[4, 64, 128]], 1, ['some']);
      expectCase('linearBackward', [[256, 256], [256, 256]], 2, ['some', 'some']);
      expectCase('linearBackwardR0', [[0, 4], [32768, 4], [32768]], 2, ['none', 'none', 'none']);
      expectCase('linearBackwardN0', [[256, 256], [0, 256], [0]], 1, ['none', 'none', 'none']);
      expectCase('matmulBackwardM0', [[0, 256], [256, 128]], 1, ['none', 'none']);
      expectCase('matmulBackwardSharedB', [[4, 64, 256], [256, 128]], 2, ['some', 'some']);
    });
  });
}

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on cuda vs float64 on the CPU, bfloat16 by the naive-bf16 rule.

// A block of its own: these cases' helpers share names with the CPU cases' above.
{
  const { cpu64, F32, mm, vals } = cudaLinalg;

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

    itOnDevice("accepts impl 'auto' and rejects the CPU-only 'builtin' and 'blas' on cuda", () => {
      const a = put(vals(6, 1), [2, 3], 'float32', 'cuda');
      const b = put(vals(6, 2), [3, 2], 'float32', 'cuda');
      expect(native().matmul(a, b, false, false, 'auto').shape).toEqual([2, 2]);
      for (const impl of ['builtin', 'blas'] as const)
        expect(() => native().matmul(a, b, false, false, impl)).toThrow(/Expected 'auto' .* for impl but received 'b/);
    });

    it('handles K = 0 (zeros)', () => {
      const z = native().matmul(native().empty('float32', [3, 0], 'cuda'), native().empty('float32', [0, 4], 'cuda'), false, false);
      expect(Array.from(get(z))).toEqual(new Array(12).fill(0));
    });

    itOnDevice('refuses operands on different devices', () => {
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

    it("the bias epilogue and its fallbacks agree: an aligned bias, a bias view off 16-byte alignment, K = 0", () => {
      // cuBLASLt adds an aligned bias in the GEMM's epilogue; a bias view one element into its storage takes the
      // fill-then-accumulate path, and K = 0 leaves the bias alone in every row. All against float64 on the CPU.
      const [R, K, N] = [37, 19, 23];
      const xv = vals(R * K, 51), wv = vals(N * K, 52), bv = vals(N + 1, 53);
      const ref = get(native().linear(cpu64(xv, [R, K]), cpu64(wv, [N, K]), cpu64(bv.slice(1), [N])));
      const x = put(xv, [R, K], 'float32', 'cuda'), w = put(wv, [N, K], 'float32', 'cuda');
      const whole = put(bv, [N + 1], 'float32', 'cuda');
      const aligned = put(bv.slice(1), [N], 'float32', 'cuda');
      assertClose(get(native().linear(x, w, aligned)), ref, F32, 'aligned bias');
      assertClose(get(native().linear(x, w, whole.view(1, [N]))), ref, F32, 'bias view at element 1');
      const empty = native().linear(native().empty('float32', [R, 0], 'cuda'), native().empty('float32', [N, 0], 'cuda'), whole.view(1, [N]));
      expect(Array.from(get(empty))).toEqual(Array.from({ length: R * N }, (_, i) => Math.fround(bv[1 + (i % N)]!)));
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
}
