/**
 * Dense convolutions of SparK (batch 64): the masked-dense baseline's
 * encoder at its finest stage (spark-resnet-mini's 3×3, 32 channels at 32×32;
 * spark-convnext-mini's 7×7 depthwise, which is conv2d with groups = C) and
 * the decoder's last block (3×3 at 32×32, 16 channels) and its 4×4 stride-2
 * transposed conv (8×8×64 → 16×16×32). FLOPs: 2·B·Ho·Wo·Cout·(Cin/groups)·k²
 * forward, twice that backward (input and weight gradients).
 */
import { sparkShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const resnet = sparkShape('resnet');
const convnext = sparkShape('convnext');
const B = resnet.B;

const conv2d = (model: string, what: string, C: number, side: number, k: number, groups: number): OpCase => ({
  op: 'conv2d',
  model,
  shape: `${what}: x ${dims([B, C, side, side])}, ${k}×${k}${groups > 1 ? ` depthwise (groups ${groups})` : ` ${C} → ${C}`}, padding ${(k - 1) / 2}`,
  bound: 'compute',
  setup(ctx) {
    const p = (k - 1) / 2;
    const x = ctx.rand([B, C, side, side]);
    const w = ctx.rand([C, C / groups, k, k], 0.1);
    const b = ctx.rand([C]);
    const g = ctx.rand([B, C, side, side]);
    const flops = 2 * B * side * side * C * (C / groups) * k * k;
    const n = ctx.addon;
    return {
      fwd: { run: () => n.conv2d(x, w, b, 1, p, groups), flops },
      bwd: { run: () => n.conv2dBackward(g, x, w, 1, p, groups, true, true, true), flops: 2 * flops },
    };
  },
});

export const cases: OpCase[] = [
  conv2d(resnet.label, 'masked-dense encoder, stage 0', resnet.widths[0]!, resnet.image, 3, 1),
  conv2d(convnext.label, 'masked-dense encoder, stage 0', convnext.widths[0]!, convnext.image, 7, convnext.widths[0]!),
  conv2d(resnet.label, 'decoder, last block', resnet.decoderWidth >> 3, resnet.image, 3, 1),
  {
    op: 'convTranspose2d',
    model: resnet.label,
    shape: `decoder upsampling: x ${dims([B, 64, 8, 8])}, 4×4 stride 2 padding 1, 64 → 32`,
    bound: 'compute',
    setup(ctx) {
      const x = ctx.rand([B, 64, 8, 8]);
      const w = ctx.rand([64, 32, 4, 4], 0.1);
      const b = ctx.rand([32]);
      const g = ctx.rand([B, 32, 16, 16]);
      const flops = 2 * B * 8 * 8 * 64 * 32 * 16;
      const n = ctx.addon;
      return {
        fwd: { run: () => n.convTranspose2d(x, w, b, 2, 1, 1), flops },
        bwd: { run: () => n.convTranspose2dBackward(g, x, w, 2, 1, 1, true, true, true), flops: 2 * flops },
      };
    },
  },
];
