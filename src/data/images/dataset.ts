/**
 * In-memory labelled image sets (uint8, [N, C, H, W]) and the IDX loaders
 * that build them, Fashion-MNIST first.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ClozeError, expected } from '../../errors.js';
import { Rng } from '../../rng.js';
import { checkInt } from '../../validate.js';
import { readIdx } from './idx.js';

export interface ImageSet {
  /** [N, C, H, W] row-major. */
  images: Uint8Array;
  /** [N] class ids in [0, classes.length). */
  labels: Int32Array;
  n: number;
  channels: number;
  height: number;
  width: number;
  /** Class names, indexed by class id. */
  classes: string[];
  /** Where the set came from, for logs. */
  source: string;
}

export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/**
 * Pairs an IDX image file ([N, H, W], one channel) with an IDX label file ([N]).
 * Without `classes`, classes are named '0' … 'K−1' for the largest label K−1.
 */
export function loadIdxPair(imagesPath: string, labelsPath: string, classes?: readonly string[]): ImageSet {
  const img = readIdx(imagesPath);
  if (img.dims.length !== 3) {
    throw new ClozeError('E_SHAPE', `${imagesPath}: Expected a rank-3 IDX file [N, H, W] of images but received dims [${img.dims.join(', ')}]`);
  }
  const lab = readIdx(labelsPath);
  if (lab.dims.length !== 1) {
    throw new ClozeError('E_SHAPE', `${labelsPath}: Expected a rank-1 IDX file [N] of labels but received dims [${lab.dims.join(', ')}]`);
  }
  const [n, height, width] = img.dims as [number, number, number];
  if (lab.dims[0] !== n) {
    throw new ClozeError(
      'E_SHAPE',
      `${imagesPath} and ${labelsPath}: Expected as many labels as images (${n}) but received ${lab.dims[0]} labels`,
    );
  }
  const labels = Int32Array.from(lab.data);
  let names: string[];
  if (classes) {
    if (!Array.isArray(classes) || classes.length === 0 || classes.some((c) => typeof c !== 'string')) {
      throw expected('a non-empty array of class names', 'classes', classes);
    }
    names = [...classes];
    const bad = labels.findIndex((l) => l >= names.length);
    if (bad >= 0) {
      throw new ClozeError(
        'E_INDEX',
        `${labelsPath}: Expected labels in [0, ${names.length}) for ${names.length} classes but received ${labels[bad]} at position ${bad}`,
      );
    }
  } else {
    const k = labels.reduce((m, l) => Math.max(m, l + 1), 0);
    names = Array.from({ length: k }, (_, i) => String(i));
  }
  return { images: img.data, labels, n, channels: 1, height, width, classes: names, source: imagesPath };
}

function idxFile(dir: string, stem: string): string {
  for (const name of [`${stem}.gz`, stem]) {
    const p = join(dir, name);
    if (existsSync(p)) return p;
  }
  throw new ClozeError('E_IO', `${join(dir, stem)}.gz: Expected a Fashion-MNIST IDX file (gzipped or not) but received no such file`);
}

/** Fashion-MNIST from Debian's dataset-fashion-mnist package (or any directory with the same four files). */
export function loadFashionMnist(dir: string = FASHION_MNIST_DIR, split: 'train' | 't10k' | 'test' = 'train'): ImageSet {
  if (split !== 'train' && split !== 't10k' && split !== 'test') throw expected("'train', 't10k' or 'test'", 'split', split);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ClozeError(
      'E_IO',
      `${dir}: Expected a Fashion-MNIST directory but received none; install it with \`apt-get install dataset-fashion-mnist\` ` +
        `or pass the directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`,
    );
  }
  const stem = split === 'train' ? 'train' : 't10k';
  const set = loadIdxPair(idxFile(dir, `${stem}-images-idx3-ubyte`), idxFile(dir, `${stem}-labels-idx1-ubyte`), FASHION_MNIST_CLASSES);
  return set;
}

/**
 * A class-stratified, seeded subset of `count` images: each class gets
 * floor(count · n_c / n) images, the remainder going to the classes with the
 * largest fractional shares (ties to the lower class id); within a class the
 * images are a seeded random draw. The subset keeps the source order.
 */
