/**
 * GEGLU, the FFN activation of the mosaic-bert presets, at mosaic-bert-mini's
 * width on the 32×128 MLM batch: x [4096, 2·1024] → [4096, 1024].
 */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

// mosaic-bert-mini has bert-mini's widths (hidden 256, FFN 1024), with a GEGLU FFN
const m = bertShape('bert-mini');

export const cases: OpCase[] = [
  {
    op: 'geglu',
    model: `mosaic-bert-mini MLM ${m.B}×${m.L}`,
    shape: `x ${dims([m.tokens, 2 * m.I])} → ${dims([m.tokens, m.I])}`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand([m.tokens, 2 * m.I], 3);
      const g = ctx.rand([m.tokens, m.I]);
      const n = ctx.addon;
      return { fwd: { run: () => n.geglu(x), reads: [x] }, bwd: { run: () => n.gegluBackward(g, x), reads: [g, x] } };
    },
  },
];
