/**
 * The MIM objectives on vit-micro-fmnist (batch 128, 49 patches of 16
 * pixels, 75% masked): MAE's normalised-pixel MSE over masked patches, MTO's
 * masked/visible cosine over the encoder's tokens (width 64), and HPM's
 * pairwise ranking loss over the masked patches' predicted losses. The
 * ranking loss does O(masked²) work per image, so its GB/s reads low.
 */
import { vitShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const v = vitShape();
const { B, L, D, P } = v;

export const cases: OpCase[] = [
  {
    op: 'maskedPatchLoss',
    model: v.label,
    shape: `pred, target ${dims([B, L, P])}, uint8 mask ${dims([B, L])} (75%), MSE with normPix`,
    bound: 'memory',
    setup(ctx) {
      const pred = ctx.rand([B, L, P]);
      const target = ctx.rand([B, L, P]);
      const mask = ctx.mask([B, L], 0.75);
      const o = { kind: 'mse' as const, normPix: true, eps: 1e-6 };
      const n = ctx.addon;
      return {
        fwd: { run: () => n.maskedPatchLoss(pred, target, mask, o), reads: [pred, target, mask] },
        bwd: { run: () => n.maskedPatchLossBackward(1, pred, target, mask, o, true, false), reads: [pred, target, mask] },
      };
    },
  },
  {
    op: 'maskedCosine',
    model: v.label,
    shape: `x ${dims([B, L, D])}, uint8 mask ${dims([B, L])} (75%)`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand([B, L, D]);
      const mask = ctx.mask([B, L], 0.75);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.maskedCosine(x, mask, 1e-8), reads: [x, mask] },
        bwd: { run: () => n.maskedCosineBackward(1, x, mask, 1e-8), reads: [x, mask] },
      };
    },
  },
  {
    op: 'rankingLoss',
    model: v.label,
    shape: `pred, target ${dims([B, L])}, uint8 mask ${dims([B, L])} (75%: ~37 masked, ~670 pairs per image)`,
    bound: 'memory',
    setup(ctx) {
      const pred = ctx.rand([B, L]);
      const target = ctx.rand([B, L]);
      const mask = ctx.mask([B, L], 0.75);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.rankingLoss(pred, target, mask), reads: [pred, target, mask] },
        bwd: { run: () => n.rankingLossBackward(1, pred, target, mask), reads: [pred, target, mask] },
      };
    },
  },
];
