/**
 * `npm run bench:kernels`: GEMM and fused-attention rates against the
 * machine's measured FMA peak and against baselines from the same run.
 * Every implementation runs on the same thread count (--threads, default all
 * cores). Options: see bench/lib/args.ts or `--help`.
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { native } from '../src/native/loader.js';
import { runtimeInfo, setNumThreads } from '../src/index.js';
import { parseArgs } from './lib/args.js';
import { ContentionMeter, describeContention } from './lib/contention.js';
import { fmt } from './lib/table.js';
import { hasGc, nowMs } from './lib/timing.js';
import { runAttention } from './suites/attention.js';
import { runGemm } from './suites/gemm.js';

/**
 * Best of 5 runs of the native FMA microbenchmark, after one warm-up run. A
 * peak is an upper bound and noise (clock ramp, a neighbour's process) only
 * lowers a run, so the maximum is the estimate here, not the median.
 */
function measurePeak(threads: number, ms = 200): number {
  setNumThreads(threads);
  native().measurePeakGflops(ms);
  return Math.max(...[0, 1, 2, 3, 4].map(() => native().measurePeakGflops(ms)));
}

/** Which sources were measured: the git revision and any uncommitted native or TS sources. */
function sourceState(): string {
  try {
    const git = (...a: string[]) => execFileSync('git', a, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const rev = git('rev-parse', '--short', 'HEAD').trim();
    // porcelain lines are "XY path": the status letters may start with a space
    const dirty = git('status', '--porcelain', '--', 'native/src', 'src').split('\n').filter(Boolean).map((l) => l.slice(3));
    return dirty.length ? `git ${rev} with uncommitted changes in ${dirty.join(', ')}` : `git ${rev}, native/src and src clean`;
  } catch {
    return 'not a git checkout';
  }
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
  console.log('cloze bench:kernels');
  console.log(`date      ${new Date().toISOString()}`);
  console.log(`cpu       ${cpus()[0]?.model ?? 'unknown'}, ${cpus().length} logical cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`);
  console.log(`runtime   node ${process.version}, addon ${info.addon}, BLAS ${info.blas} (${info.blasThreads} thread(s)), pool ${info.threads} thread(s), SIMD ${info.simdBytes * 8}-bit`);
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

  for (const [name, run] of [['gemm', runGemm], ['attention', runAttention]] as const) {
    if (args.only !== 'all' && args.only !== name) continue;
    const m = new ContentionMeter();
    run(args, peak);
    console.log(`${name}: ${describeContention(m.othersShare())}`);
  }
  console.log(`\ntotal bench time ${((nowMs() - t0) / 1000).toFixed(0)} s; ${describeContention(whole.othersShare())}`);
}

main();
