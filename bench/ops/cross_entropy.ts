/**
 * Cross-entropy and argmax over full MLM logits: bert-mini's masked rows
 * (614 of 32×128) × the 30,522-word vocabulary. Training fuses the head
 * (linear_ce); this is the full-logits path and evaluation's accuracy.
 */
import { bertShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');
const logits = [m.masked, m.V];

export const cases: OpCase[] = [
  {
    op: 'crossEntropy',
    model: m.label,
    shape: `logits ${dims(logits)} (masked rows × vocabulary), int32 targets [${m.masked}]`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(logits, 4);
      const t = ctx.ints([m.masked], 0, m.V);
      const n = ctx.addon;
      const r = ctx.keep(n.crossEntropy(x, t, null, -100));
      return {
        fwd: { run: () => n.crossEntropy(x, t, null, -100), reads: [x, t] },
        bwd: { run: () => n.crossEntropyBackward(1, x, t, null, r.lse, -100, r.count), reads: [x, t, r.lse] },
      };
    },
  },
  {
    op: 'argmaxRows',
    model: m.label,
    shape: `logits ${dims(logits)} → int32 [${m.masked}] (MLM accuracy)`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(logits, 4);
      return { fwd: { run: () => ctx.addon.argmaxRows(x), reads: [x] } };
    },
  },
];
