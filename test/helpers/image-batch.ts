/** Random image sets and the float64 reference of imageBatch, for the image data and image_aug tests. */
import { Rng } from '../../src/index.js';
import type { ImageSet } from '../../src/data/images/index.js';

export const bytesOf = (n: number, seed: number): Uint8Array => {
  const rng = new Rng(seed);
  return Uint8Array.from({ length: n }, () => rng.int(256));
};

/** A small set with random pixels and labels 0 … classes−1 cycling. */
export function randomSet(n: number, C: number, H: number, W: number, classes: number, seed: number): ImageSet {
  return {
    images: bytesOf(n * C * H * W, seed), labels: Int32Array.from({ length: n }, (_, i) => (i * 7) % classes),
    n, channels: C, height: H, width: W, classes: Array.from({ length: classes }, (_, i) => `c${i}`), source: 'random',
  };
}

/**
 * Plain float64 reference of imageBatch: half-pixel bilinear sampling of the box,
 * clamped to the image, output flip, then (v/255 − mean) / std.
 */
export function imageBatchRef(
  set: ImageSet, indices: number[], boxes: number[][], flip: number[], mean: number[], std: number[], OH: number, OW: number,
): Float64Array {
  const { channels: C, height: H, width: W } = set;
  const out = new Float64Array(indices.length * C * OH * OW);
  const clamp = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  indices.forEach((n, b) => {
    const [y0, x0, h, w] = boxes[b]!;
    for (let c = 0; c < C; c++) {
      const px = (y: number, x: number) => set.images[((n * C + c) * H + y) * W + x]!;
      for (let i = 0; i < OH; i++)
        for (let j = 0; j < OW; j++) {
          const jj = flip[b] ? OW - 1 - j : j;
          const sy = clamp(y0! + ((i + 0.5) * h!) / OH - 0.5, H - 1);
          const sx = clamp(x0! + ((jj + 0.5) * w!) / OW - 0.5, W - 1);
          const ya = Math.floor(sy), xa = Math.floor(sx);
          const yb = Math.min(ya + 1, H - 1), xb = Math.min(xa + 1, W - 1);
          const ly = sy - ya, lx = sx - xa;
          const v = (1 - ly) * ((1 - lx) * px(ya, xa) + lx * px(ya, xb)) + ly * ((1 - lx) * px(yb, xa) + lx * px(yb, xb));
          out[((b * C + c) * OH + i) * OW + j] = (v / 255 - mean[c]!) / std[c]!;
        }
    }
  });
  return out;
}
