/**
 * The token plumbing of MAE on vit-micro-fmnist (batch 128, 49 patch tokens
 * of width 64, 12 kept): the per-step noise, the argsort into kept and
 * restoring indices, the gathers in and out of the encoder, patchify of the
 * images into 16-pixel patches and back, and mean pooling of the tokens.
 */
import { vitShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const v = vitShape();
const { B, L, D, keep } = v;
const elt = (dtype: string): number => (dtype === 'float32' ? 4 : 2);

// The encoder's gather (x [B, 49, D] → its 12 kept rows) reads only the kept rows.
const encoderGather: OpCase = {
  op: 'assembleTokens',
  model: v.label,
  shape: `encoder input: the ${keep} kept of ${dims([B, L, D])}, index int32 ${dims([B, keep])}`,
  bound: 'memory',
  setup(ctx) {
    const idx = new Int32Array(B * keep);
    for (let b = 0; b < B; b++) idx.set(ctx.permutation(L).subarray(0, keep), b * keep);
    const x = ctx.rand([B, L, D]);
    const index = ctx.int32(idx, [B, keep]);
    const g = ctx.rand([B, keep, D]);
    const rows = B * keep * D * elt(ctx.dtype);
    const n = ctx.addon;
    return {
      fwd: { run: () => n.assembleTokens(x, index, null), bytes: index.nbytes + 2 * rows },
      // scatter into a zeroed [B, L, D]: the gradient rows read, the whole output written
      bwd: { run: () => n.assembleTokensBackward(g, index, L, 0, true, false), bytes: index.nbytes + g.nbytes + x.nbytes },
    };
  },
};

export const cases: OpCase[] = [
  {
    op: 'uniformNoise',
    model: v.label,
    shape: `scores ${dims([B, L])}`,
    bound: 'memory',
    setup(ctx) {
      let step = 0;
      return { fwd: { run: () => ctx.addon.uniformNoise([B, L], 7, step++, 0, 1, ctx.device) } };
    },
  },
  {
    op: 'maskFromScores',
    model: v.label,
    shape: `scores ${dims([B, L])}, keep ${keep} (row argsort)`,
    bound: 'memory',
    setup(ctx) {
      const s = ctx.rand([B, L]);
      return { fwd: { run: () => ctx.addon.maskFromScores(s, keep), reads: [s] } };
    },
  },
  {
    op: 'restoreIndex',
    model: v.label,
    shape: `int32 idsRestore ${dims([B, L])}, keep ${keep}`,
    bound: 'memory',
    setup(ctx) {
      const rows = new Int32Array(B * L);
      for (let b = 0; b < B; b++) rows.set(ctx.permutation(L), b * L);
      const r = ctx.int32(rows, [B, L]);
      return { fwd: { run: () => ctx.addon.restoreIndex(r, keep, false), reads: [r] } };
    },
  },
  encoderGather,
  {
    op: 'assembleTokens',
    model: v.label,
    shape: `decoder input: ${keep} encoded + mask tokens → ${dims([B, L, D])}, index int32 ${dims([B, L])}`,
    bound: 'memory',
    setup(ctx) {
      // MAE's decoder input: the kept tokens back in place, the mask token elsewhere (index −1)
      const idx = new Int32Array(B * L);
      for (let b = 0; b < B; b++) {
        const perm = ctx.permutation(L);
        for (let j = 0; j < L; j++) idx[b * L + perm[j]!] = j < keep ? j : -1;
      }
      const x = ctx.rand([B, keep, D]);
      const tok = ctx.rand([1, D]);
      const index = ctx.int32(idx, [B, L]);
      const g = ctx.rand([B, L, D]);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.assembleTokens(x, index, tok), reads: [x, index, tok] },
        // dx gathers the kept rows of g; the mask token's gradient sums the rest: all of g is read
        bwd: { run: () => n.assembleTokensBackward(g, index, keep, 1, true, true), reads: [g, index] },
      };
    },
  },
  {
    op: 'patchify',
    model: v.label,
    shape: `images ${dims([B, v.C, v.image, v.image])} → ${dims([B, L, v.P])}`,
    bound: 'memory',
    setup(ctx) {
      const img = ctx.rand([B, v.C, v.image, v.image]);
      const p = ctx.rand([B, L, v.P]);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.patchify(img, v.patch), reads: [img] },
        bwd: { run: () => n.unpatchify(p, v.patch, v.C, v.image, v.image), reads: [p] },
      };
    },
  },
  {
    op: 'unpatchify',
    model: v.label,
    shape: `patches ${dims([B, L, v.P])} → ${dims([B, v.C, v.image, v.image])}`,
    bound: 'memory',
    setup(ctx) {
      const p = ctx.rand([B, L, v.P]);
      const img = ctx.rand([B, v.C, v.image, v.image]);
      const n = ctx.addon;
      return {
        fwd: { run: () => n.unpatchify(p, v.patch, v.C, v.image, v.image), reads: [p] },
        bwd: { run: () => n.patchify(img, v.patch), reads: [img] },
      };
    },
  },
  {
    op: 'tokenMean',
    model: v.label,
    shape: `x ${dims([B, L, D])} → ${dims([B, D])} (pooled features)`,
    bound: 'memory',
    setup(ctx) {
      const x = ctx.rand([B, L, D]);
      const g = ctx.rand([B, D]);
      const n = ctx.addon;
      return { fwd: { run: () => n.tokenMean(x), reads: [x] }, bwd: { run: () => n.tokenMeanBackward(g, L), reads: [g] } };
    },
  },
];
