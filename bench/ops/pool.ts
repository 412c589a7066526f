/**
 * Pooling and mask ops of SparK's dense paths (batch 64): 2×2 max and average
 * pools on the finest stage's map (32 channels at 32×32; no preset pools yet,
 * this is the shape one would), global average pooling of the last stage
 * (256 channels at 4×4: the probe's features), and the mask ops of the
 * masked-dense encoder (apply the 32×32 mask; repeat the 4×4 mask up to it).
 */
import { sparkShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';
import { sparkSites } from '../lib/spark-sites.js';

const s = sparkShape('resnet');
const B = s.B;
const C = s.widths[0]!;
const map = [B, C, s.image, s.image];
const half = [B, C, s.image / 2, s.image / 2];

export const cases: OpCase[] = [
  {
    op: 'maxPool2d',
    model: s.label,
    shape: `x ${dims(map)}, 2×2 stride 2`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(map);
      const g = ctx.rand(half);
      const n = ctx.addon;
      const [, arg] = ctx.keep(n.maxPool2d(x, 2, 2, 0));
      return {
        fwd: { run: () => n.maxPool2d(x, 2, 2, 0), reads: [x] },
        bwd: { run: () => n.maxPool2dBackward(g, arg, map), reads: [g, arg] },
      };
    },
  },
  {
    op: 'avgPool2d',
    model: s.label,
    shape: `x ${dims(map)}, 2×2 stride 2`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(map);
      const g = ctx.rand(half);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.avgPool2d(x, 2, 2, 0, true), reads: [x] },
        bwd: { run: () => n.avgPool2dBackward(g, map, 2, 2, 0, true), reads: [g] },
      };
    },
  },
  {
    op: 'globalAvgPool',
    model: s.label,
    shape: `x ${dims([B, s.widths[3]!, 4, 4])} → ${dims([B, s.widths[3]!])}`,
    bound: 'memory',
    setup(ctx) {
      const shape = [B, s.widths[3]!, 4, 4];
      const x = ctx.rand(shape);
      const g = ctx.rand([B, s.widths[3]!]);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.globalAvgPool(x), reads: [x] },
        bwd: { run: () => n.globalAvgPoolBackward(g, shape), reads: [g] },
      };
    },
  },
  {
    op: 'applyMask',
    model: s.label,
    shape: `x ${dims(map)}, uint8 mask ${dims([B, s.image, s.image])}`,
    bound: 'memory',
    setup(ctx) {
      const mask = sparkSites(ctx, s).scales[0]!.mask;
      const x = ctx.rand(map);
      return { fwd: { run: () => ctx.addon.applyMask(x, mask), reads: [x, mask] } };
    },
  },
  {
    op: 'upsampleMask',
    model: s.label,
    shape: `uint8 ${dims([B, s.grid, s.grid])} → ${dims([B, s.image, s.image])}`,
    bound: 'memory',
    setup(ctx) {
      const coarse = sparkSites(ctx, s).coarse;
      return { fwd: { run: () => ctx.addon.upsampleMask(coarse, s.image / s.grid), reads: [coarse] } };
    },
  },
];
