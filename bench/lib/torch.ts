/**
 * Runs bench/baselines/attention_torch.py as a child process, one sequence
 * length per process, and parses the JSON it prints. Any failure becomes a `skipped`
 * reason rather than an exception: the torch column is optional.
 *
 * Two setups: the environment the bench was started with (what a user gets),
 * and the same with KEEP_MEMORY_ENV added, under which glibc keeps freed heap
 * memory instead of returning each large buffer to the OS, so torch's
 * [B·H, L, L] buffers stop costing page faults and munmap on every call.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface TorchTiming {
  median_ms: number;
  samples_ms: number[];
  batch: number;
  cpu_user_ms: number;
  cpu_sys_ms: number;
}

export interface TorchResult {
  ok: true;
  torch: string;
  python: string;
  threads: number;
  blas: string;
  length: number;
  fwd_bwd: TorchTiming;
  fwd: TorchTiming;
  /** Peak RSS growth over one fwd+bwd (VmHWM after clear_refs); null without /proc. */
  peak_rss_growth_bytes: number | null;
}

export type TorchOutcome = TorchResult | { ok: false; error: string };

/** glibc malloc settings of the "torch, memory kept" child: no mmap for large blocks, no trimming. */
export const KEEP_MEMORY_ENV: Readonly<Record<string, string>> = {
  MALLOC_MMAP_THRESHOLD_: '4294967296',
  MALLOC_TRIM_THRESHOLD_: '4294967296',
};

/**
 * Warm-up calls a torch child makes at least, whatever --warmup says. Each child
 * is a fresh process, and with KEEP_MEMORY_ENV glibc's heap grows over its first
 * several fwd+bwd calls (at L=512: samples of 1008, 436 and 413 ms among ~205 ms
 * ones after one warm-up call; none after ten), so fewer calls would time that
 * growth rather than the steady state a training loop runs in. Our side runs
 * in one process whose block cache fills during the first (untimed) step.
 */
export const TORCH_MIN_WARMUP = 10;

export interface TorchRunOptions {
  python: string;
  threads: number;
  B: number;
  H: number;
  Dh: number;
  L: number;
  warmup: number;
  reps: number;
  /** Add KEEP_MEMORY_ENV to the child's environment. */
  keepMemory?: boolean;
}

function scriptPath(): string | null {
  // From dist/bench/lib/ (compiled) or bench/lib/ (run from source).
  for (const rel of ['../../../bench/baselines/attention_torch.py', '../baselines/attention_torch.py']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return null;
}

export function runTorchAttention(o: TorchRunOptions): TorchOutcome {
  if (!o.python) return { ok: false, error: 'disabled (--no-torch)' };
  const script = scriptPath();
  if (!script) return { ok: false, error: 'bench/baselines/attention_torch.py not found' };
  const n = String(o.threads);
  const r = spawnSync(
    o.python,
    [script, '--threads', n, '--batch', String(o.B), '--heads', String(o.H), '--head-dim', String(o.Dh),
      '--length', String(o.L), '--warmup', String(Math.max(o.warmup, TORCH_MIN_WARMUP)), '--reps', String(o.reps)],
    {
      encoding: 'utf8',
      timeout: 300_000,
      // The same thread count for torch's OpenMP pool and the OpenBLAS it calls.
      env: {
        ...process.env,
        ...(o.keepMemory ? KEEP_MEMORY_ENV : {}),
        OMP_NUM_THREADS: n,
        OPENBLAS_NUM_THREADS: n,
        MKL_NUM_THREADS: n,
      },
    },
  );
  if (r.error) return { ok: false, error: `could not run ${o.python}: ${r.error.message}` };
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as TorchOutcome;
    if (!parsed.ok && !parsed.error) return { ok: false, error: 'no result' };
    return parsed;
  } catch {
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    return { ok: false, error: `${o.python} exited with status ${r.status}: ${why}` };
  }
}
