/**
 * The one tolerance rule every kernel test uses (llm.c's): an element passes
 * when |got − ref| ≤ atol + rtol·|ref|. A non-finite reference value must be
 * matched exactly (−∞ lse for a fully masked row, say). On failure the first
 * mismatches are listed.
 */
import type { DType } from '../../src/index.js';

export interface Tol {
  atol: number;
  rtol: number;
}

/** Default tolerances: a small multiple of the dtype's machine epsilon. */
export function tolFor(dtype: DType): Tol {
  return dtype === 'float64' ? { atol: 1e-12, rtol: 1e-10 } : { atol: 2e-6, rtol: 2e-4 };
}

export interface CloseReport {
  ok: boolean;
  maxAbs: number;
  mismatches: string[];
}

export function compare(got: ArrayLike<number>, ref: ArrayLike<number>, tol: Tol): CloseReport {
  const mismatches: string[] = [];
  let maxAbs = 0;
  if (got.length !== ref.length) return { ok: false, maxAbs: Infinity, mismatches: [`length ${got.length} vs ${ref.length}`] };
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const g = got[i]!;
    let bad: boolean;
    if (!Number.isFinite(r)) {
      bad = !(Object.is(r, g) || (Number.isNaN(r) && Number.isNaN(g)));
    } else {
      const d = Math.abs(g - r);
      if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : Math.max(maxAbs, d);
      bad = !(d <= tol.atol + tol.rtol * Math.abs(r));
    }
    if (bad && mismatches.length < 8) mismatches.push(`[${i}] got ${g}, expected ${r}`);
    else if (bad) mismatches.push('');
  }
  return { ok: mismatches.length === 0, maxAbs, mismatches };
}

/** Throws with the first mismatches when got and ref differ beyond tol. */
export function assertClose(got: ArrayLike<number>, ref: ArrayLike<number>, tol: Tol, label = 'values'): void {
  const r = compare(got, ref, tol);
  if (!r.ok) {
    const shown = r.mismatches.filter((m) => m !== '');
    throw new Error(
      `${label}: ${r.mismatches.length} of ${ref.length} elements differ (atol ${tol.atol}, rtol ${tol.rtol}); max |diff| ${r.maxAbs}\n  ` +
        shown.join('\n  '),
    );
  }
}
