/**
 * MAE's fixed 2D sin-cos position embedding: half the width encodes the row,
 * half the column, each as [sin(pos·ω), cos(pos·ω)] with ω_k = 1/10000^(k/(D/4)).
 * Computed once in float64 and stored as a constant (never trained).
 */
import { ClozeError } from '../../errors.js';

function axis(pos: Float64Array, dim: number, out: Float64Array, stride: number, offset: number): void {
  const half = dim / 2;
  for (let i = 0; i < pos.length; i++) {
    for (let k = 0; k < half; k++) {
      const omega = 1 / 10000 ** (k / half);
      out[i * stride + offset + k] = Math.sin(pos[i]! * omega);
      out[i * stride + offset + half + k] = Math.cos(pos[i]! * omega);
    }
  }
}

/** [gh·gw, dim], row-major over the grid. MAE's order: the first half of the width encodes the column (w), then the row (h). */
export function sincos2d(gh: number, gw: number, dim: number): Float64Array {
  if (dim % 4 !== 0) throw new ClozeError('E_VALUE', `Expected a width divisible by 4 for the 2D sin-cos position embedding but received ${dim}`);
  const L = gh * gw;
  const out = new Float64Array(L * dim);
  const rows = new Float64Array(L);
  const cols = new Float64Array(L);
  for (let i = 0; i < gh; i++) for (let j = 0; j < gw; j++) {
    rows[i * gw + j] = i;
    cols[i * gw + j] = j;
  }
  // MAE builds np.meshgrid(grid_w, grid_h) and embeds grid[0] (w) into the first half.
  axis(cols, dim / 2, out, dim, 0);
  axis(rows, dim / 2, out, dim, dim / 2);
  return out;
}
