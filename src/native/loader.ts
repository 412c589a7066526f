/**
 * Finds and loads the native addon. The CUDA build (cmake-js, build-cuda/) is
 * used when it is built, loads (the CUDA runtime libraries are found) and a
 * GPU answers, unless CLOZE_DEVICE is 'cpu'; otherwise the CPU build from
 * node-gyp. CLOZE_DEVICE=cuda keeps the CUDA build even without a GPU, so the
 * failure surfaces with CUDA's own reason. CLOZE_CPU_ADDON names another CPU
 * build to use instead of build/Release/cloze_cpu.node (native/tools/isa-check.sh
 * runs the op tests on AVX2 and SSE2 builds that way). When nothing loads, one
 * message lists each attempt and the fixes.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeAddon } from './types.js';
import { profiledAddon } from '../profile/state.js';

/** The directory of the cloze package (where package.json names "cloze"). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if (JSON.parse(readFileSync(pj, 'utf8')).name === 'cloze') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cloze: could not find the package root (package.json named "cloze")');
    dir = up;
  }
}

export interface LoadedAddon {
  addon: NativeAddon;
  path: string;
  variant: 'cpu' | 'cuda';
  /** Why the cuda addon was built but not used (no GPU answered), when that happened. */
  cudaSkipped?: string;
}

let cached: LoadedAddon | undefined;

export function loadAddon(): LoadedAddon {
  if (cached) return cached;
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  const wantCpu = process.env.CLOZE_DEVICE === 'cpu';
  const candidates: Array<{ path: string; variant: 'cpu' | 'cuda' }> = [];
  if (!wantCpu) candidates.push({ path: join(root, 'build-cuda', 'Release', 'cloze_cuda.node'), variant: 'cuda' });
  // Another CPU build, asked for by name: never silently replaced by the default one. Resolved against the working
  // directory (require would take a bare relative path for a package name, or relative to this file).
  const cpuOverride = process.env.CLOZE_CPU_ADDON ? resolve(process.env.CLOZE_CPU_ADDON) : null;
  if (cpuOverride !== null) {
    if (process.env.CLOZE_DEVICE === 'cuda') throw new Error(`cloze: CLOZE_CPU_ADDON (${cpuOverride}) names a CPU build, but CLOZE_DEVICE=cuda asks for the cuda one; unset one of them`);
    if (!existsSync(cpuOverride)) throw new Error(`cloze: CLOZE_CPU_ADDON names ${cpuOverride}, which does not exist (expected a built cloze_cpu.node)`);
    candidates.length = 0;
  }
  candidates.push({ path: cpuOverride ?? join(root, 'build', 'Release', 'cloze_cpu.node'), variant: 'cpu' });
  const tried: string[] = [];
  let cudaSkipped: string | undefined;
  let cudaFallback: LoadedAddon | undefined;
  for (const c of candidates) {
    if (!existsSync(c.path)) {
      tried.push(`${c.path}: not built`);
      continue;
    }
    try {
      const addon = require(c.path) as NativeAddon;
      if (c.variant === 'cuda' && process.env.CLOZE_DEVICE !== 'cuda') {
        // Built, but the CUDA addon is used only where a GPU answers; else the CPU build, if there is one.
        const a = addon.cudaAvailable();
        if (!a.available) {
          cudaSkipped = a.reason;
          cudaFallback = { addon, path: c.path, variant: 'cuda', cudaSkipped };
          tried.push(`${c.path}: loaded, but no GPU is usable (${a.reason})`);
          continue;
        }
      }
      cached = { addon, path: c.path, variant: c.variant, ...(cudaSkipped ? { cudaSkipped } : {}) };
      return cached;
    } catch (e) {
      tried.push(`${c.path}: ${(e as Error).message}`);
    }
  }
  // The CUDA build also runs every op on the CPU: better than nothing when the CPU build is missing.
  if (cudaFallback) {
    cached = cudaFallback;
    return cached;
  }
  throw new Error(
    'cloze: could not load the native addon.\n' +
      tried.map((t) => `  - ${t}`).join('\n') +
      '\nPossible fixes:\n' +
      '  - run `npm install` (or `npm run build:native`) in the package to build the CPU addon with node-gyp;\n' +
      '  - install a C++17 compiler, make and python3 (Debian: build-essential python3);\n' +
      '  - for the CUDA addon, run `npm run build:cuda` with a CUDA toolkit installed;\n' +
      '  - if the Node.js version changed since the build, rebuild.',
  );
}

/** The addon; inside a running profile (src/profile), the same addon with each call timed. */
export function native(): NativeAddon {
  return profiledAddon() ?? loadAddon().addon;
}
