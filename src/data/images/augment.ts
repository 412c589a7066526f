/**
 * Seeded augmentation and batching for masked image modeling. Every random
 * choice of micro-batch k comes from generators seeded by (seed, k) and
 * (seed, epoch), never from state carried between batches, so a run resumed
 * at any k draws exactly the batches an uninterrupted run would.
 */
import { ClozeError, expected } from '../../errors.js';
import { native } from '../../native/loader.js';
import type { NativeTensor } from '../../native/types.js';
import { Rng } from '../../rng.js';
import { fromTypedArray, Tensor } from '../../tensor.js';
import { imageBatch, MAX_OUT_SIDE } from '../../ops/image_aug.js';
import { checkInt } from '../../validate.js';
import { channelStats, type ImageSet } from './dataset.js';

/** [y0, x0, h, w] in source pixels. */
export type CropBox = [number, number, number, number];

/** The draws randomResizedCropBox needs; an Rng has them. */
export type UniformSource = Pick<Rng, 'uniform' | 'int'>;

// Python's round(): halves go to the even neighbour. torchvision rounds crop sides with it.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkRange(v: unknown, name: string): asserts v is [number, number] {
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && x > 0) || v[0] > v[1]) {
    throw expected('[lo, hi] with 0 < lo ≤ hi', name, v);
  }
}

/**
 * torchvision's RandomResizedCrop.get_params, also saying whether all 10
 * attempts failed and the centre-crop fallback was taken.
 */
export function randomResizedCropParams(
  rng: UniformSource, H: number, W: number, scale: [number, number] = [0.2, 1.0], ratio: [number, number] = [3 / 4, 4 / 3],
): { box: CropBox; fallback: boolean } {
  checkInt(H, 'H', 1);
  checkInt(W, 'W', 1);
  checkRange(scale, 'scale');
  checkRange(ratio, 'ratio');
  const area = H * W;
  const logLo = Math.log(ratio[0]);
  const logHi = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * (scale[0] + (scale[1] - scale[0]) * rng.uniform());
    const aspect = Math.exp(logLo + (logHi - logLo) * rng.uniform());
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && w <= W && h > 0 && h <= H) {
      const y0 = rng.int(H - h + 1);
      const x0 = rng.int(W - w + 1);
      return { box: [y0, x0, h, w], fallback: false };
    }
  }
  const inRatio = W / H;
  let h = H;
  let w = W;
  if (inRatio < ratio[0]) h = roundHalfEven(W / ratio[0]);
  else if (inRatio > ratio[1]) w = roundHalfEven(H * ratio[1]);
  return { box: [Math.floor((H - h) / 2), Math.floor((W - w) / 2), h, w], fallback: true };
}

/** torchvision's RandomResizedCrop.get_params: integer [y0, x0, h, w] inside an H×W image. */
export function randomResizedCropBox(
  rng: UniformSource, H: number, W: number, scale: [number, number] = [0.2, 1.0], ratio: [number, number] = [3 / 4, 4 / 3],
): CropBox {
  return randomResizedCropParams(rng, H, W, scale, ratio).box;
}

export interface ImageBatcherOptions {
  batchSize: number;
  seed: number;
  /** RandomResizedCrop (scale, ratio) and a horizontal flip with p = 0.5. */
  augment: boolean;
  scale?: [number, number];
  ratio?: [number, number];
  /** Per-channel normalisation in [0, 1] units; default channelStats(set). */
  mean?: number[];
  std?: number[];
  /** [outH, outW]; default the images' size. */
  outSize?: [number, number];
}

export interface ImageBatch {
  /** float32 [B, C, outH, outW], normalised. */
  images: Tensor;
  /** int32 [B]. */
  labels: Tensor;
  /** Positions in the set of the batch's images. */
  indices: Int32Array;
}

// Streams of derived seeds, so permutations and augmentations never share a generator.
const STREAM_PERMUTATION = 0x5045524d;
const STREAM_AUGMENT = 0x41554731;

function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// A 32-bit seed from (seed, stream, counter); Rng folds its seed to 32 bits anyway.
function deriveSeed(seed: number, stream: number, counter: number): number {
  let h = fmix32(stream);
  for (const part of [seed >>> 0, Math.floor(seed / 2 ** 32), counter >>> 0, Math.floor(counter / 2 ** 32)]) {
    h = fmix32((h ^ part) + 0x9e3779b9);
  }
  return h;
}

