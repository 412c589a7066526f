/**
 * Weight-mask tuning of bert-mini's FFN-in layer at the 32×128 MLM batch,
 * half the weights masked. FLOPs as linear's: 2·M·N·K forward, 4·M·N·K
 * backward (dx and dscores); the mask and ⊙W passes are not counted.
 */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');

export const cases: OpCase[] = [
  {
    op: 'maskedLinear',
    model: m.label,
    shape: `FFN in: x ${dims([m.tokens, m.D])} · (W ⊙ mask)ᵀ ${dims([m.I, m.D])} + b`,
    bound: 'compute',
    setup(ctx) {
      const M = m.tokens;
      const K = m.D;
      const N = m.I;
      const x = ctx.rand([M, K]);
      const w = ctx.rand([N, K], 0.1);
      const s = ctx.rand([N, K]);  // uniform around 0: τ = 0 keeps about half
      const b = ctx.rand([N]);
      const g = ctx.rand([M, N]);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.maskedLinear(x, w, s, b, 0), flops: 2 * M * N * K },
        bwd: { run: () => n.maskedLinearBackward(g, x, w, s, 0, true, true), flops: 4 * M * N * K },
      };
    },
  },
  {
    op: 'maskedLinearPacked',
    model: m.label,
    shape: `serving, FFN in: x ${dims([m.tokens, m.D])} · (W ⊙ bits)ᵀ ${dims([m.I, m.D])} + b, 95% kept`,
    bound: 'compute',
    setup(ctx) {
      const M = m.tokens;
      const K = m.D;
      const N = m.I;
      const x = ctx.rand([M, K]);
      const w = ctx.rand([N, K], 0.1);
      const bits = new Uint8Array(Math.ceil((N * K) / 8));
      for (let i = 0; i < bits.length; i++) bits[i] = i % 20 === 0 ? 0xfe : 0xff;
      const packed = ctx.uint8(bits, [bits.length]);
      const b = ctx.rand([N]);
      return { fwd: { run: () => ctx.addon.maskedLinearPacked(x, w, packed, b), flops: 2 * M * N * K } };
    },
  },
];
