/**
 * The board serves files under its root only: a request path is refused when it has a ".." segment, a NUL, or
 * resolves (symbolic links followed) outside the root's real path.
 */
import { realpathSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';

/** The real path of `rel` under `root`, or null when it is not a readable path inside it. */
export function resolveUnder(root: string, rel: string): string | null {
  if (rel.includes('\0')) return null;
  const parts = rel.split(/[\\/]+/).filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return null;
  let real: string;
  let base: string;
  try {
    base = realpathSync(root);
    real = realpathSync(join(base, ...parts));
  } catch {
    return null;
  }
  const r = relative(base, real);
  if (r === '') return real;
  if (r.startsWith('..') || isAbsolute(r) || r.split(sep)[0] === '..') return null;
  return real;
}