export function subset(set: ImageSet, count: number, seed: number): ImageSet {
  return pick(set, stratifiedIndices(set, count, seed), `subset ${count}, seed ${seed}`);
}

/** The indices, ascending, of `subset(set, count, seed)`: a class-stratified seeded draw. */
export function stratifiedIndices(set: ImageSet, count: number, seed: number): number[] {
  checkInt(count, 'count', 1, set.n);
  checkInt(seed, 'seed', 0, 2 ** 53);
  const k = set.classes.length;
  const byClass: number[][] = Array.from({ length: k }, () => []);
  for (let i = 0; i < set.n; i++) byClass[set.labels[i]!]!.push(i);
  const shares = byClass.map((ids) => (count * ids.length) / set.n);
  const quota = shares.map(Math.floor);
  let left = count - quota.reduce((a, b) => a + b, 0);
  const order = shares.map((s, c) => ({ frac: s - Math.floor(s), c })).sort((a, b) => b.frac - a.frac || a.c - b.c);
  for (const { c } of order) {
    if (left === 0) break;
    if (quota[c]! < byClass[c]!.length) {
      quota[c]!++;
      left--;
    }
  }
  const rng = new Rng(seed);
  const chosen: number[] = [];
  byClass.forEach((ids, c) => {
    for (const i of rng.shuffle([...ids]).slice(0, quota[c])) chosen.push(i);
  });
  return chosen.sort((a, b) => a - b);
}

/** The images at `indices` (in that order), as a set of their own; `note` is added to the source. */
export function pick(set: ImageSet, indices: number[], note: string): ImageSet {
  const px = set.channels * set.height * set.width;
  const images = new Uint8Array(indices.length * px);
  const labels = new Int32Array(indices.length);
  indices.forEach((src, dst) => {
    images.set(set.images.subarray(src * px, (src + 1) * px), dst * px);
    labels[dst] = set.labels[src]!;
  });
  return { ...set, images, labels, n: indices.length, classes: [...set.classes], source: `${set.source} (${note})` };
}

/**
 * A validation split held out of a training set: `count` images drawn class-stratified with `seed` (as
 * `subset` draws them), and the rest. The two are disjoint and together the whole set; the rest keeps the source order.
 */
export function holdOut(set: ImageSet, count: number, seed: number): { held: ImageSet; rest: ImageSet; heldIndices: number[]; restIndices: number[] } {
  checkInt(count, 'validation images', 1, set.n - 1);
  const heldIndices = stratifiedIndices(set, count, seed);
  const isHeld = new Uint8Array(set.n);
  for (const i of heldIndices) isHeld[i] = 1;
  const restIndices: number[] = [];
  for (let i = 0; i < set.n; i++) if (!isHeld[i]) restIndices.push(i);
  return {
    held: pick(set, heldIndices, `validation ${count}, seed ${seed}`),
    rest: pick(set, restIndices, `without validation ${count}, seed ${seed}`),
    heldIndices,
    restIndices,
  };
}

export interface ChannelStats {
  /** Per-channel mean in [0, 1] units. */
  mean: number[];
  /** Per-channel population standard deviation in [0, 1] units. */
  std: number[];
}

/** Per-channel mean and std of the whole set, from exact per-channel histograms (so float64 and order-free). */
export function channelStats(set: ImageSet): ChannelStats {
  const { channels: C, height: H, width: W, n } = set;
  const plane = H * W;
  const hist = Array.from({ length: C }, () => new Float64Array(256));
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < C; c++) {
      const h = hist[c]!;
      const base = (i * C + c) * plane;
      for (let p = 0; p < plane; p++) h[set.images[base + p]!]!++;
    }
  }
  const mean: number[] = [];
  const std: number[] = [];
  for (const h of hist) {
    let count = 0;
    let sum = 0;
    for (let v = 0; v < 256; v++) {
      count += h[v]!;
      sum += v * h[v]!;
    }
    const m = count > 0 ? sum / count : 0;
    let ss = 0;
    for (let v = 0; v < 256; v++) ss += h[v]! * (v - m) * (v - m);
    mean.push(m / 255);
    std.push(count > 0 ? Math.sqrt(ss / count) / 255 : 0);
  }
  return { mean, std };
}
