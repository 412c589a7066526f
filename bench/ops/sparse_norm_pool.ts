/**
 * BatchNorm and max pooling over sparse rows (visible sites only) on
 * spark-resnet-mini (batch 64, 32×32, ratio 0.6): BatchNorm at the finest
 * stage (32 channels), and a 2×2 stride-2 max pool from 32×32 onto the 16×16
 * sites (the encoders stride with convs today; the pool is SparK's
 * downsampling op for encoders that pool).
 */
import { sparkShape } from '../lib/model-shapes.js';
import type { OpCase } from '../lib/op-case.js';
import { rulebook, sparkSites } from '../lib/spark-sites.js';

const s = sparkShape('resnet');
const C = s.widths[0]!;

export const cases: OpCase[] = [
  {
    op: 'sparseBatchNorm',
    model: s.label,
    shape: `rows [N, ${C}] at 32×32 (training statistics)`,
    bound: 'memory',
    setup(ctx) {
      const N = sparkSites(ctx, s).scales[0]!.active;
      const x = ctx.rand([N, C]);
      const w = ctx.rand([C]);
      const b = ctx.rand([C]);
      const rm = ctx.full([C], 0);
      const rv = ctx.full([C], 1);
      const g = ctx.rand([N, C]);
      const n = ctx.addon;
      const [y, mean, rstd] = ctx.keep(n.sparseBatchNorm(x, w, b, rm, rv, true, 0.1, 1e-5));
      y.dispose();
      return {
        // two passes over x: statistics, then normalise
        fwd: { run: () => n.sparseBatchNorm(x, w, b, rm, rv, true, 0.1, 1e-5), reads: [x, w, b], updates: [rm, rv] },
        bwd: { run: () => n.sparseBatchNormBackward(g, x, w, mean, rstd, true, true, true, true), reads: [g, x, w, mean, rstd] },
      };
    },
  },
  {
    op: 'sparseMaxPool',
    model: s.label,
    shape: `2×2 stride 2: rows [N, ${C}] at 32×32 → the 16×16 sites`,
    bound: 'memory',
    setup(ctx) {
      const sites = sparkSites(ctx, s);
      const N = sites.scales[0]!.active;
      const nbr = rulebook(ctx, sites, 0, 2, 2);
      const x = ctx.rand([N, C]);
      const n = ctx.addon;
      const [y, arg] = ctx.keep(n.sparseMaxPool(x, nbr));
      return {
        fwd: { run: () => n.sparseMaxPool(x, nbr), reads: [x, nbr] },
        bwd: { run: () => n.sparseMaxPoolBackward(y, nbr, arg, N), reads: [y, nbr, arg] },
      };
    },
  },
];
