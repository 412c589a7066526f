/**
 * One full MLM training step of cloze's BertForMaskedLM (bert-mini: post-LN,
 * absolute positions, hidden dropout 0.1): loss on the masked rows through
 * the fused head, backward, AdamW.stepClipped(1.0) (clipping read by the kernel, as the training loop), zeroGrad.
 *
 * It runs in a child process of its own (`--child-step`), so the peak RSS it
 * reports (VmHWM at exit) is that of a process that only built the model and
 * trained it, as the torch child's figure is. The parent reads one JSON line.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { AdamW, backward, readNorm, BertForMaskedLM, bertPreset, Profiler, runtimeInfo, scope, setNumThreads } from '../../src/index.js';
import { measureGemmGflops } from '../lib/peak.js';
import { mlmBatch } from '../lib/mlm_batch.js';
import { peakRssGrowth, vmHwmBytes } from '../lib/rss.js';
import { median, nowMs } from '../lib/timing.js';

export const STEP_SHAPE = { B: 32, L: 128, maskRatio: 0.15, seed: 1234 } as const;

export interface StepResult {
  ok: true;
  threads: number;
  params: number;
  maskedRows: number;
  medianMs: number;
  samplesMs: number[];
  tokensPerS: number;
  cpuUserMs: number;
  cpuSysMs: number;
  losses: number[];
  /** Peak RSS growth over one step after warm-up (bench/lib/rss.ts); null without /proc. */
  stepRssGrowthBytes: number | null;
  /** VmHWM at the end: the whole process's peak resident set. */
  peakRssBytes: number | null;
  /** The step's counted work (the profiler's shape-derived FLOPs of one extra step), GFLOP. */
  stepGflop: number;
  /** The ops' GEMM on a 1024³ float32 product in this process (peak.ts), GFLOP/s. */
  gemmGflops: number;
}

export type StepOutcome = StepResult | { ok: false; error: string };


/** Body of the child process: builds, trains, prints one JSON line. */
export function childStep(threads: number, warmup: number, reps: number): void {
  setNumThreads(threads);
  const { B, L, maskRatio, seed } = STEP_SHAPE;
  const preset = bertPreset('bert-mini');
  const model = new BertForMaskedLM(preset.config, { seed: 0 });
  model.train();
  const batch = mlmBatch(B, L, model.config.vocabSize, maskRatio, seed);
  const opt = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.01 });
  const losses: number[] = [];
  const step = (): void => {
    opt.zeroGrad();
    scope(() => {
      const loss = model.loss(batch);
      losses.push(loss.item());
      backward(loss);
    });
    // As the training loop: the norm is read by the AdamW kernel and on the host after the step is queued.
    readNorm(opt.stepClipped(1.0));
  };
  for (let i = 0; i < Math.max(1, warmup); i++) step();
  const gc = (globalThis as { gc?: () => void }).gc;
  const samples: number[] = [];
  const c0 = process.cpuUsage();
  for (let r = 0; r < reps; r++) {
    gc?.();
    const t0 = nowMs();
    step();
    samples.push(nowMs() - t0);
  }
  const c = process.cpuUsage(c0);
  gc?.();
  const growth = peakRssGrowth(step);
  // One more step under the profiler, for its FLOP count only (its time is not a sample), then the GEMM rate.
  const prof = new Profiler();
  prof.run(step);
  const rep = prof.report();
  const stepGflop = rep.families.reduce((a, f) => a + f.flops, 0) / Math.max(1, rep.steps) / 1e9;
  const gemmGflops = measureGemmGflops();
  const med = median(samples);
  const out: StepResult = {
    ok: true,
    threads: runtimeInfo().threads,
    params: model.parameters().reduce((a, p) => a + p.size, 0),
    maskedRows: batch.rows.size,
    medianMs: med,
    samplesMs: samples,
    tokensPerS: (B * L) / (med / 1e3),
    cpuUserMs: c.user / 1e3 / reps,
    cpuSysMs: c.system / 1e3 / reps,
    losses,
    stepRssGrowthBytes: growth,
    peakRssBytes: vmHwmBytes(),
    stepGflop,
    gemmGflops,
  };
  console.log(JSON.stringify(out));
}

/** Runs childStep in a fresh `node --expose-gc` process (this build's dist/bench/mlm-step.js). */
export function runOurStep(threads: number, warmup: number, reps: number): StepOutcome {
  const entry = fileURLToPath(new URL('../mlm-step.js', import.meta.url));
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', entry, '--child-step', '--threads', String(threads), '--warmup', String(warmup), '--reps', String(reps)],
    { encoding: 'utf8', timeout: 300_000 },
  );
  if (r.error) return { ok: false, error: `could not run ${process.execPath}: ${r.error.message}` };
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as StepOutcome;
  } catch {
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    return { ok: false, error: `child exited with status ${r.status}: ${why}` };
  }
}
