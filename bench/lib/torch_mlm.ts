/**
 * Runs bench/baselines/mlm_torch.py (one PyTorch MLM training step setup per
 * child process) and parses the JSON it prints; failures become an
 * `{ ok: false }` reason, as in torch.ts. The child's OpenMP and OpenBLAS
 * pools get the same thread count as torch.set_num_threads.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KEEP_MEMORY_ENV } from './torch.js';

export interface TorchMlmResult {
  ok: true;
  torch: string;
  python: string;
  threads: number;
  blas: string;
  params: number;
  masked_rows: number;
  median_ms: number;
  samples_ms: number[];
  tokens_per_s: number;
  cpu_user_ms: number;
  cpu_sys_ms: number;
  losses: number[];
  step_rss_growth_bytes: number | null;
  peak_rss_bytes: number;
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

function scriptPath(): string | null {
  for (const rel of ['../../../bench/baselines/mlm_torch.py', '../baselines/mlm_torch.py']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return null;
}

export function runTorchMlm(o: TorchMlmOptions): TorchMlmOutcome {
  if (!o.python) return { ok: false, error: 'disabled (--no-torch)' };
  const script = scriptPath();
  if (!script) return { ok: false, error: 'bench/baselines/mlm_torch.py not found' };
  const n = String(o.threads);
  const r = spawnSync(
    o.python,
    [script, '--threads', n, '--batch', String(o.B), '--length', String(o.L), '--mask-ratio', String(o.maskRatio),
      '--seed', String(o.seed), '--warmup', String(o.warmup), '--reps', String(o.reps)],
    {
      encoding: 'utf8',
      timeout: 300_000,
      env: { ...process.env, ...(o.keepMemory ? KEEP_MEMORY_ENV : {}), OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n },
    },
  );
  if (r.error) return { ok: false, error: `could not run ${o.python}: ${r.error.message}` };
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as TorchMlmOutcome;
    if (!parsed.ok && !parsed.error) return { ok: false, error: 'no result' };
    return parsed;
  } catch {
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    return { ok: false, error: `${o.python} exited with status ${r.status}: ${why}` };
  }
}
