/** Host-side counting of classification targets, for ops that upload host targets to a cuda device. */
import { ClozeError } from '../errors.js';
import type { Device, NativeTensor } from '../native/types.js';
import type { Tensor } from '../tensor.js';

/**
 * Targets on the host for an op on another device (a batch's labels, as a trainer holds them): counted and
 * checked here when `count` (countTargets), then uploaded, so that the op need not copy them back to count and
 * check them (a wait for the device). `uploaded` is null where nothing moved; the caller disposes it.
 */
export function hostTargets(
  targets: Tensor, device: Device, V: number, ignore: number, op: string, count: boolean,
): { uploaded: NativeTensor | null; count: number | undefined } {
  if (targets.device !== 'cpu' || device === 'cpu') return { uploaded: null, count: undefined };
  const n = count ? countTargets(targets.native.data() as Int32Array, V, ignore, op) : undefined;
  return { uploaded: targets.native.to(device), count: n };
}

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
