/**
 * Finds and loads the native addon. The CUDA build (cmake-js, build-cuda/) is
 * preferred when present and CLOZE_DEVICE is not 'cpu'; otherwise the CPU
 * build from node-gyp. When nothing loads, one message lists each attempt and
 * the fixes.
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeAddon } from './types.js';

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
}

let cached: LoadedAddon | undefined;

export function loadAddon(): LoadedAddon {
  if (cached) return cached;
  const root = packageRoot();
  const require = createRequire(import.meta.url);
  const wantCpu = process.env.CLOZE_DEVICE === 'cpu';
  const candidates: Array<{ path: string; variant: 'cpu' | 'cuda' }> = [];
  if (!wantCpu) candidates.push({ path: join(root, 'build-cuda', 'Release', 'cloze_cuda.node'), variant: 'cuda' });
  candidates.push({ path: join(root, 'build', 'Release', 'cloze_cpu.node'), variant: 'cpu' });
  const tried: string[] = [];
  for (const c of candidates) {
    if (!existsSync(c.path)) {
      tried.push(`${c.path}: not built`);
      continue;
    }
    try {
      cached = { addon: require(c.path) as NativeAddon, path: c.path, variant: c.variant };
      return cached;
    } catch (e) {
      tried.push(`${c.path}: ${(e as Error).message}`);
    }
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

export function native(): NativeAddon {
  return loadAddon().addon;
}
