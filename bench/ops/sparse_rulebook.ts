/**
 * SparK's per-step bookkeeping on spark-resnet-mini (batch 64, 32×32, ratio
 * 0.6: 6 of 16 cells visible): the active sites of the finest mask, the 3×3
 * submanifold rulebook there, and the densify step of the decoder at scale 1
 * (16×16, 64 channels), with its backward gathers.
 */
import { sparkShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';
import { sparkSites } from '../lib/spark-sites.js';

const s = sparkShape('resnet');
const elt = (dtype: string): number => (dtype === 'float32' ? 4 : 2);

export const cases: OpCase[] = [
  {
    op: 'activeSites',
    model: s.label,
    shape: `uint8 mask ${dims([s.B, s.image, s.image])} (37.5% visible)`,
    bound: 'memory',
    setup(ctx) {
      const sites = sparkSites(ctx, s);
      const m = sites.scales[0]!.mask;
      return { fwd: { run: () => ctx.addon.activeSites(m), reads: [m] } };
    },
  },
  {
    op: 'neighbourTable',
    model: s.label,
    shape: `3×3 submanifold rulebook at 32×32: grid ${dims([s.B, s.image, s.image])}, the active sites`,
    bound: 'memory',
    setup(ctx) {
      const sc = sparkSites(ctx, s).scales[0]!;
      return { fwd: { run: () => ctx.addon.neighbourTable(sc.grid, sc.coords, 3, 1, 1), reads: [sc.grid, sc.coords] } };
    },
  },
  {
    op: 'toDense',
    model: s.label,
    shape: `decoder densify at 16×16: rows [N, 64] → ${dims([s.B, 64, 16, 16])}, mask token elsewhere`,
    bound: 'memory',
    setup(ctx) {
      const sc = sparkSites(ctx, s).scales[1]!;
      const C = s.widths[1]!;
      const x = ctx.rand([sc.active, C]);
      const fill = ctx.rand([C]);
      const g = ctx.rand([s.B, C, sc.side, sc.side]);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.toDense(x, sc.coords, s.B, sc.side, sc.side, fill), reads: [x, sc.coords, fill] },
        // the gradient's active rows, gathered
        bwd: { run: () => n.toSparse(g, sc.coords), bytes: sc.coords.nbytes + 2 * x.nbytes },
      };
    },
  },
  {
    op: 'toSparse',
    model: s.label,
    shape: `the active rows of ${dims([s.B, 64, 16, 16])}; backward: toDense of the rows' gradient (zeros elsewhere)`,
    bound: 'memory',
    setup(ctx) {
      const sc = sparkSites(ctx, s).scales[1]!;
      const C = s.widths[1]!;
      const dense = ctx.rand([s.B, C, sc.side, sc.side]);
      const g = ctx.rand([sc.active, C]);
      const rows = sc.active * C * elt(ctx.dtype);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.toSparse(dense, sc.coords), bytes: sc.coords.nbytes + 2 * rows },
        bwd: { run: () => n.toDense(g, sc.coords, s.B, sc.side, sc.side, null), bytes: sc.coords.nbytes + rows + dense.nbytes },
      };
    },
  },
  {
    op: 'toDenseFillGrad',
    model: s.label,
    shape: `toDense's mask-token gradient: Σ of ${dims([s.B, 64, 16, 16])} over the inactive sites`,
    bound: 'memory',
    setup(ctx) {
      const sc = sparkSites(ctx, s).scales[1]!;
      const C = s.widths[1]!;
      const dense = ctx.rand([s.B, C, sc.side, sc.side]);
      const rows = sc.active * C * elt(ctx.dtype);
      return { fwd: { run: () => ctx.addon.toDenseFillGrad(dense, sc.coords), bytes: sc.coords.nbytes + dense.nbytes - rows } };
    },
  },
];
