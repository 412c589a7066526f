/**
 * Element-wise ops at bert-mini's MLM shapes: the hidden state [4096, 256]
 * (residual adds, gradient accumulation) and the FFN's inner activation
 * [4096, 1024] (bias, GELU). Every one is memory-bound: GB/s counts each input
 * read once and each output written once.
 */
import { bertShape } from '../lib/model-shapes.js';
import { dims, numel, type OpCase } from '../lib/op-case.js';

const m = bertShape('bert-mini');
const hidden = [m.tokens, m.D];
const inner = [m.tokens, m.I];

const binary = (op: 'add' | 'mul'): OpCase => ({
  op,
  model: m.label,
  shape: `a, b ${dims(hidden)} (residual stream)`,
  bound: 'memory',
  setup(ctx) {
    const a = ctx.rand(hidden);
    const b = ctx.rand(hidden);
    const n = ctx.addon;
    if (op === 'add') return { fwd: { run: () => n.add(a, b), reads: [a, b] } };
    const g = ctx.rand(hidden);
    return {
      fwd: { run: () => n.mul(a, b), reads: [a, b] },
      bwd: { run: () => n.mulBackward(g, a, b, true, true), reads: [g, a, b] },
    };
  },
});

const activation = (op: 'gelu' | 'relu' | 'relu6' | 'tanh'): OpCase => ({
  op,
  model: m.label,
  shape: `x ${dims(inner)} (FFN inner)`,
  bound: 'memory',
  setup(ctx) {
    const x = ctx.rand(inner, 3);
    const g = ctx.rand(inner);
    const n = ctx.addon;
    const fwd = { gelu: () => n.gelu(x), relu: () => n.relu(x), relu6: () => n.relu6(x), tanh: () => n.tanh(x) }[op];
    const bwd = { gelu: () => n.geluBackward(g, x), relu: () => n.reluBackward(g, x), relu6: () => n.relu6Backward(g, x), tanh: () => n.tanhBackward(g, x) }[op];
    return { fwd: { run: fwd, reads: [x] }, bwd: { run: bwd, reads: [g, x] } };
  },
});

const reduction = (op: 'sum' | 'mean'): OpCase => ({
  op,
  model: m.label,
  shape: `x ${dims(inner)}; backward fills ${dims(inner)}`,
  bound: 'memory',
  setup(ctx) {
    const x = ctx.rand(inner);
    const g = ctx.full([], 1);
    const n = ctx.addon;
    const factor = op === 'sum' ? 1 : 1 / numel(inner);
    return {
      fwd: { run: () => (op === 'sum' ? n.sum(x) : n.mean(x)), reads: [x] },
      bwd: { run: () => n.reduceBackward(g, inner, factor), reads: [g] },
    };
  },
});

export const cases: OpCase[] = [
  binary('add'),
  binary('mul'),
  {
    op: 'scale',
    model: m.label,
    shape: `x ${dims(hidden)}`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(hidden);
      return { fwd: { run: () => ctx.addon.scale(x, 0.5), reads: [x] } };
    },
  },
  {
    op: 'axpyInPlace',
    model: m.label,
    shape: `dst += α·src, ${dims(hidden)} (gradient accumulation)`,
    bound: 'memory',
    setup(ctx) {
      const dst = ctx.rand(hidden);
      const src = ctx.rand(hidden);
      // α small enough that thousands of timed calls leave dst's magnitude as it was
      return { fwd: { run: () => ctx.addon.axpyInPlace(dst, src, 1e-7), reads: [src], updates: [dst] } };
    },
  },
  {
    op: 'biasAdd',
    model: m.label,
    shape: `x ${dims(inner)} + b [${m.I}]`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(inner);
      const b = ctx.rand([m.I]);
      return { fwd: { run: () => ctx.addon.biasAdd(x, b), reads: [x, b] } };
    },
  },
  {
    op: 'sumRows',
    model: m.label,
    shape: `x ${dims(inner)} → [${m.I}] (bias gradient)`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand(inner);
      return { fwd: { run: () => ctx.addon.sumRows(x), reads: [x] } };
    },
  },
  reduction('sum'),
  reduction('mean'),
  activation('gelu'),
  activation('relu'),
  activation('relu6'),
  activation('tanh'),
];
