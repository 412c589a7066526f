/**
 * The MIM data step: a batch of 128 random-resized crops (bilinear) with
 * flips, from a uint8 set of 28×28 Fashion-MNIST-sized images, normalised to
 * floats. GB/s counts the source pixels of the crops (at most one image each)
 * and the output.
 */
import { vitShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const v = vitShape();
const SET = 20000;  // the comparison suite's pre-training subset

export const cases: OpCase[] = [
  {
    op: 'imageBatch',
    model: v.label,
    shape: `uint8 images ${dims([SET, v.C, v.image, v.image])} → ${dims([v.B, v.C, v.image, v.image])}, crops of 20–100% area`,
    bound: 'memory',
    setup(ctx) {
      const { B, C, image: S } = v;
      const images = ctx.uint8(Uint8Array.from({ length: SET * C * S * S }, (_, i) => (i * 2654435761) >>> 24), [SET, C, S, S]);
      const indices = ctx.ints([B], 0, SET);
      const box = new Float32Array(B * 4);
      const flipBits = new Uint8Array(B);
      let srcPixels = 0;
      for (let b = 0; b < B; b++) {
        // side from √(area) for an area in [0.2, 1]; a random corner inside the image
        const side = Math.max(1, Math.round(S * Math.sqrt(0.2 + 0.8 * ((b * 0.618) % 1))));
        const y0 = Math.floor(((b * 0.381) % 1) * (S - side + 1));
        const x0 = Math.floor(((b * 0.727) % 1) * (S - side + 1));
        box.set([y0, x0, side, side], 4 * b);
        flipBits[b] = b & 1;
        srcPixels += side * side * C;
      }
      // boxes, mean and std take the output's float dtype
      const boxes = ctx.floats(box, [B, 4]);
      const flip = ctx.uint8(flipBits, [B]);
      const mean = ctx.full([C], 0.2860);
      const std = ctx.full([C], 0.3530);
      const out = B * C * S * S * (ctx.dtype === 'float32' ? 4 : 2);
      return {
        fwd: {
          run: () => ctx.addon.imageBatch(images, indices, boxes, flip, mean, std, S, S),
          bytes: srcPixels + indices.nbytes + boxes.nbytes + flip.nbytes + out,
        },
      };
    },
  },
];
