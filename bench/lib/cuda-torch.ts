/**
 * Runs one of the CUDA PyTorch baselines (bench/baselines/*.py) as a child
 * process and parses the one JSON object it prints last. Any failure (no
 * python, no torch, torch without CUDA, no flash kernel for this GPU, a
 * crash) becomes `{ ok: false, error }`, printed by the bench as a skip line:
 * the torch columns are optional, ours are not. No thread settings: these
 * run on the GPU (runBaseline in torch.ts without `threads`).
 */
import { runBaseline } from './torch.js';

export type PyOutcome<R> = (R & { ok: true }) | { ok: false; error: string };

/** Facts every CUDA baseline reports about its torch. */
export interface TorchCudaFacts {
  torch: string;
  python: string;
  /** torch.version.cuda: the CUDA runtime torch was built with. */
  cuda: string;
  device: string;
}

export function runTorchCuda<R>(python: string, script: string, args: readonly string[], timeoutMs = 600_000): PyOutcome<R> {
  return runBaseline<R & { ok: true }>({ python, script, args, timeoutMs });
}
