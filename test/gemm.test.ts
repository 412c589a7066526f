/** The BLAS GEMM and the built-in fallback GEMM agree with each other and with a naive product. */
import { describe, expect, it } from 'vitest';
import { Rng, runtimeInfo, tensor, type DType } from '../src/index.js';
import { native } from '../src/native/loader.js';
import { matmulRef } from './helpers/reference.js';
import { assertClose } from './helpers/tolerance.js';

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
});
