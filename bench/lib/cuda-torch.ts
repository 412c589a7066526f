/**
 * Runs one of the CUDA PyTorch baselines (bench/baselines/*.py) as a child
 * process and parses the one JSON object it prints last. Any failure (no
 * python, no torch, torch without CUDA, no flash kernel for this GPU, a
 * crash) becomes `{ ok: false, error }`, printed by the bench as a skip line:
 * the torch columns are optional, ours are not.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type PyOutcome<R> = (R & { ok: true }) | { ok: false; error: string };

/** Facts every CUDA baseline reports about its torch. */
export interface TorchCudaFacts {
  torch: string;
  python: string;
  /** torch.version.cuda: the CUDA runtime torch was built with. */
  cuda: string;
  device: string;
}

function scriptPath(name: string): string | null {
  // From dist/bench/lib/ (compiled) or bench/lib/ (run from source).
  for (const rel of [`../../../bench/baselines/${name}`, `../baselines/${name}`]) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return null;
}

export function runTorchCuda<R>(python: string, script: string, args: readonly string[], timeoutMs = 600_000): PyOutcome<R> {
  if (!python) return { ok: false, error: 'disabled (--no-torch)' };
  const path = scriptPath(script);
  if (!path) return { ok: false, error: `bench/baselines/${script} not found` };
  const r = spawnSync(python, [path, ...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 * 2 ** 20 });
  if (r.error) return { ok: false, error: `could not run ${python}: ${r.error.message}` };
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as PyOutcome<R>;
    if (!parsed.ok && !parsed.error) return { ok: false, error: 'no result' };
    return parsed;
  } catch {
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ');
    return { ok: false, error: `${python} ${script} exited with status ${r.status ?? r.signal}: ${why}` };
  }
}
