/**
 * matmul (the linalg family), float32, C[M×N] = A[M×K]·B[K×N]: the BLAS
 * path ('blas': OpenBLAS when built with it, whatever the ops' policy) against the built-in fallback
 * ('builtin'), each read against the measured FMA peak. Output allocation
 * (zero-filled) is part of each call, as it is for users.
 */
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import type { BenchArgs } from '../lib/args.js';
import { randomArray } from '../lib/data.js';
import { gemmFlops, gflops } from '../lib/flops.js';
import { fmt, fmtMs, fmtPct, fmtRatio, printTable, section } from '../lib/table.js';
import { timeIt } from '../lib/timing.js';

interface MatmulCase {
  name: string;
  M: number;
  N: number;
  K: number;
  /** op(A) = Aᵀ (A stored [K, M]) / op(B) = Bᵀ (B stored [N, K]), as the linear layers' products use them. */
  transA?: boolean;
  transB?: boolean;
}

export interface MatmulRow extends MatmulCase {
  autoMs: number;
  builtinMs: number;
}

function cases(sizes: readonly number[]): MatmulCase[] {
  return [
    ...sizes.map((n) => ({ name: `square ${n}`, M: n, N: n, K: n })),
    // BERT-base projection: 4096 tokens (e.g. 32×128) × d_model 768 → 768.
    { name: 'BERT proj', M: 4096, N: 768, K: 768 },
    // bert-mini's step (32×128 tokens): the FFN's x·Wᵀ and its weight gradient dYᵀ·X, and a fused-head chunk
    // h·W_chunkᵀ (614 masked rows, 4096 vocabulary rows): a power-of-two row stride in op(B).
    { name: 'FFN x·Wᵀ', M: 4096, N: 1024, K: 256, transB: true },
    { name: 'FFN dW = dYᵀ·X', M: 1024, N: 256, K: 4096, transA: true },
    { name: 'head chunk', M: 614, N: 4096, K: 256, transB: true },
  ];
}

function matrix(rows: number, cols: number, seed: number): NativeTensor {
  const t = native().empty('float32', [rows, cols]);  // 64-byte aligned native memory
  t.write(randomArray(rows * cols, seed));
  return t;
}

export function runMatmul(args: BenchArgs, peakGflops: number): MatmulRow[] {
  section(`matmul float32, ${args.threads} thread(s): 'blas' (OpenBLAS) vs 'builtin', against peak ${fmt(peakGflops)} GFLOP/s`);
  const rows: MatmulRow[] = [];
  for (const c of cases(args.matmulSizes)) {
    const ta = c.transA ?? false, tb = c.transB ?? false;
    const a = ta ? matrix(c.K, c.M, 1) : matrix(c.M, c.K, 1);
    const b = tb ? matrix(c.N, c.K, 2) : matrix(c.K, c.N, 2);
    const time = (impl: 'blas' | 'builtin'): number =>
      timeIt(() => native().matmul(a, b, ta, tb, impl).dispose(), { warmup: args.warmup, reps: args.reps }).medianMs;
    rows.push({ ...c, autoMs: time('blas'), builtinMs: time('builtin') });
    a.dispose();
    b.dispose();
  }
  printTable(
    [
      { header: 'case', align: 'l' }, { header: 'M×N×K', align: 'l' },
      { header: 'auto ms' }, { header: 'auto GFLOP/s' }, { header: 'auto/peak' },
      { header: 'builtin ms' }, { header: 'builtin GFLOP/s' }, { header: 'builtin/peak' },
      { header: 'auto vs builtin' },
    ],
    rows.map((r) => {
      const f = gemmFlops(r.M, r.N, r.K);
      const ga = gflops(f, r.autoMs);
      const gb = gflops(f, r.builtinMs);
      return [
        r.name, `${r.M}×${r.N}×${r.K}${r.transA ? ' Aᵀ' : ''}${r.transB ? ' Bᵀ' : ''}`,
        fmtMs(r.autoMs), fmt(ga), fmtPct(ga / peakGflops),
        fmtMs(r.builtinMs), fmt(gb), fmtPct(gb / peakGflops),
        fmtRatio(r.builtinMs / r.autoMs),
      ];
    }),
  );
  console.log('auto vs builtin: builtin time ÷ auto time (>1 = BLAS faster). Median ms per call.');
  return rows;
}