function checkSet(set: ImageSet): void {
  const ok =
    set !== null && typeof set === 'object' && set.images instanceof Uint8Array && set.labels instanceof Int32Array &&
    [set.n, set.channels, set.height, set.width].every((d) => Number.isInteger(d) && d >= 1) &&
    set.images.length === set.n * set.channels * set.height * set.width && set.labels.length === set.n;
  if (!ok) throw expected('an ImageSet whose images hold n·C·H·W bytes and labels n values', 'set', set);
}

function checkPerChannel(v: unknown, C: number, name: string, positive: boolean): number[] {
  if (!Array.isArray(v) || v.length !== C || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
    throw expected(`${C} finite${positive ? ' positive' : ''} numbers`, name, v);
  }
  return v as number[];
}

/**
 * Serves micro-batch k of an endless, epoch-wise shuffled stream: k belongs to
 * epoch floor(k / perEpoch), each epoch is a seeded permutation of the set (the
 * remainder n mod batchSize is left out of that epoch), and batch k's crops and
 * flips are a pure function of (seed, k). Call dispose() when done.
 */
export class ImageBatcher {
  readonly perEpoch: number;
  readonly batchSize: number;
  readonly outSize: [number, number];
  readonly mean: number[];
  readonly std: number[];
  private readonly set: ImageSet;
  private readonly opts: { seed: number; augment: boolean; scale: [number, number]; ratio: [number, number] };
  // Native handles, not Tensors, so an enclosing scope() cannot dispose them.
  private imagesHandle: NativeTensor | null;
  private readonly meanHandle: NativeTensor;
  private readonly stdHandle: NativeTensor;
  private cachedEpoch = -1;
  private cachedPerm: Int32Array = new Int32Array(0);

  constructor(set: ImageSet, opts: ImageBatcherOptions) {
    checkSet(set);
    if (opts === null || typeof opts !== 'object') throw expected('an options object', 'opts', opts);
    checkInt(opts.batchSize, 'batchSize', 1, set.n);
    checkInt(opts.seed, 'seed', 0, 2 ** 53);
    if (typeof opts.augment !== 'boolean') throw expected('a boolean', 'augment', opts.augment);
    const scale = opts.scale ?? [0.2, 1.0];
    const ratio = opts.ratio ?? [3 / 4, 4 / 3];
    checkRange(scale, 'scale');
    checkRange(ratio, 'ratio');
    const C = set.channels;
    const stats = opts.mean === undefined || opts.std === undefined ? channelStats(set) : null;
    this.mean = [...checkPerChannel(opts.mean ?? stats!.mean, C, 'mean', false)];
    this.std = [...checkPerChannel(opts.std ?? stats!.std, C, 'std', true)];
    const out = opts.outSize ?? [set.height, set.width];
    if (!Array.isArray(out) || out.length !== 2 || !out.every((d) => Number.isInteger(d) && d >= 1 && d <= MAX_OUT_SIDE)) {
      throw expected(`[outH, outW] of integers in [1, ${MAX_OUT_SIDE}]`, 'outSize', out);
    }
    this.outSize = [out[0], out[1]];
    this.set = set;
    this.batchSize = opts.batchSize;
    this.perEpoch = Math.floor(set.n / opts.batchSize);
    this.opts = { seed: opts.seed, augment: opts.augment, scale: [scale[0], scale[1]], ratio: [ratio[0], ratio[1]] };
    const nat = native();
    this.imagesHandle = nat.fromTypedArray(set.images, [set.n, C, set.height, set.width]);
    this.meanHandle = nat.fromTypedArray(Float32Array.from(this.mean), [C]);
    this.stdHandle = nat.fromTypedArray(Float32Array.from(this.std), [C]);
  }

  /** The epoch's order of the set: a seeded Fisher–Yates permutation of 0 … n−1. */
  permutation(epoch: number): Int32Array {
    checkInt(epoch, 'epoch', 0);
    return this.order(epoch).slice();
  }

