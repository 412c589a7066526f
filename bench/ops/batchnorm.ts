/**
 * BatchNorm2d of SparK (batch 64): the decoder's last block (dense, 16
 * channels at 32×32) and the masked-dense encoder's finest stage (32 channels
 * at 32×32, statistics over the visible pixels only).
 */
import { sparkShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';
import { sparkSites } from '../lib/spark-sites.js';

const s = sparkShape('resnet');

const batchNorm = (what: string, C: number, masked: boolean): OpCase => ({
  op: 'batchNorm2d',
  model: s.label,
  shape: `${what}: x ${dims([s.B, C, s.image, s.image])}${masked ? ', uint8 mask (37.5% visible)' : ''}, training`,
  bound: 'memory',
  setup(ctx) {
    const shape = [s.B, C, s.image, s.image];
    const x = ctx.rand(shape);
    const w = ctx.rand([C]);
    const b = ctx.rand([C]);
    const rm = ctx.full([C], 0);
    const rv = ctx.full([C], 1);
    const g = ctx.rand(shape);
    const mask = masked ? sparkSites(ctx, s).scales[0]!.mask : null;
    const n = ctx.addon;
    const [y, mean, rstd] = ctx.keep(n.batchNorm2d(x, w, b, rm, rv, mask, true, 0.1, 1e-5));
    y.dispose();
    const m = mask ? [mask] : [];
    return {
      fwd: { run: () => n.batchNorm2d(x, w, b, rm, rv, mask, true, 0.1, 1e-5), reads: [x, w, b, ...m], updates: [rm, rv] },
      bwd: { run: () => n.batchNorm2dBackward(g, x, w, mean, rstd, mask, true, true, true, true), reads: [g, x, w, mean, rstd, ...m] },
    };
  },
});

/** Synchronized BatchNorm's per-rank statistics (data-parallel SparK): Σ(x − mean)², the second of its two passes. */
const sums = (what: string, C: number): OpCase => ({
  op: 'batchNorm2dSums',
  model: s.label,
  shape: `${what}: x ${dims([s.B, C, s.image, s.image])}, uint8 mask (37.5% visible), centred`,
  bound: 'memory',
  setup(ctx) {
    const x = ctx.rand([s.B, C, s.image, s.image]);
    const mask = sparkSites(ctx, s).scales[0]!.mask;
    const center = ctx.keep(ctx.addon.fromTypedArray(new Float64Array(C), [C]));
    return { fwd: { run: () => ctx.addon.batchNorm2dSums(x, mask, center), reads: [x, mask, center] } };
  },
});

export const cases: OpCase[] = [
  batchNorm('decoder, last block', s.decoderWidth >> 3, false),
  batchNorm('masked-dense encoder, stage 0', s.widths[0]!, true),
  sums('masked-dense encoder, stage 0', s.widths[0]!),
];
