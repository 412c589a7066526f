/**
 * Real submanifold sparse convolution for SparK (specs/spark.md): compute in
 * proportion to the active sites, exact against SparK's masked-dense encoder.
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
 * What needs no op here:
 * - 1×1 convs and MLPs act on rows alone: `linear(x, w.reshape([Cout, Cin]), b)`.
 * - LayerNorm over channels (ConvNeXt) is per row: `layerNorm(x, w, b, eps)`.
 *
 * Mask rule: activeSites takes 1 = active (visible), the complement of the
 * project's 1 = masked rule, because the sites it lists are the visible ones.
 */
import { expected } from '../errors.js';
import { native } from '../native/loader.js';
import { record, Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkInt, checkNumber, checkRank, checkSameDtype, checkShape, checkTensor } from '../validate.js';

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

// nbr int32 [M, k²]; its entries are range-checked natively, where they are read.
function checkTable(nbr: Tensor, k2: number): void {
  checkTensor(nbr, 'nbr');
  checkDtype(nbr, 'int32', 'nbr');
  checkRank(nbr, 2, 2, 'nbr');
  if (nbr.shape[1] !== k2) throw expected(`shape [M, ${k2}] (k² columns for the kernel)`, 'nbr', nbr, 'E_SHAPE');
}

function checkConvWeight(x: Tensor, weight: Tensor, depthwise: boolean): number {
  checkTensor(weight, 'weight');
  checkSameDtype(x, weight, 'weight');
  checkRank(weight, 4, 4, 'weight');
  const C = x.shape[1]!;
  const [co, ci, kh, kw] = weight.shape as [number, number, number, number];
  const ok = kh === kw && kh >= 1 && (depthwise ? co === C && ci === 1 : ci === C);
  if (!ok) {
    const layout = depthwise ? `[${C}, 1, k, k] (C of the input)` : `[Cout, ${C}, k, k] (Cin of the input)`;
    throw expected(`shape ${layout} with a square kernel`, 'weight', weight, 'E_SHAPE');
  }
  return kh * kh;
}

function checkVector(x: Tensor, v: Tensor | null, C: number, name: string): void {
  if (v === null || v === undefined) return;
  checkTensor(v, name);
  checkSameDtype(x, v, name);
  checkShape(v, [C], name);
}

function conv(x: Tensor, weight: Tensor, bias: Tensor | null, nbr: Tensor, depthwise: boolean): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 2, 2, 'input');
  const k2 = checkConvWeight(x, weight, depthwise);
  checkTable(nbr, k2);
  checkVector(x, bias, weight.shape[0]!, 'bias');
  const b = bias ?? null;
  const n = native();
  const y = depthwise ? n.sparseDepthwiseConv(x.native, weight.native, b?.native ?? null, nbr.native)
    : n.sparseConv(x.native, weight.native, b?.native ?? null, nbr.native);
  const sx = x.share();
  const sw = weight.share();
  const sn = nbr.share();
  const back = depthwise ? n.sparseDepthwiseConvBackward.bind(n) : n.sparseConvBackward.bind(n);
  return record(
    depthwise ? 'sparseDepthwiseConv' : 'sparseConv',
    [y],
    [x, weight, b],
    ([g]) => back(g!, sx, sw, sn, x.requiresGrad, weight.requiresGrad, b?.requiresGrad ?? false),
    [sx, sw, sn],
  )[0]!;
}

/**
 * y[m] = bias + Σ_o Σ_cin x[nbr[m, o], cin] · weight[cout, cin, o]: a sparse
 * conv over the rulebook, missing neighbours read as zeros (SparK's masked,
 * zero-padded dense conv at the output sites). x [N, Cin]; weight [Cout, Cin,
 * k, k] (PyTorch layout); bias [Cout] or null; nbr int32 [M, k²] in [−1, N).
 * Returns [M, Cout]. Differentiable in x, weight and bias; the backward's sums
 * run in a fixed order, so results do not depend on the thread count.
 */
