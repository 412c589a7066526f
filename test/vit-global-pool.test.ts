/**
 * MAE's fine-tuning feature (global pool, issue 17): the mean over patch tokens, CLS left out, of the last block's
 * output before the final norm, against a naive loop over the blocks; and fine-tuning with fc_norm reads it, so the
 * final norm takes no part (its weights get no gradient and do not move).
 */
import { describe, expect, it } from 'vitest';
import { scope, tensor } from '../src/index.js';
import { VitEncoder } from '../src/models/vit/encoder.js';
import { vitPreset } from '../src/models/vit/config.js';
import { Rng } from '../src/rng.js';

describe('VitEncoder.globalPoolFeatures', () => {
  for (const cls of [false, true]) {
    it(`is the mean of the pre-norm patch tokens${cls ? ', the CLS token left out' : ''} (naive loop over the blocks)`, () => {
      const c = { ...vitPreset('vit-micro-fmnist').config, cls };
      const e = new VitEncoder(c, { seed: 5 });
      try {
        scope(() => {
          const rng = new Rng(9);
          const B = 3;
          const images = tensor(Array.from({ length: B * 28 * 28 }, () => rng.normal()), [B, 1, 28, 28]);
          const got = Array.from(e.globalPoolFeatures(images).toArray());
          let x = e.withCls(e.withPos(e.embed(images).x));
          for (const blk of e.blocks.items) x = blk.forward(x).out;
          const h = x.toArray();
          const [, L1, D] = x.shape as [number, number, number];
          const first = cls ? 1 : 0;
          const want: number[] = [];
          for (let b = 0; b < B; b++) {
            for (let d = 0; d < D; d++) {
              let s = 0;
              for (let j = first; j < L1; j++) s += h[(b * L1 + j) * D + d]!;
              want.push(s / (L1 - first));
            }
          }
          expect(got.length).toBe(want.length);
          for (let i = 0; i < want.length; i++) expect(Math.abs(got[i]! - want[i]!)).toBeLessThan(1e-5 * (1 + Math.abs(want[i]!)));
          // Not the final-norm features: those are unit-scale per token, these are not.
          const normed = Array.from(e.features(images).toArray());
          expect(Math.max(...normed.map((v, i) => Math.abs(v - got[i]!)))).toBeGreaterThan(1e-3);
        });
      } finally {
        e.dispose();
      }
    });
  }
});
