/** Image data for masked image modeling: IDX and folder loaders, a run's train/test pair, seeded augmentation and batching (its fused kernel is ops/image_aug.ts). */
export { readIdx, type IdxArray } from './idx.js';
export {
  loadIdxPair, loadFashionMnist, subset, channelStats, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR,
  type ImageSet, type ChannelStats,
} from './dataset.js';
export { loadImageFolder, type ImageFolderOptions } from './folder.js';
export {
  randomResizedCropBox, randomResizedCropParams, ImageBatcher,
  type CropBox, type UniformSource, type ImageBatcherOptions, type ImageBatch,
} from './augment.js';
export { padImages } from './pad.js';
export { openImageData, limit, type ImageData } from './open.js';
