/**
 * The optimizer's passes over bert-mini's 11.2 M parameters as one flat
 * buffer (AdamW keeps its parameters, gradients and moments in flat
 * per-group buffers), and the EMA teacher update over vit-micro-fmnist's
 * encoder weights (HPM). On cuda with bfloat16 parameters, AdamW updates
 * float32 master weights (and moments) and writes the bfloat16 rounding.
 */
import { bertShape, vitShape } from '../lib/model-shapes.js';
import type { OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');
const vit = vitShape();
// Per block: q, k, v, o (4·D²) and the MLP (2·4·D²), biases and norms aside.
const vitWeights = vit.depth * 12 * vit.D * vit.D;

export const cases: OpCase[] = [
  {
    op: 'adamw',
    model: `${m.name} MLM step`,
    shape: `param, grad, m, v [${m.params}] (all trainable parameters)`,
    bound: 'memory',
    setup(ctx) {
      const p = ctx.rand([m.params], 0.05);
      const g = ctx.rand([m.params], 1e-3);
      const mom = ctx.full([m.params], 0, 'float32');
      const v = ctx.full([m.params], 0, 'float32');
      const master = ctx.dtype === 'bfloat16' ? ctx.rand([m.params], 0.05, 'float32') : null;
      let step = 0;
      const n = ctx.addon;
      const opts = { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-6, weightDecay: 0.01 };
      return {
        fwd: {
          run: () => n.adamw(p, g, mom, v, { ...opts, step: ++step, ...(master ? { master } : {}) }),
          reads: [g],
          updates: master ? [p, mom, v, master] : [p, mom, v],
        },
      };
    },
  },
  {
    op: 'emaUpdate',
    model: vit.label,
    shape: `teacher, student [${vitWeights}] (the encoder's weight matrices, flat)`,
    bound: 'memory',
    setup(ctx) {
      const dst = ctx.rand([vitWeights], 0.05);
      const src = ctx.rand([vitWeights], 0.05);
      return { fwd: { run: () => ctx.addon.emaUpdate(dst, src, 0.996), reads: [src], updates: [dst] } };
    },
  },
  {
    op: 'clipGradNorm',
    model: `${m.name} MLM step`,
    shape: `grads [${m.params}] in two groups (decay, no decay); the norm stays below maxNorm, so no rescale`,
    bound: 'memory',
    setup(ctx) {
      // AdamW's two groups: the weights (decayed), and the biases and LayerNorms (not): embeddings' norm,
      // per layer 4 projection biases, 2 FFN biases and 2 norms, then the head's bias, norm and decoder bias
      const small = 2 * m.D + m.layers * (4 * m.D + m.I + m.D + 4 * m.D) + 3 * m.D + m.V;
      const a = ctx.rand([m.params - small], 1e-4);
      const b = ctx.rand([small], 1e-4);
      return { fwd: { run: () => ctx.addon.clipGradNorm([a, b], 1e30), reads: [a, b] } };
    },
  },
  {
    op: 'gradNorm',
    model: `${m.name} MLM step`,
    shape: `grads [${m.params}] in two groups; the norm stays on the device (what AdamW.stepClipped clips with)`,
    bound: 'memory',
    setup(ctx) {
      const small = 2 * m.D + m.layers * (4 * m.D + m.I + m.D + 4 * m.D) + 3 * m.D + m.V;
      const a = ctx.rand([m.params - small], 1e-4);
      const b = ctx.rand([small], 1e-4);
      return { fwd: { run: () => ctx.addon.gradNorm([a, b]).dispose(), reads: [a, b] } };
    },
  },
];
