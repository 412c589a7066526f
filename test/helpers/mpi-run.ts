/**
 * The 2-rank runs of the data-parallel tests: whether they can run here (mpirun, an MPI build of the addon, the
 * compiled dist/), and `mpirun -np 2` on test/helpers/mpi-pretrain-child.mjs with a job file.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { loadCheckpoint } from '../../src/checkpoint/checkpoint.js';
import { native } from '../../src/native/loader.js';

export const ROOT = join(__dirname, '..', '..');
const CHILD = join(ROOT, 'test', 'helpers', 'mpi-pretrain-child.mjs');

/** '' when 2-rank runs can run; else why not, for the skipped suite's name. `compiledFile`: a dist/ file they need. */
export function mpiSkipReason(compiledFile: string): string {
  const mpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
  if (!mpirun) return 'skipped: mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)';
  const built = native().mpiAvailable();
  if (!built.available) return `skipped: the addon was ${built.reason}`;
  if (!existsSync(join(ROOT, 'dist', compiledFile))) return 'skipped: dist/ is not built (npm run build:ts)';
  return '';
}

/** Runs `mpirun -np ranks` (2 unless given) on the child with `job`; resolves with the exit code, stderr and seconds taken. */
export function mpirun2(dir: string, name: string, job: Record<string, unknown>, limitS = 120, ranks = 2): Promise<{ code: number | null; stderr: string; secs: number }> {
  const file = join(dir, `${name}.job.json`);
  writeFileSync(file, JSON.stringify(job));
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn('mpirun', ['--oversubscribe', '--allow-run-as-root', '-np', String(ranks), 'node', CHILD, file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // The test's own bound: a hang fails here instead of at vitest's timeout.
    const kill = setTimeout(() => p.kill('SIGKILL'), limitS * 1000);
    p.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stderr, secs: (performance.now() - t0) / 1000 });
    });
  });
}

/** A checkpoint's weights by name, copied out as float32. */
export function params(checkpoint: string): Map<string, Float32Array> {
  const ck = loadCheckpoint(checkpoint);
  try {
    return new Map(Object.entries(ck.model).map(([k, t]) => [k, Float32Array.from(t.toArray() as Float32Array)]));
  } finally {
    ck.dispose();
  }
}

/** The largest |a − b| over the weights `only` selects (default all); the two must hold the same names. */
export function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>, only: (k: string) => boolean = () => true): number {
  expect([...b.keys()]).toEqual([...a.keys()]);
  let m = 0;
  for (const [k, x] of a) {
    if (!only(k)) continue;
    const y = b.get(k)!;
    for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  }
  return m;
}
