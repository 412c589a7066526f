/**
 * NCHW ↔ NHWC around every LayerNorm and pointwise MLP of spark-convnext-mini's
 * masked-dense encoder, at its finest stage (batch 64, 32 channels at 32×32).
 */
import { sparkShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const s = sparkShape('convnext');
const nchw = [s.B, s.widths[0]!, s.image, s.image];
const nhwc = [s.B, s.image, s.image, s.widths[0]!];

export const cases: OpCase[] = [
  {
    op: 'toChannelsLast',
    model: s.label,
    shape: `x NCHW ${dims(nchw)} → NHWC`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(nchw);
      const g = ctx.rand(nhwc);
      const n = ctx.addon;
      return { fwd: { run: () => n.toChannelsLast(x), reads: [x] }, bwd: { run: () => n.toChannelsFirst(g), reads: [g] } };
    },
  },
  {
    op: 'toChannelsFirst',
    model: s.label,
    shape: `x NHWC ${dims(nhwc)} → NCHW`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(nhwc);
      const g = ctx.rand(nchw);
      const n = ctx.addon;
      return { fwd: { run: () => n.toChannelsFirst(x), reads: [x] }, bwd: { run: () => n.toChannelsLast(g), reads: [g] } };
    },
  },
];
