/**
 * The GPU side of bench:cuda: whether it can run at all (one line saying why
 * not), what GPU and CUDA it runs on, and wall-clock timing of asynchronous
 * GPU work.
 *
 * Timing: our API has no CUDA events, so a sample is cudaSynchronize(), the
 * host clock, `batch` calls, cudaSynchronize(), the host clock; `batch` is
 * chosen so that a sample lasts at least minSampleMs (default 50 ms), against
 * which one synchronize (tens of µs) is negligible. The torch baselines time
 * the same way (torch.cuda.synchronize + perf_counter), so both sides carry
 * the same per-call launch overheads.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { loadAddon, native, packageRoot } from '../../src/native/loader.js';
import type { CudaInfo } from '../../src/native/types.js';
import { median, nowMs } from './timing.js';

/** Why the cuda bench cannot run here, in one line; null when it can. */
export function cudaUnavailableReason(): string | null {
  let loaded;
  try {
    loaded = loadAddon();
  } catch (e) {
    const first = (e as Error).message.split('\n').find((l) => l.includes('cloze_cuda.node')) ?? (e as Error).message.split('\n')[0];
    return `no cuda addon could be loaded (${first!.trim().replace(/^- /, '')}); build it with \`npm run build:cuda\` on a machine with the CUDA toolkit`;
  }
  if (loaded.variant !== 'cuda') {
    if (process.env.CLOZE_DEVICE === 'cpu') return 'CLOZE_DEVICE=cpu selects the CPU addon; unset it to load the cuda addon';
    const path = join(packageRoot(), 'build-cuda', 'Release', 'cloze_cuda.node');
    if (!existsSync(path)) return `no cuda addon: ${path} is not built (run \`npm run build:cuda\` on a machine with the CUDA toolkit)`;
    // The loader fell back to the CPU build; load the cuda one again only to learn why it failed.
    try {
      createRequire(import.meta.url)(path);
      return `the cuda addon ${path} loads, but the CPU addon was loaded first`;
    } catch (e) {
      return `the cuda addon ${path} failed to load: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  let a: { available: boolean; reason: string };
  try {
    a = native().cudaAvailable();
  } catch (e) {
    return `cudaAvailable() failed: ${(e as Error).message.split('\n')[0]}`;
  }
  return a.available ? null : `no usable GPU: ${a.reason}`;
}

/** 12040 → "12.4" (cudaDriverGetVersion / cudaRuntimeGetVersion encode 1000·major + 10·minor). */
export function cudaVersionString(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;
}

/** The NVIDIA kernel driver's version (e.g. 570.124.06) from nvidia-smi; null where it is absent. */
export function nvidiaDriverVersion(): string | null {
  try {
    const out = execFileSync('nvidia-smi', ['--query-gpu=driver_version', '--format=csv,noheader'], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000,
    });
    return out.trim().split('\n')[0]?.trim() || null;
  } catch {
    return null;
  }
}

export interface GpuFacts extends CudaInfo {
  /** nvidia-smi's driver version, or null. */
  nvidiaDriver: string | null;
  /** The CUDA version the driver supports, "13.0". */
  driverCuda: string;
  /** The CUDA runtime the addon was built against and runs, "13.0". */
  runtimeCuda: string;
}

export function gpuFacts(): GpuFacts {
  const c = native().cudaInfo();
  return { ...c, nvidiaDriver: nvidiaDriverVersion(), driverCuda: cudaVersionString(c.driverVersion), runtimeCuda: cudaVersionString(c.runtimeVersion) };
}

export function describeGpu(g: GpuFacts): string {
  return `${g.name} (sm ${g.computeCapability}, ${g.multiprocessors} SMs, ${(g.memoryBytes / 2 ** 30).toFixed(0)} GiB), ` +
    `driver ${g.nvidiaDriver ?? 'unknown (no nvidia-smi)'} (CUDA ${g.driverCuda}), CUDA runtime ${g.runtimeCuda}`;
}

export interface GpuTiming {
  /** Median ms per call. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** ms per call, one per sample. */
  samples: number[];
  /** Calls per sample. */
  batch: number;
}

export interface GpuTimingOptions {
  warmup: number;
  reps: number;
  /** Batch calls until a sample lasts at least this long (default 50 ms). */
  minSampleMs?: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Times fn, whose GPU work is asynchronous, by synchronizing around each batch of calls. */
export function timeGpu(fn: () => void, o: GpuTimingOptions): GpuTiming {
  const sync = (): void => native().cudaSynchronize();
  const minSample = o.minSampleMs ?? 50;
  sync();
  let t0 = nowMs();
  const warm = Math.max(1, o.warmup);
  for (let i = 0; i < warm; i++) fn();
  sync();
  // The warm-up's mean includes first-call costs (allocator growth), so it
  // overestimates a call and the batch errs on the short side; hence the
  // second, timed probe over the batch it suggests.
  let perCall = (nowMs() - t0) / warm;
  let batch = Math.max(1, Math.ceil(minSample / Math.max(perCall, 1e-3)));
  t0 = nowMs();
  for (let i = 0; i < batch; i++) fn();
  sync();
  perCall = (nowMs() - t0) / batch;
  batch = Math.max(1, Math.ceil(minSample / Math.max(perCall, 1e-3)));
  const samples: number[] = [];
  for (let r = 0; r < o.reps; r++) {
    gc?.();
    sync();
    const s0 = nowMs();
    for (let i = 0; i < batch; i++) fn();
    sync();
    samples.push((nowMs() - s0) / batch);
  }
  return { medianMs: median(samples), minMs: Math.min(...samples), maxMs: Math.max(...samples), samples, batch };
}
