/** Hidden dropout (p = 0.1) on bert-mini's hidden state; the backward is the same call on the gradient, so one row. */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');
const hidden = [m.tokens, m.D];

export const cases: OpCase[] = [
  {
    op: 'dropout',
    model: m.label,
    shape: `x ${dims(hidden)}, p 0.1`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(hidden);
      let step = 0;
      return { fwd: { run: () => ctx.addon.dropout(x, 0.1, 1234, step++), reads: [x] } };
    },
  },
  {
    op: 'dropoutAdd',
    model: m.label,
    shape: `x, residual ${dims(hidden)}, p 0.1`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(hidden);
      const r = ctx.rand(hidden);
      let step = 0;
      return { fwd: { run: () => ctx.addon.dropoutAdd(x, r, 0.1, 1234, step++), reads: [x, r] } };
    },
  },
];
