/**
 * `npm run bench:mlm -- --profile`: the MLM training step of bench/suites/mlm_step.ts
 * under the per-native-call profiler (src/profile): per op family, wall time, share
 * of the step, achieved GFLOP/s (GEMMs by call site, attention, the fused head, from
 * their shapes) or GB/s (memory-bound ops, from the bytes of their tensors), and
 * user/system CPU time. The families sum to the step; "JS overhead between calls" is
 * the step's wall time outside native calls (the profiler's own timers included).
 */
import { AdamW, backward, readNorm, BertForMaskedLM, bertPreset, Profiler, scope, setNumThreads, type BertPresetName, type ProfileReport } from '../../src/index.js';
import { mlmBatch } from '../lib/mlm_batch.js';
import { fmt, fmtMs, fmtPct, printTable, section } from '../lib/table.js';

export interface ProfileShape {
  model: BertPresetName;
  B: number;
  L: number;
  maskRatio: number;
  seed: number;
}

/** Builds the model and runs warm-up steps unprofiled, then `reps` profiled steps; returns the report. */
export function profileMlmStep(shape: ProfileShape, threads: number, warmup: number, reps: number): ProfileReport {
  setNumThreads(threads);
  const model = new BertForMaskedLM(bertPreset(shape.model).config, { seed: 0 });
  model.train();
  const batch = mlmBatch(shape.B, shape.L, model.config.vocabSize, shape.maskRatio, shape.seed);
  const opt = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.01 });
  const step = (): void => {
    opt.zeroGrad();
    scope(() => {
      const loss = model.loss(batch);
      loss.item();
      backward(loss);
    });
    // As the training loop: the norm is read by the AdamW kernel and on the host after the step is queued.
    readNorm(opt.stepClipped(1.0));
  };
  for (let i = 0; i < warmup; i++) step();
  const gc = (globalThis as { gc?: () => void }).gc;
  const prof = new Profiler();
  for (let r = 0; r < reps; r++) {
    gc?.();
    prof.run(step);
  }
  return prof.report();
}

/** Prints the report as one table, per step (totals ÷ steps). */
export function printProfile(r: ProfileReport): void {
  const n = Math.max(1, r.steps);
  section(`profile: ${r.steps} step(s), per step ${fmtMs(r.stepMs / n)} ms wall, ${fmt(r.userMs / n, 0)} ms user + ${fmt(r.sysMs / n, 0)} ms system CPU`);
  console.log('GFLOP/s from shapes (GEMM 2·M·N·K per product; attention 4·B·H·Lq·Lk·Dh forward, 2.5× backward; head 2·M·D·V forward, ×(1 + grads) backward as it');
  console.log('recomputes the logits); GB/s = bytes of the tensor arguments and results (in-place outputs counted again) ÷ time, a lower bound on traffic.');
  console.log('CPU = process.cpuUsage over the calls (all threads; the kernel accounts short calls coarsely).');
  console.log("zeroGrad's fill and add's gradient copies are timed; other native-tensor methods (read, small fills, copies, dispose) count as");
  console.log("JS overhead, as do the profiler's own timers.");
  const rows = r.families.map((f) => [
    f.family,
    String(f.calls / n),
    fmtMs(f.ms / n),
    fmtPct(f.ms / r.stepMs),
    f.kind === 'compute' && f.ms > 0 ? fmt(f.flops / (f.ms * 1e6), 1) : '',
    f.kind === 'memory' && f.ms > 0 ? fmt(f.bytes / (f.ms * 1e6), 1) : '',
    fmt(f.userMs / n, 1),
    fmt(f.sysMs / n, 1),
  ]);
  rows.push(['total', '', fmtMs(r.stepMs / n), fmtPct(1), '', '', fmt(r.userMs / n, 1), fmt(r.sysMs / n, 1)]);
  printTable(
    [{ header: 'family', align: 'l' }, { header: 'calls' }, { header: 'ms' }, { header: 'share' }, { header: 'GFLOP/s' }, { header: 'GB/s' },
      { header: 'user ms' }, { header: 'sys ms' }],
    rows,
  );
  const flops = r.families.reduce((a, f) => a + f.flops, 0) / n;
  console.log(`native ${fmtPct(r.nativeMs / r.stepMs)} of the step; counted work ${fmt(flops / 1e9, 2)} GFLOP per step`);
}
