/**
 * ASA fine-tuning on bert-mini's padded batch of 32 × 128 (a quarter of each
 * row padding): one layer's adversarial mask → attention bias with its
 * straight-through backward, and the symmetric KL of 32 × 2 class logits.
 */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');
const scores = [m.B, m.L, m.L];
const real = Math.round(m.L * 0.75);

export const cases: OpCase[] = [
  {
    op: 'asaMask',
    model: m.label,
    shape: `S ${dims(scores)}, ${real} real tokens a row`,
    bound: 'memory',
    setup(ctx) {
      const s = ctx.rand(scores);
      const pad = new Uint8Array(m.B * m.L);
      for (let b = 0; b < m.B; b++) pad.fill(1, b * m.L + real, (b + 1) * m.L);
      const kp = ctx.uint8(pad, [m.B, m.L]);
      const gb = ctx.rand(scores);
      const gk = ctx.rand([m.B, m.L]);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.asaMask(s, kp, 1e4), reads: [s, kp] },
        bwd: { run: () => n.asaMaskBackward(gb, gk, s, kp, 1e4), reads: [gb, gk, s, kp] },
      };
    },
  },
  {
    op: 'symKl',
    model: m.label,
    shape: `logits 2 × [${m.B}, 2] (clean and adversarial)`,
    bound: 'memory',
    setup(ctx) {
      const a = ctx.rand([m.B, 2], 3);
      const b = ctx.rand([m.B, 2], 3);
      const g = ctx.rand([], 1);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.symKl(a, b), reads: [a, b] },
        bwd: { run: () => n.symKlBackward(g, a, b, true, true), reads: [a, b] },
      };
    },
  },
];
