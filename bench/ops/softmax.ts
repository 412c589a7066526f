/**
 * Row softmax at the attention-score shape of bert-mini on 32×128: [B·H·L, L].
 * The models use the fused attention kernel; this is the unfused path (the
 * naive attention of bench:matmul-attention) and any classifier's softmax.
 */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');
const scores = [m.B * m.heads * m.L, m.L];

export const cases: OpCase[] = [
  {
    op: 'softmax',
    model: m.label,
    shape: `scores ${dims(scores)} (B·H·L rows)`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(scores, 4);
      const dy = ctx.rand(scores);
      const n = ctx.addon;
      const y = ctx.keep(n.softmax(x));
      return { fwd: { run: () => n.softmax(x), reads: [x] }, bwd: { run: () => n.softmaxBackward(dy, y), reads: [dy, y] } };
    },
  },
];
