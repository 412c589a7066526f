/**
 * Submanifold sparse convolution on SparK's encoders (batch 64, 32×32, ratio
 * 0.6): spark-resnet-mini's 3×3 convs at its finest (32 channels) and coarsest
 * (4×4, 256 channels) stages, and spark-convnext-mini's 7×7 depthwise conv at
 * its finest stage. FLOPs count the active pairs of the rulebook only:
 * 2·pairs·Cin·Cout (dense) or 2·pairs·C (depthwise) forward, twice that
 * backward (input and weight gradients).
 */
import { sparkShape, type SparkShape } from '../lib/model-shapes.js';
import type { CaseContext, NT, OpCase } from '../lib/op-case.js';
import { rulebook, sparkSites } from '../lib/spark-sites.js';

/** Entries ≥ 0 of a rulebook: the multiply-adds per channel pair. */
function activePairs(nbr: NT): number {
  const a = nbr.read() as Int32Array;
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i]! >= 0) n++;
  return n;
}

const conv = (s: SparkShape, scale: number, k: number, depthwise: boolean): OpCase => {
  const C = s.widths[scale]!;
  const side = s.image >> scale;
  return {
    op: depthwise ? 'sparseDepthwiseConv' : 'sparseConv',
    model: s.label,
    shape: `${k}×${k}${depthwise ? ' depthwise' : ''} at ${side}×${side}: rows [N, ${C}] → [N, ${C}]`,
    bound: 'compute',
    setup(ctx: CaseContext) {
      const sites = sparkSites(ctx, s);
      const N = sites.scales[scale]!.active;
      const nbr = rulebook(ctx, sites, scale, k, 1);
      const x = ctx.rand([N, C]);
      const w = ctx.rand(depthwise ? [C, 1, k, k] : [C, C, k, k], 0.1);
      const b = ctx.rand([C]);
      const g = ctx.rand([N, C]);
      const flops = 2 * activePairs(nbr) * C * (depthwise ? 1 : C);
      const n = ctx.addon;
      return depthwise
        ? {
            fwd: { run: () => n.sparseDepthwiseConv(x, w, b, nbr), flops },
            bwd: { run: () => n.sparseDepthwiseConvBackward(g, x, w, nbr, true, true, true), flops: 2 * flops },
          }
        : {
            fwd: { run: () => n.sparseConv(x, w, b, nbr), flops },
            bwd: { run: () => n.sparseConvBackward(g, x, w, nbr, true, true, true), flops: 2 * flops },
          };
    },
  };
};

const resnet = sparkShape('resnet');
const convnext = sparkShape('convnext');

export const cases: OpCase[] = [
  conv(resnet, 0, 3, false),
  conv(resnet, 3, 3, false),
  conv(convnext, 0, 7, true),
];
