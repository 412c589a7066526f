/**
 * Runs bench/baselines/mlm_torch.py (one PyTorch MLM training step setup per
 * child process) and parses the JSON it prints; failures become an
 * `{ ok: false }` reason (runBaseline in torch.ts). The child's OpenMP and OpenBLAS
 * pools get the same thread count as torch.set_num_threads.
 */
import { runBaseline, type TorchStepReport } from './torch.js';

export interface TorchMlmResult extends TorchStepReport {
  masked_rows: number;
  tokens_per_s: number;
}

export type TorchMlmOutcome = TorchMlmResult | { ok: false; error: string };

export interface TorchMlmOptions {
  python: string;
  threads: number;
  warmup: number;
  reps: number;
  B: number;
  L: number;
  maskRatio: number;
  seed: number;
  /** Add KEEP_MEMORY_ENV (glibc keeps freed memory) to the child's environment. */
  keepMemory?: boolean;
}

export function runTorchMlm(o: TorchMlmOptions): TorchMlmOutcome {
  return runBaseline<TorchMlmResult>({
    python: o.python,
    script: 'mlm_torch.py',
    args: ['--batch', String(o.B), '--length', String(o.L), '--mask-ratio', String(o.maskRatio),
      '--seed', String(o.seed), '--warmup', String(o.warmup), '--reps', String(o.reps)],
    threads: o.threads,
    keepMemory: o.keepMemory,
  });
}
