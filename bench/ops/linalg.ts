/**
 * The transformer's GEMMs at the 32×128 MLM batch: linear layers of bert-tiny
 * and bert-mini (the attention projections D → D and the FFN's D → I, I → D),
 * and a plain matmul at the FFN's shape. FLOPs: 2·M·N·K forward, 4·M·N·K
 * backward (both input gradients); the bias's adds are not counted.
 */
import { bertShape, type BertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const linear = (m: BertShape, what: string, K: number, N: number): OpCase => ({
  op: 'linear',
  model: m.label,
  shape: `${what}: x ${dims([m.tokens, K])} · Wᵀ ${dims([N, K])} + b`,
  bound: 'compute',
  setup(ctx) {
    const M = m.tokens;
    const x = ctx.rand([M, K]);
    const w = ctx.rand([N, K], 0.1);
    const b = ctx.rand([N]);
    const g = ctx.rand([M, N]);
    const n = ctx.addon;
    return {
      fwd: { run: () => n.linear(x, w, b), flops: 2 * M * N * K },
      bwd: { run: () => n.linearBackward(g, x, w, true, true, true), flops: 4 * M * N * K },
    };
  },
});

const tiny = bertShape('bert-tiny');
const mini = bertShape('bert-mini');

export const cases: OpCase[] = [
  linear(tiny, 'FFN in', tiny.D, tiny.I),
  linear(mini, 'attention projection', mini.D, mini.D),
  linear(mini, 'FFN in', mini.D, mini.I),
  linear(mini, 'FFN out', mini.I, mini.D),
  {
    op: 'matmul',
    model: mini.label,
    shape: `a ${dims([mini.tokens, mini.D])} · b ${dims([mini.D, mini.I])}`,
    bound: 'compute',
    setup(ctx) {
      const M = mini.tokens;
      const K = mini.D;
      const N = mini.I;
      const a = ctx.rand([M, K]);
      const b = ctx.rand([K, N], 0.1);
      const g = ctx.rand([M, N]);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.matmul(a, b, false, false), flops: 2 * M * N * K },
        bwd: { run: () => n.matmulBackward(g, a, b, false, false, true, true), flops: 4 * M * N * K },
      };
    },
  },
];
