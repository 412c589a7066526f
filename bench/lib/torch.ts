/**
 * Runs the PyTorch baselines of bench/baselines/ as child processes (runBaseline),
 * and bench/baselines/attention_torch.py, one sequence length per process, in
 * particular. Any failure becomes a `skipped` reason rather than an exception:
 * the torch column is optional.
 *
 * Two setups: the environment the bench was started with (what a user gets),
 * and the same with KEEP_MEMORY_ENV added, under which glibc keeps freed heap
 * memory instead of returning each large buffer to the OS, so torch's
 * [B·H, L, L] buffers stop costing page faults and munmap on every call.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, isAbsolute } from 'node:path';
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
  /** attention_torch.py only: which implementation ran, and for sdpa the backend torch chose. */
  impl?: 'eager' | 'sdpa';
  backend?: string;
  length: number;
  fwd_bwd: TorchTiming;
  fwd: TorchTiming;
  /** Peak RSS growth over one fwd+bwd (VmHWM after clear_refs); null without /proc. */
  peak_rss_growth_bytes: number | null;
}

export type TorchOutcome = TorchResult | { ok: false; error: string };

/** What every timed-step baseline prints (bench_common.step_report), before its own fields. */
export interface TorchStepReport {
  ok: true;
  torch: string;
  python: string;
  threads: number;
  blas: string;
  params: number;
  median_ms: number;
  samples_ms: number[];
  cpu_user_ms: number;
  cpu_sys_ms: number;
  losses: number[];
  step_rss_growth_bytes: number | null;
  peak_rss_bytes: number;
}

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
  /** attention_torch.py's --impl: the eager op chain (default) or scaled_dot_product_attention. */
  impl?: 'eager' | 'sdpa';
}

/** A script of bench/baselines/, from dist/bench/lib/ (compiled) or bench/lib/ (run from source); null when absent. */
export function baselineScript(name: string): string | null {
  for (const rel of [`../../../bench/baselines/${name}`, `../baselines/${name}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return null;
}

export interface BaselineRun {
  /** The interpreter; '' means the baseline is disabled (--no-torch). */
  python: string;
  /** A script name under bench/baselines/, or an absolute path. */
  script: string;
  args: readonly string[];
  /** `--threads N` for torch.set_num_threads, and N for the child's OpenMP, OpenBLAS and MKL pools; none when absent (the CUDA baselines). */
  threads?: number;
  /** Add KEEP_MEMORY_ENV to the child's environment. */
  keepMemory?: boolean;
  timeoutMs?: number;
}

/**
 * Runs one baseline child and parses the JSON object on the last line of its
 * stdout. Any failure (no interpreter, no script, a crash, a timeout, output
 * that is not JSON, `{ ok: false }` without a reason) becomes `{ ok: false,
 * error }`: the torch column of a bench is optional.
 */
export function runBaseline<T extends { ok: true }>(o: BaselineRun): T | { ok: false; error: string } {
  if (!o.python) return { ok: false, error: 'disabled (--no-torch)' };
  const script = isAbsolute(o.script) ? (existsSync(o.script) ? o.script : null) : baselineScript(o.script);
  if (!script) return { ok: false, error: `bench/baselines/${o.script} not found` };
  const n = o.threads === undefined ? null : String(o.threads);
  const r = spawnSync(o.python, [script, ...(n ? ['--threads', n] : []), ...o.args], {
    encoding: 'utf8',
    timeout: o.timeoutMs ?? 300_000,
    maxBuffer: 16 * 2 ** 20,
    env: {
      ...process.env,
      ...(o.keepMemory ? KEEP_MEMORY_ENV : {}),
      ...(n ? { OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n } : {}),
    },
  });
  if (r.error) return { ok: false, error: `could not run ${o.python}: ${r.error.message}` };
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as T | { ok: false; error?: string };
    if (parsed === null || typeof parsed !== 'object') throw new Error('not an object');
    if (parsed.ok === true) return parsed;
    return { ok: false, error: parsed.error || 'no result' };
  } catch {
    const why = (r.stderr || r.stdout || '').trim().split('\n').slice(-3).join(' | ');
    return { ok: false, error: `${o.python} ${basename(script)} exited with ${r.signal ? `signal ${r.signal}` : `status ${r.status}`}: ${why}` };
  }
}

export function runTorchAttention(o: TorchRunOptions): TorchOutcome {
  return runBaseline<TorchResult>({
    python: o.python,
    script: 'attention_torch.py',
    args: ['--batch', String(o.B), '--heads', String(o.H), '--head-dim', String(o.Dh), '--length', String(o.L),
      '--warmup', String(Math.max(o.warmup, TORCH_MIN_WARMUP)), '--reps', String(o.reps), '--impl', o.impl ?? 'eager'],
    threads: o.threads,
    keepMemory: o.keepMemory,
  });
}
