/**
 * Submanifold and strided sparse convolution over the rulebook of
 * sparse_rulebook.ts (sparse maps are described there), dense and depthwise.
 *
 * What needs no op here:
 * - 1×1 convs and MLPs act on rows alone: `linear(x, w.reshape([Cout, Cin]), b)`.
 * - LayerNorm over channels (ConvNeXt) is per row: `layerNorm(x, w, b, eps)`.
 */
import { expected } from '../errors.js';
import { native } from '../native/loader.js';
import { record, type Tensor } from '../tensor.js';
import { checkDtype, checkFloat, checkRank, checkSameDtype, checkTensor } from '../validate.js';
import { checkVector } from './sparse_rulebook.js';

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
