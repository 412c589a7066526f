/**
 * The fused MLM head, linearCrossEntropy, at bert-mini's training shape: the
 * 614 masked rows of 32×128, the tied decoder [30522, 256] and its bias, in
 * 4096-wide vocabulary chunks. FLOPs: 2·M·V·D forward, 4·M·V·D backward (dh
 * and dW); the backward's recompute of the logits (2·M·V·D more) is work the
 * fusion adds, not counted. The backward adds dW and db into gradient buffers
 * in place, as training does (the tied decoder's .grad is a view of AdamW's
 * flat buffer), so no [V, D] output is allocated. bench:mlm-step compares it
 * with the full-logits head.
 */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');
const CHUNK = 4096;

export const cases: OpCase[] = [
  {
    op: 'linearCrossEntropy',
    model: m.label,
    shape: `h ${dims([m.masked, m.D])}, W ${dims([m.V, m.D])}, b [${m.V}], chunks of ${CHUNK}`,
    bound: 'compute',
    setup(ctx) {
      const M = m.masked;
      const h = ctx.rand([M, m.D]);
      const w = ctx.rand([m.V, m.D], 0.05);
      const b = ctx.rand([m.V], 0.05);
      const t = ctx.ints([M], 0, m.V);
      const n = ctx.addon;
      const r = ctx.keep(n.linearCrossEntropy(h, w, b, t, -100, CHUNK));
      const dw = ctx.full([m.V, m.D], 0);
      const db = ctx.full([m.V], 0);
      const flops = 2 * M * m.V * m.D;
      return {
        fwd: { run: () => n.linearCrossEntropy(h, w, b, t, -100, CHUNK), flops },
        bwd: { run: () => n.linearCrossEntropyBackward(1, h, w, b, t, r.lse, -100, r.count, CHUNK, true, true, true, null, dw, db), flops: 2 * flops },
      };
    },
  },
  {
    op: 'linearSample',
    model: m.label,
    shape: `h ${dims([m.masked, m.D])}, W ${dims([m.V, m.D])}, b [${m.V}], chunks of ${CHUNK}`,
    bound: 'compute',
    setup(ctx) {
      const M = m.masked;
      const h = ctx.rand([M, m.D]);
      const w = ctx.rand([m.V, m.D], 0.05);
      const b = ctx.rand([m.V], 0.05);
      const n = ctx.addon;
      return { fwd: { run: () => n.linearSample(h, w, b, 1, 0, CHUNK, 1), flops: 2 * M * m.V * m.D } };
    },
  },
];
