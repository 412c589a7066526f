/**
 * Word-embedding gather of the 32×128 MLM batch from bert-mini's table
 * [30522, 256], and its scatter-add backward into a zeroed table gradient.
 * Bytes count what the kernel must touch: the ids, the gathered rows and the
 * output (forward); the ids, the gradient rows and the whole gradient table
 * it zero-fills (backward).
 */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');

export const cases: OpCase[] = [
  {
    op: 'embedding',
    model: m.label,
    shape: `table ${dims([m.V, m.D])}, int32 ids ${dims([m.B, m.L])}`,
    bound: 'memory',
    setup(ctx) {
      const table = ctx.rand([m.V, m.D]);
      const ids = ctx.ints([m.B, m.L], 0, m.V);
      const g = ctx.rand([m.B, m.L, m.D]);
      const n = ctx.addon;
      const rows = m.tokens * m.D * (ctx.dtype === 'float32' ? 4 : 2);
      return {
        fwd: { run: () => n.embedding(table, ids), bytes: ids.nbytes + 2 * rows },
        bwd: { run: () => n.embeddingBackward(g, ids, m.V), bytes: ids.nbytes + g.nbytes + 2 * rows + table.nbytes },
      };
    },
  },
];
