/** Zero-pads every image of a set to size×size, centred (Fashion-MNIST's 28×28 → 32×32 for SparK's convnets). */
import { ClozeError } from '../../errors.js';
import type { ImageSet } from './dataset.js';

export function padImages(set: ImageSet, size: number): ImageSet {
  if (set.height === size && set.width === size) return set;
  if (set.height > size || set.width > size) {
    throw new ClozeError('E_SHAPE', `${set.source}: Expected images of at most ${size}×${size} to pad but received ${set.height}×${set.width}`);
  }
  const top = Math.floor((size - set.height) / 2);
  const left = Math.floor((size - set.width) / 2);
  const out = new Uint8Array(set.n * set.channels * size * size);
  for (let i = 0; i < set.n * set.channels; i++) {
    for (let y = 0; y < set.height; y++) {
      const src = (i * set.height + y) * set.width;
      out.set(set.images.subarray(src, src + set.width), (i * size + top + y) * size + left);
    }
  }
  return { ...set, images: out, height: size, width: size };
}
