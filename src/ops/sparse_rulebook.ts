/**
 * Sites, rulebook and dense conversions of SparK's real submanifold sparse
 * convolution (the README's SparK section): compute in proportion to the active sites,
 * exact against SparK's masked-dense encoder.
 *
 * A sparse feature map is rows x [N, C] (channels last, one row per active
 * site) plus its sites from activeSites(): coords int32 [N, 3] = (b, y, x) in
 * row-major order, and grid int32 [B, H, W], each site's row or −1. The grid
 * is a direct-address hash of the active coordinates: collision-free, O(1)
 * lookups, for 4 bytes per site of the map. Dense tensors are NCHW.
 *
 * The rulebook is neighbourTable(): built once per mask and scale, shared by
 * every layer of that scale and by their backward passes. It is the classic
 * per-offset pair list in transposed form: offset o's (in, out) pairs are
 * {(nbr[m, o], m) : nbr[m, o] ≥ 0}. For a submanifold conv (stride 1, odd k,
 * the outputs are the inputs) offset o's pairs are offset k²−1−o's reversed:
 * nbr[m, o] = i ⇔ nbr[i, k²−1−o] = m.
 *
 * Mask rule: activeSites takes 1 = active (visible), the complement of the
 * project's 1 = masked rule, because the sites it lists are the visible ones.
 */
import { expected } from '../errors.js';
import { native } from '../native/loader.js';
import { record, Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkInt, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

export interface SparseSites {
  /** int32 [N, 3]: (b, y, x) of each active site, row-major order. */
  coords: Tensor;
  /** int32 [B, H, W]: the row of each active site, −1 elsewhere. */
  grid: Tensor;
}

/** The active sites of mask uint8 [B, H, W] (1 = active, 0 = masked; other values are an error). */
export function activeSites(mask: Tensor): SparseSites {
  checkTensor(mask, 'mask');
  checkDtype(mask, 'uint8', 'mask');
  checkRank(mask, 3, 3, 'mask');
  const r = native().activeSites(mask.native);
  return { coords: new Tensor(r.coords), grid: new Tensor(r.grid) };
}

export interface NeighbourOptions {
  /** Kernel side k (the table has k² columns, offset o = dy·k + dx as in PyTorch's weight layout). */
  kernel: number;
  /** Default 1 (submanifold). */
  stride?: number;
  /** Default ⌊(k − 1)/2⌋. */
  padding?: number;
}

/**
 * The rulebook: int32 [M, k²] with entry (m, dy·k + dx) the row of input site
 * (b, yo·stride + dy − padding, xo·stride + dx − padding), or −1 when that site
 * is inactive or outside the map. grid: the input scale's grid; outCoords
 * int32 [M, 3]: the output sites, distinct and inside the output grid. For a
 * submanifold conv they are the input coords; for a strided conv, the active
 * sites of the coarser mask (SparK's nested masks).
 */
export function neighbourTable(grid: Tensor, outCoords: Tensor, opts: NeighbourOptions): Tensor {
  checkTensor(grid, 'grid');
  checkDtype(grid, 'int32', 'grid');
  checkRank(grid, 3, 3, 'grid');
  checkTensor(outCoords, 'outCoords');
  checkDtype(outCoords, 'int32', 'outCoords');
  checkRank(outCoords, 2, 2, 'outCoords');
  if (outCoords.shape[1] !== 3) throw expected('shape [M, 3] of (b, y, x)', 'outCoords', outCoords, 'E_SHAPE');
  const k = opts?.kernel;
  checkInt(k, 'kernel', 1, 63);
  const stride = opts.stride ?? 1;
  checkInt(stride, 'stride', 1, 63);
  const padding = opts.padding ?? Math.floor((k - 1) / 2);
  checkInt(padding, 'padding', 0, k - 1);
  return new Tensor(native().neighbourTable(grid.native, outCoords.native, k, stride, padding));
}

/** v, when given, is a [C] vector of x's dtype (a bias, weight, running statistic or fill token). */
export function checkVector(x: Tensor, v: Tensor | null, C: number, name: string): void {
  if (v === null || v === undefined) return;
  checkTensor(v, name);
  checkSameDtype(x, v, name);
  checkShape(v, [C], name);
}

function checkCoords(coords: Tensor, n: number | null): void {
  checkTensor(coords, 'coords');
  checkDtype(coords, 'int32', 'coords');
  checkRank(coords, 2, 2, 'coords');
  if (coords.shape[1] !== 3 || (n !== null && coords.shape[0] !== n)) {
    throw expected(`shape [${n ?? 'N'}, 3] of (b, y, x)`, 'coords', coords, 'E_SHAPE');
  }
}

/**
 * Rows x [N, C] at coords → dense [B, C, H, W]; inactive sites get fill[c]
 * (SparK's per-scale mask token) or 0 when fill is null. Differentiable in x
 * and fill (fill's gradient sums the inactive sites).
 */
export function toDense(x: Tensor, coords: Tensor, B: number, H: number, W: number, fill: Tensor | null): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 2, 2, 'input');
  checkCoords(coords, x.shape[0]!);
  checkInt(B, 'B', 0, 2 ** 31 - 1);
  checkInt(H, 'H', 0, 2 ** 31 - 1);
  checkInt(W, 'W', 0, 2 ** 31 - 1);
  checkVector(x, fill, x.shape[1]!, 'fill');
  const f = fill ?? null;
  const out = native().toDense(x.native, coords.native, B, H, W, f?.native ?? null);
  const sc = coords.share();
  return record(
    'toDense',
    [out],
    [x, f],
    ([g]) => [
      x.requiresGrad ? native().toSparse(g!, sc) : null,
      f?.requiresGrad ? native().toDenseFillGrad(g!, sc) : null,
    ],
    [sc],
  )[0]!;
}

/** dense [B, C, H, W] → its rows at coords, [N, C]. Differentiable (the gradient is zero off the sites). */
export function toSparse(dense: Tensor, coords: Tensor): Tensor {
  checkFloat(dense, 'dense');
  checkRank(dense, 4, 4, 'dense');
  checkCoords(coords, null);
  const [B, , H, W] = dense.shape as [number, number, number, number];
  const sc = coords.share();
  return record(
    'toSparse',
    [native().toSparse(dense.native, coords.native)],
    [dense],
    ([g]) => [native().toDense(g!, sc, B, H, W, null)],
    [sc],
  )[0]!;
}
