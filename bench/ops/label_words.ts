/**
 * MVP's label-word scoring at two shapes: a bert-mini training step (32
 * examples × 4 templates = 128 [MASK] rows, 8 classes × 2 words = 16 label
 * words) and a bert-base-sized evaluation batch (512 × 4 = 2048 rows, D = 768,
 * 50 words in 10 classes), both against the 30522-word tied decoder.
 * labelWordLogits: 2·M·K·D FLOPs forward, 4·M·K·D backward (dh and the word
 * rows of dW); its backward also zero-fills the dense [V, D] weight gradient,
 * which at these M dominates the time (reported as it is: the training step
 * pays it too). verbalizerPool is a few compares per score: memory-bound,
 * counted as the scores read and the output written.
 */
import { bertPreset } from '../../src/index.js';
import { dims, type CaseContext, type NT, type OpCase } from '../lib/op-case.js';

interface Shape {
  label: string;
  B: number;
  T: number;
  K: number;
  C: number;
  D: number;
  V: number;
}

const TEMPLATES = 4;
const mini = bertPreset('bert-mini').config;
const base = bertPreset('bert-base').config;
const SHAPES: Shape[] = [
  { label: `bert-mini MVP 32×${TEMPLATES} templates`, B: 32, T: TEMPLATES, K: 16, C: 8, D: mini.hidden, V: mini.vocabSize },
  { label: `bert-base MVP eval 512×${TEMPLATES} templates`, B: 512, T: TEMPLATES, K: 50, C: 10, D: base.hidden, V: base.vocabSize },
];

/** K distinct word ids spread over the vocabulary, and word k's class k mod C (every class has a word). */
function wordsFor(ctx: CaseContext, s: Shape): { words: NT; classOf: NT } {
  const words = ctx.int32(Int32Array.from({ length: s.K }, (_, k) => Math.floor(((k + 0.5) * s.V) / s.K)), [s.K]);
  const classOf = ctx.int32(Int32Array.from({ length: s.K }, (_, k) => k % s.C), [s.K]);
  return { words, classOf };
}

export const cases: OpCase[] = [
  ...SHAPES.map((s): OpCase => ({
    op: 'labelWordLogits',
    model: s.label,
    shape: `h ${dims([s.B * s.T, s.D])}, W ${dims([s.V, s.D])}, b [${s.V}], ${s.K} words`,
    bound: 'compute',
    setup(ctx) {
      const M = s.B * s.T;
      const h = ctx.rand([M, s.D]);
      const w = ctx.rand([s.V, s.D], 0.05);
      const b = ctx.rand([s.V], 0.05);
      const { words } = wordsFor(ctx, s);
      const g = ctx.rand([M, s.K]);
      const n = ctx.addon;
      const flops = 2 * M * s.K * s.D;
      return {
        fwd: { run: () => n.labelWordLogits(h, w, b, words), flops },
        bwd: { run: () => n.labelWordLogitsBackward(g, h, w, words, true, true, true), flops: 2 * flops },
      };
    },
  })),
  ...SHAPES.map((s): OpCase => ({
    op: 'verbalizerPool',
    model: s.label,
    shape: `scores ${dims([s.B, s.T, s.K])}, ${s.C} classes`,
    bound: 'memory',
    setup(ctx) {
      const scores = ctx.rand([s.B, s.T, s.K]);
      const { classOf } = wordsFor(ctx, s);
      const g = ctx.rand([s.B, s.C]);
      const n = ctx.addon;
      const el = ctx.dtype === 'float32' ? 4 : 2;
      return {
        fwd: { run: () => n.verbalizerPool(scores, classOf, s.C), bytes: scores.nbytes + classOf.nbytes + s.B * s.C * el },
        bwd: { run: () => n.verbalizerPoolBackward(g, scores, classOf, s.C), bytes: g.nbytes + 2 * scores.nbytes + classOf.nbytes },
      };
    },
  })),
];
