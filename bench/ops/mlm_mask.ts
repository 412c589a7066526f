/** BERT's 80/10/10 corruption of a 32×128 batch at 15% selection: per-token work on int32 ids, a few µs of memory. */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');

export const cases: OpCase[] = [
  {
    op: 'mlmMask',
    model: m.label,
    shape: `int32 ids ${dims([m.B, m.L])}, uint8 selection (15%), V ${m.V}`,
    bound: 'memory',
    setup(ctx) {
      const ids = ctx.ints([m.B, m.L], 5, m.V);
      const sel = ctx.mask([m.B, m.L], 0.15);
      let step = 0;
      return { fwd: { run: () => ctx.addon.mlmMask(ids, sel, null, m.V, 103, 0.8, 0.1, 999, m.V, 1234, step++), reads: [ids, sel] } };
    },
  },
];
