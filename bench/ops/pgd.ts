/**
 * L2 PGD on bert-mini's word embeddings (fine-tuning with --adv): the random
 * start and the projected step over a padded batch of 32 × 128 in which each
 * sequence has 96 real tokens, so the padding rows are skipped as in training.
 */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');
const embeds = [m.tokens, m.D];
const real = Math.round(m.L * 0.75);

function segments(ctx: Parameters<OpCase['setup']>[0]) {
  const starts = Int32Array.from({ length: m.B }, (_, b) => b * m.L);
  return { starts: ctx.int32(starts, [m.B]), lengths: ctx.int32(new Int32Array(m.B).fill(real), [m.B]) };
}

export const cases: OpCase[] = [
  {
    op: 'pgdRandomStart',
    model: m.label,
    shape: `δ ${dims(embeds)}, ${real} real tokens a row`,
    bound: 'memory',
    setup(ctx) {
      const like = ctx.rand(embeds);
      const { starts, lengths } = segments(ctx);
      let step = 0;
      return { fwd: { run: () => ctx.addon.pgdRandomStart(like, starts, lengths, 1, 1234, step++), reads: [] } };
    },
  },
  {
    op: 'pgdStep',
    model: m.label,
    shape: `δ, g ${dims(embeds)}, ${real} real tokens a row`,
    bound: 'memory',
    setup(ctx) {
      const delta = ctx.rand(embeds);
      const grad = ctx.rand(embeds);
      const { starts, lengths } = segments(ctx);
      return { fwd: { run: () => ctx.addon.pgdStep(delta, grad, starts, lengths, 1.5, 1), reads: [delta, grad] } };
    },
  },
];
