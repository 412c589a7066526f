/**
 * `npm run bench:matmul-attention`: matmul (the built-in GEMM against
 * OpenBLAS) and fused attention (against the same math from our own ops and
 * against PyTorch), each read against the machine's measured FMA peak.
 * Every implementation runs on the same thread count (--threads, default all
 * cores). Options: see bench/lib/args.ts or `--help`.
 */
import { statSync } from 'node:fs';
import { totalmem } from 'node:os';
import { runtimeInfo, setNumThreads } from '../src/index.js';
import { parseArgs } from './lib/args.js';
import { ContentionMeter, describeContention } from './lib/contention.js';
import { sourceState } from './lib/header.js';
import { describeMachine, machineLine } from './lib/machine.js';
import { measurePeakGflops } from './lib/peak.js';
import { fmt } from './lib/table.js';
import { hasGc, nowMs } from './lib/timing.js';
import { runAttention } from './suites/attention.js';
import { runMatmul } from './suites/linalg.js';

function measurePeak(threads: number): number {
  setNumThreads(threads);
  return measurePeakGflops();
}

function main(): void {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 2;
    return;
  }
  const t0 = nowMs();
  const whole = new ContentionMeter();
  const peakMeter = new ContentionMeter();
  const peak1 = measurePeak(1);
  const peak = args.threads === 1 ? peak1 : measurePeak(args.threads);
  const peakOthers = peakMeter.othersShare();
  const info = runtimeInfo();
  console.log('cloze bench:matmul-attention');
  console.log(`date      ${new Date().toISOString()}`);
  console.log(`cpu       ${machineLine(describeMachine())}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`);
  console.log(`blas      ${info.blasConfig ?? info.blas}`);
  console.log(`runtime   node ${process.version}, addon ${info.addon}, BLAS ${info.blas} (${info.blasCore}, ${info.blasThreads} thread(s)), pool ${info.threads} thread(s), SIMD ${info.simdBytes * 8}-bit`);
  console.log(`source    ${sourceState()}; addon built ${statSync(info.addon).mtime.toISOString()}`);
  const mallocEnv = Object.entries(process.env).filter(([k]) => k.startsWith('MALLOC_') || k.startsWith('GLIBC_TUNABLES'));
  if (mallocEnv.length) {
    console.log(`allocator ${mallocEnv.map(([k, v]) => `${k}=${v}`).join(' ')} (inherited by both torch children, so the`);
    console.log('          "torch" column is not the default environment; "torch kept" sets its two MALLOC_ variables over these)');
  }
  console.log(`peak      ${fmt(peak)} GFLOP/s float32 FMA on ${args.threads} thread(s) (${fmt(peak1)} on 1), best of 5 runs of measurePeakGflops`);
  console.log(`          during the peak measurement, ${describeContention(peakOthers)}`);
  if (!hasGc) console.log('note      run with node --expose-gc to collect garbage between samples');
  console.log(`timing    warm-up ${args.warmup}, median of ${args.reps} samples (short calls batched to ≥ 20 ms per sample)`);

  for (const [name, run] of [['matmul', runMatmul], ['attention', runAttention]] as const) {
    if (args.only !== 'all' && args.only !== name) continue;
    const m = new ContentionMeter();
    run(args, peak);
    console.log(`${name}: ${describeContention(m.othersShare())}`);
  }
  console.log(`\ntotal bench time ${((nowMs() - t0) / 1000).toFixed(0)} s; ${describeContention(whole.othersShare())}`);
}

main();
