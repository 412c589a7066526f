/**
 * Checkpoint directories are data, not instructions. A checkpoint's saved run
 * settings may name files (the corpus, the image directory, the labelled
 * data); a crafted checkpoint could name any file on the machine and have
 * `cloze eval` read it and echo parts of it in an error. So a path a
 * checkpoint names is followed only when it resolves inside the checkpoint's
 * own run directory; any other must be passed by the user explicitly.
 */
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { ClozeError } from '../errors.js';

/** True when `p` (resolved) is `root` or lies below it. */
export function isInside(root: string, p: string): boolean {
  const rel = relative(resolve(root), resolve(p));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The run directory of a checkpoint directory (its parent). */
export function runDirOf(checkpointDir: string): string {
  return dirname(resolve(checkpointDir));
}

export interface NamedPath {
  /** The path to read; null: the task's default data. */
  path: string | null;
  /** True when it is the data the run trained on (the user passed the same path, or the checkpoint's was followed). */
  same: boolean;
}

/**
 * The data to evaluate a checkpoint on: the user's `given` path when there is one (`same` when it is the path the
 * run named), else the run's `named` path when it lies inside the run directory, else the default when the run
 * named none. A run's path outside its directory is refused with a message asking for `flag`.
 */
export function checkpointDataPath(checkpointDir: string, named: unknown, given: string | undefined, flag: string): NamedPath {
  const namedPath = typeof named === 'string' && named !== '' ? named : null;
  if (given !== undefined) return { path: given, same: namedPath !== null && resolve(given) === resolve(namedPath) };
  if (namedPath === null) return { path: null, same: true };
  const runDir = runDirOf(checkpointDir);
  if (isInside(runDir, namedPath)) return { path: resolve(namedPath), same: true };
  const shown = JSON.stringify(namedPath.length > 200 ? `${namedPath.slice(0, 200)}…` : namedPath);
  throw new ClozeError('E_VALUE', `Expected ${flag} for the data to evaluate on but received none: the checkpoint ${checkpointDir} names ${shown}, outside its run directory ${runDir}, and a checkpoint's paths are not followed (pass ${flag} with the run's data to evaluate on it)`);
}