  private order(epoch: number): Int32Array {
    if (epoch !== this.cachedEpoch) {
      const rng = new Rng(deriveSeed(this.opts.seed, STREAM_PERMUTATION, epoch));
      const p = new Int32Array(this.set.n);
      for (let i = 0; i < p.length; i++) p[i] = i;
      for (let i = p.length - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const t = p[i]!;
        p[i] = p[j]!;
        p[j] = t;
      }
      this.cachedEpoch = epoch;
      this.cachedPerm = p;
    }
    return this.cachedPerm;
  }

  /**
   * Micro-batch k (k ≥ 0) of the training stream. With `rows` (data parallel: this rank's `rows` images after
   * `before` on lower ranks), only those images of the global batch are made, with the crops and flips the whole
   * batch draws for them: the ranks' slices put together are the single process's batch.
   */
  batch(k: number, rows?: { before: number; rows: number }): ImageBatch {
    checkInt(k, 'k', 0);
    if (rows !== undefined) {
      checkInt(rows.before, 'rows.before', 0, this.batchSize - 1);
      checkInt(rows.rows, 'rows.rows', 1, this.batchSize - rows.before);
    }
    const B = this.batchSize;
    const epoch = Math.floor(k / this.perEpoch);
    const start = (k - epoch * this.perEpoch) * B;
    const indices = this.order(epoch).slice(start, start + B);
    const boxes = new Float32Array(B * 4);
    const flip = new Uint8Array(B);
    const { height: H, width: W } = this.set;
    if (this.opts.augment) {
      const rng = new Rng(deriveSeed(this.opts.seed, STREAM_AUGMENT, k));
      for (let b = 0; b < B; b++) {
        boxes.set(randomResizedCropBox(rng, H, W, this.opts.scale, this.opts.ratio), b * 4);
        flip[b] = rng.uniform() < 0.5 ? 1 : 0;
      }
    } else {
      for (let b = 0; b < B; b++) boxes.set([0, 0, H, W], b * 4);
    }
    if (!rows) return this.build(indices, boxes, flip);
    const [lo, hi] = [rows.before, rows.before + rows.rows];
    return this.build(indices.slice(lo, hi), boxes.slice(4 * lo, 4 * hi), flip.slice(lo, hi));
  }

  /** The whole set in order, unaugmented, in batches of batchSize; the last batch may be smaller. */
  evalBatches(batchSize: number): Iterable<ImageBatch> {
    checkInt(batchSize, 'batchSize', 1);
    const n = this.set.n;
    const { height: H, width: W } = this.set;
    const self = this;
    return {
      *[Symbol.iterator](): Iterator<ImageBatch> {
        for (let start = 0; start < n; start += batchSize) {
          const B = Math.min(batchSize, n - start);
          const indices = new Int32Array(B);
          const boxes = new Float32Array(B * 4);
          for (let b = 0; b < B; b++) {
            indices[b] = start + b;
            boxes.set([0, 0, H, W], b * 4);
          }
          yield self.build(indices, boxes, new Uint8Array(B));
        }
      },
    };
  }

  /** Releases the native view of the images. */
  dispose(): void {
    this.imagesHandle?.dispose();
    this.imagesHandle = null;
    this.meanHandle.dispose();
    this.stdHandle.dispose();
  }

  private build(indices: Int32Array, boxes: Float32Array, flip: Uint8Array): ImageBatch {
    if (!this.imagesHandle) throw new ClozeError('E_STATE', 'ImageBatcher: used after dispose()');
    const B = indices.length;
    // The call's own Tensors: views of the held handles (disposing a view frees only the view), and this batch's arrays.
    const view = (h: NativeTensor): Tensor => new Tensor(h.reshape(h.shape));
    const args = [
      view(this.imagesHandle), fromTypedArray(indices, [B]), fromTypedArray(boxes, [B, 4]), fromTypedArray(flip, [B]),
      view(this.meanHandle), view(this.stdHandle),
    ] as const;
    try {
      const images = imageBatch(...args, this.outSize[0], this.outSize[1]);
      const labels = new Int32Array(B);
      for (let b = 0; b < B; b++) labels[b] = this.set.labels[indices[b]!]!;
      return { images, labels: fromTypedArray(labels, [B]), indices: indices.slice() };
    } finally {
      for (const t of args) t.dispose();
    }
  }
}