export function sparseConv(x: Tensor, weight: Tensor, bias: Tensor | null, nbr: Tensor): Tensor {
  return conv(x, weight, bias, nbr, false);
}

/** Depthwise sparseConv: x [N, C], weight [C, 1, k, k], bias [C] or null → [M, C]. */
export function sparseDepthwiseConv(x: Tensor, weight: Tensor, bias: Tensor | null, nbr: Tensor): Tensor {
  return conv(x, weight, bias, nbr, true);
}

export interface SparseBatchNormOptions {
  /** Batch statistics (and a running-statistics update) when true; the running ones when false. */
  training: boolean;
  /** Default 0.1 (PyTorch). */
  momentum?: number;
  /** Default 1e-5 (PyTorch). */
  eps?: number;
}

/**
 * BatchNorm over the active rows only, x [N, C] (SparK's sparse BN). PyTorch's
 * semantics otherwise: the biased variance normalises, the unbiased one enters
 * the running update (in place), eval normalises with the running statistics
 * (the batch's when they are null). weight and bias may be null (1 and 0).
 * N = 0 gives an empty output and leaves the running statistics alone; N = 1
 * in training is an error, as in PyTorch. Differentiable in x, weight, bias.
 */
export function sparseBatchNorm(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null, runningVar: Tensor | null,
  opts: SparseBatchNormOptions,
): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 2, 2, 'input');
  const C = x.shape[1]!;
  checkVector(x, weight, C, 'weight');
  checkVector(x, bias, C, 'bias');
  checkVector(x, runningMean, C, 'runningMean');
  checkVector(x, runningVar, C, 'runningVar');
  if (!runningMean !== !runningVar) {
    throw expected('both running statistics or neither', runningMean ? 'runningVar' : 'runningMean', null);
  }
  if (typeof opts?.training !== 'boolean') throw expected('a boolean', 'training', opts?.training);
  const momentum = opts.momentum ?? 0.1;
  checkNumber(momentum, 'momentum', 0, 1);
  const eps = opts.eps ?? 1e-5;
  if (typeof eps !== 'number' || !(eps > 0) || !Number.isFinite(eps)) throw expected('a positive number', 'eps', eps);
  const w = weight ?? null;
  const b = bias ?? null;
  const [y, mean, rstd] = native().sparseBatchNorm(
    x.native, w?.native ?? null, b?.native ?? null, runningMean?.native ?? null, runningVar?.native ?? null,
    opts.training, momentum, eps,
  );
  const batchStats = opts.training || !runningMean;
  const sx = x.share();
  const sw = w ? w.share() : null;
  return record(
    'sparseBatchNorm',
    [y],
    [x, w, b],
    ([g]) => native().sparseBatchNormBackward(
      g!, sx, sw, mean, rstd, batchStats, x.requiresGrad, w?.requiresGrad ?? false, b?.requiresGrad ?? false,
    ),
    sw ? [sx, sw, mean, rstd] : [sx, mean, rstd],
  )[0]!;
}

/**
 * Max over each output's existing neighbours, x [N, C], nbr [M, K2] → [M, C];
 * 0 where an output has none. The gradient goes to the first maximum (in
 * offset order). SparK's masked-dense max pool also sees the masked zeros, so
 * the two agree where the maximum is ≥ 0 (after ReLU, as in ResNet's stem).
 */
export function sparseMaxPool(x: Tensor, nbr: Tensor): Tensor {
  checkFloat(x, 'input');
  checkRank(x, 2, 2, 'input');
  checkTensor(nbr, 'nbr');
  checkDtype(nbr, 'int32', 'nbr');
  checkRank(nbr, 2, 2, 'nbr');
  const [y, arg] = native().sparseMaxPool(x.native, nbr.native);
  const sn = nbr.share();
  const N = x.shape[0]!;
  return record('sparseMaxPool', [y], [x], ([g]) => [native().sparseMaxPoolBackward(g!, sn, arg, N)], [sn, arg])[0]!;
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
