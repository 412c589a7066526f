/** Host-side counting of classification targets, for ops that upload host targets to a cuda device. */
import { ClozeError } from '../errors.js';

/**
 * The non-ignored targets, each checked to be in [0, V) as the native ops check them (E_INDEX, same wording):
 * the count a cuda op would otherwise copy the targets back to the host for.
 */
export function countTargets(t: Int32Array, V: number, ignore: number, op: string): number {
  let n = 0;
  for (let i = 0; i < t.length; i++) {
    const v = t[i]!;
    if (v === ignore) continue;
    if (v < 0 || v >= V) {
      throw new ClozeError('E_INDEX',
        `${op}: Expected indices in [0, ${V}) or the ignore index ${ignore} for targets but received ${v} at position ${i}`);
    }
    n++;
  }
  return n;
}
