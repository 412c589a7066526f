/** LayerNorm over the hidden width, after every attention and FFN block of BERT (post-LN). */
import { bertShape, type BertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const layerNorm = (m: BertShape): OpCase => ({
  op: 'layerNorm',
  model: m.label,
  shape: `x ${dims([m.tokens, m.D])}, weight and bias [${m.D}]`,
  bound: 'memory',
  setup(ctx) {
    const x = ctx.rand([m.tokens, m.D]);
    const w = ctx.rand([m.D]);
    const b = ctx.rand([m.D]);
    const dy = ctx.rand([m.tokens, m.D]);
    const n = ctx.addon;
    const [y, mean, rstd] = ctx.keep(n.layerNorm(x, w, b, 1e-12));
    y.dispose();
    return {
      fwd: { run: () => n.layerNorm(x, w, b, 1e-12), reads: [x, w, b] },
      bwd: { run: () => n.layerNormBackward(dy, x, w, mean, rstd, true, true, true), reads: [dy, x, w, mean, rstd] },
    };
  },
});

export const cases: OpCase[] = [layerNorm(bertShape('bert-tiny')), layerNorm(bertShape('bert-mini'))];
