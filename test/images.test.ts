/**
 * Image data: IDX reading (raw, gzip, every malformation), Fashion-MNIST,
 * image folders decoded by sharp, torchvision's RandomResizedCrop parameters,
 * and the determinism of ImageBatcher (its kernel, imageBatch, is tested in
 * test/ops/image_aug.test.ts). Fixtures are generated into a temp dir.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { ClozeError, Rng, type Tensor } from '../src/index.js';
import {
  channelStats, FASHION_MNIST_DIR, ImageBatcher, loadFashionMnist, loadIdxPair, loadImageFolder,
  randomResizedCropBox, randomResizedCropParams, readIdx, subset,
} from '../src/data/images/index.js';
import { bytesOf, imageBatchRef, randomSet } from './helpers/image-batch.js';
import { assertClose, tolFor } from './helpers/tolerance.js';

const tmp = mkdtempSync(join(tmpdir(), 'cloze-images-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let fileNo = 0;
function fixture(bytes: Uint8Array, name = `f${fileNo++}.idx`): string {
  const p = join(tmp, name);
  writeFileSync(p, bytes);
  return p;
}

function idxBytes(dims: number[], payload: Uint8Array, type = 0x08): Uint8Array {
  const head = new Uint8Array(4 + 4 * dims.length);
  head[2] = type;
  head[3] = dims.length;
  const view = new DataView(head.buffer);
  dims.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  const out = new Uint8Array(head.length + payload.length);
  out.set(head);
  out.set(payload, head.length);
  return out;
}

/** Catches the ClozeError fn throws, so a test can assert its message. */
function errorOf(fn: () => unknown): ClozeError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ClozeError);
    return e as ClozeError;
  }
  throw new Error('expected an error');
}

async function asyncErrorOf(p: Promise<unknown>): Promise<ClozeError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ClozeError);
    return e as ClozeError;
  }
  throw new Error('expected an error');
}

describe('readIdx', () => {
  const dims = [3, 2, 5];
  const payload = bytesOf(30, 1);

  it('round-trips a raw file', () => {
    const r = readIdx(fixture(idxBytes(dims, payload)));
    expect(r.dims).toEqual(dims);
    expect(r.dtype).toBe('uint8');
    expect([...r.data]).toEqual([...payload]);
  });

  it('detects gzip by its magic, not the extension', () => {
    const gz = readIdx(fixture(gzipSync(idxBytes(dims, payload)), 'gzipped.idx'));
    expect(gz.dims).toEqual(dims);
    expect([...gz.data]).toEqual([...payload]);
    const raw = readIdx(fixture(idxBytes([4], Uint8Array.of(9, 8, 7, 6)), 'not-gzipped.gz'));
    expect(raw.dims).toEqual([4]);
    expect([...raw.data]).toEqual([9, 8, 7, 6]);
  });

  it('reads ranks 1 and 4 and empty payloads', () => {
    expect(readIdx(fixture(idxBytes([2, 1, 3, 2], bytesOf(12, 2)))).dims).toEqual([2, 1, 3, 2]);
    const empty = readIdx(fixture(idxBytes([0, 28, 28], new Uint8Array(0))));
    expect(empty.dims).toEqual([0, 28, 28]);
    expect(empty.data.length).toBe(0);
  });

  const cases: Array<[string, () => Uint8Array, RegExp]> = [
    ['a wrong magic', () => Uint8Array.of(1, 2, 8, 1, 0, 0, 0, 1, 7), /Expected the IDX magic 0x00 0x00 <type> <rank> but received 0x01 0x02 0x08 0x01/],
    ['a float32 type byte', () => idxBytes([2], new Uint8Array(8), 0x0d), /Expected IDX type byte 0x08 \(unsigned byte\) but received 0x0d \(float32\)/],
    ['an unknown type byte', () => idxBytes([2], new Uint8Array(2), 0x42), /received 0x42 \(an unknown type\)/],
    ['rank 0', () => Uint8Array.of(0, 0, 8, 0), /Expected an IDX rank in \[1, 4\] but received 0/],
    ['rank 5', () => idxBytes([1, 1, 1, 1, 1], new Uint8Array(1)), /Expected an IDX rank in \[1, 4\] but received 5/],
    ['a short header', () => Uint8Array.of(0, 0), /Expected an IDX header of at least 4 bytes but received 2/],
    ['a header cut inside the dims', () => Uint8Array.of(0, 0, 8, 3, 0, 0, 0, 2, 0), /Expected 16 header bytes for rank 3 but received 9 \(truncated file\?\)/],
    ['a truncated payload', () => idxBytes(dims, payload).subarray(0, 4 + 12 + 29),
      /Expected 30 bytes of image data for dims \[3, 2, 5\] but received 29 \(truncated file\?\)/],
    ['a truncated label payload', () => idxBytes([10], new Uint8Array(7)), /Expected 10 bytes of label data for dims \[10\] but received 7 \(truncated file\?\)/],
    ['trailing bytes', () => idxBytes(dims, new Uint8Array(33)), /Expected 30 bytes of image data for dims \[3, 2, 5\] but received 33 \(3 trailing bytes\)/],
    ['a gzip stream cut short', () => gzipSync(idxBytes(dims, payload)).subarray(0, 20), /Expected a valid gzip stream but received a corrupt one/],
    ['a gzip stream with a bad checksum', () => {
      const gz = Uint8Array.from(gzipSync(idxBytes(dims, payload)));
      gz[gz.length - 6]! ^= 0xff; // inside the CRC32 trailer
      return gz;
    }, /Expected a valid gzip stream but received a corrupt one/],
  ];
  for (const [what, bytes, message] of cases)
    it(`rejects ${what}, naming the file`, () => {
      const path = fixture(bytes());
      const e = errorOf(() => readIdx(path));
      expect(e.message.startsWith(`${path}: `)).toBe(true);
      expect(e.message).toMatch(message);
    });

  it('names a missing file', () => {
    const path = join(tmp, 'missing.idx');
    const e = errorOf(() => readIdx(path));
    expect(e.code).toBe('E_IO');
    expect(e.message.startsWith(`${path}: `)).toBe(true);
  });
});

describe('loadIdxPair', () => {
  const imgs = bytesOf(4 * 3 * 2, 5);
  const imagesPath = fixture(idxBytes([4, 3, 2], imgs), 'pair-images.idx');

  it('pairs images and labels as a one-channel set', () => {
    const labelsPath = fixture(gzipSync(idxBytes([4], Uint8Array.of(2, 0, 1, 2))), 'pair-labels.idx.gz');
    const set = loadIdxPair(imagesPath, labelsPath);
    expect([set.n, set.channels, set.height, set.width]).toEqual([4, 1, 3, 2]);
    expect([...set.labels]).toEqual([2, 0, 1, 2]);
    expect(set.classes).toEqual(['0', '1', '2']);
    expect([...set.images]).toEqual([...imgs]);
    expect(loadIdxPair(imagesPath, labelsPath, ['a', 'b', 'c', 'd']).classes).toEqual(['a', 'b', 'c', 'd']);
  });

  it('names both files when the counts differ', () => {
    const labelsPath = fixture(idxBytes([5], new Uint8Array(5)), 'five-labels.idx');
    const e = errorOf(() => loadIdxPair(imagesPath, labelsPath));
    expect(e.message).toContain(imagesPath);
    expect(e.message).toContain(labelsPath);
    expect(e.message).toMatch(/Expected as many labels as images \(4\) but received 5 labels/);
  });

  it('rejects labels beyond the class list and files of the wrong rank', () => {
    const labelsPath = fixture(idxBytes([4], Uint8Array.of(0, 1, 3, 1)), 'big-label.idx');
    const e = errorOf(() => loadIdxPair(imagesPath, labelsPath, ['a', 'b', 'c']));
    expect(e.message).toBe(`${labelsPath}: Expected labels in [0, 3) for 3 classes but received 3 at position 2`);
    expect(errorOf(() => loadIdxPair(labelsPath, labelsPath)).message).toMatch(/^.*big-label\.idx: Expected a rank-3 IDX file/);
    expect(errorOf(() => loadIdxPair(imagesPath, imagesPath)).message).toContain(`${imagesPath}: Expected a rank-1 IDX file`);
  });
});

describe('Fashion-MNIST', () => {
  it('says how to install it when the directory is missing', () => {
    const dir = join(tmp, 'no-such-dir');
    const e = errorOf(() => loadFashionMnist(dir, 'train'));
    expect(e.message.startsWith(dir)).toBe(true);
    expect(e.message).toContain('apt-get install dataset-fashion-mnist');
    expect(errorOf(() => loadFashionMnist(dir, 'val' as 'train')).message).toMatch(/for split/);
  });

  const present = existsSync(FASHION_MNIST_DIR);
  it.skipIf(!present)('loads the train split: 60000 × 28 × 28, ten classes, the published statistics', () => {
    const set = loadFashionMnist(FASHION_MNIST_DIR, 'train');
    expect([set.n, set.channels, set.height, set.width]).toEqual([60000, 1, 28, 28]);
    expect(set.classes).toHaveLength(10);
    expect(set.classes[9]).toBe('Ankle boot');
    const counts = new Array<number>(10).fill(0);
    for (const l of set.labels) counts[l]!++;
    expect(counts).toEqual(new Array(10).fill(6000));
    const stats = channelStats(set);
    expect(stats.mean[0]).toBeCloseTo(0.2860, 4);
    expect(stats.std[0]).toBeCloseTo(0.3530, 4);
  });

  it.skipIf(!present)("loads the test split as 't10k' or 'test'", () => {
    const a = loadFashionMnist(FASHION_MNIST_DIR, 't10k');
    const b = loadFashionMnist(undefined, 'test');
    expect(a.n).toBe(10000);
    expect(b.n).toBe(10000);
    expect(a.labels.slice(0, 20)).toEqual(b.labels.slice(0, 20));
  });
});

describe('subset and channelStats', () => {
  const set = randomSet(103, 3, 4, 5, 4, 9); // class 1 has 25 images, the others 26

  it('draws a stratified subset that is seeded and keeps the source order', () => {
    const s = subset(set, 40, 1);
    expect(s.n).toBe(40);
    const counts = [0, 0, 0, 0];
    for (const l of s.labels) counts[l]!++;
    // Shares 10.1, 9.7, 10.1, 10.1: the one left over goes to the largest fraction, class 1.
    expect(counts).toEqual([10, 10, 10, 10]);
    const px = 3 * 4 * 5;
    // Every chosen image is a whole source image with its label, in source order.
    let last = -1;
    for (let i = 0; i < s.n; i++) {
      const img = s.images.subarray(i * px, (i + 1) * px);
      let src = -1;
      for (let j = last + 1; j < set.n && src < 0; j++) {
        if (set.images.subarray(j * px, (j + 1) * px).every((v, k) => v === img[k])) src = j;
      }
      expect(src).toBeGreaterThan(last);
      expect(s.labels[i]).toBe(set.labels[src]);
      last = src;
    }
    expect(subset(set, 40, 1).images).toEqual(s.images);
    expect(subset(set, 40, 2).images).not.toEqual(s.images);
    expect(subset(set, 103, 5).images).toEqual(set.images);
    expect(errorOf(() => subset(set, 104, 1)).message).toMatch(/for count/);
  });

  it('matches a two-pass float64 reference per channel', () => {
    const stats = channelStats(set);
    const plane = 20;
    for (let c = 0; c < 3; c++) {
      const vals: number[] = [];
      for (let i = 0; i < set.n; i++) for (let p = 0; p < plane; p++) vals.push(set.images[(i * 3 + c) * plane + p]! / 255);
      const m = vals.reduce((a, b) => a + b, 0) / vals.length;
      const sd = Math.sqrt(vals.reduce((a, b) => a + (b - m) ** 2, 0) / vals.length);
      expect(stats.mean[c]).toBeCloseTo(m, 12);
      expect(stats.std[c]).toBeCloseTo(sd, 12);
    }
  });
});

describe('loadImageFolder', () => {
  const root = join(tmp, 'folder');
  const solid = (w: number, h: number, r: number, g: number, b: number) =>
    sharp({ create: { width: w, height: h, channels: 3, background: { r, g, b } } });
  const made = (async () => {
    // Sorted by code unit: 'B_upper' < 'a_lower' < 'c_mixed'.
    for (const d of ['a_lower', 'B_upper', 'c_mixed']) mkdirSync(join(root, 'tree', d), { recursive: true });
    await solid(10, 6, 200, 100, 50).png().toFile(join(root, 'tree', 'a_lower', 'one.PNG'));
    await solid(9, 9, 123, 123, 123).png().toFile(join(root, 'tree', 'a_lower', 'two.png'));
    await solid(5, 12, 0, 255, 0).jpeg({ quality: 95 }).toFile(join(root, 'tree', 'B_upper', 'x.JPEG'));
    await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 0.5 } } })
      .png().toFile(join(root, 'tree', 'c_mixed', 'alpha.png'));
    await solid(7, 7, 1, 2, 3).jpeg().toFile(join(root, 'tree', 'c_mixed', 'y.jpg'));
    writeFileSync(join(root, 'tree', 'c_mixed', 'notes.txt'), 'not an image');
    writeFileSync(join(root, 'tree', 'c_mixed', 'image.gif'), 'ignored by extension');
    mkdirSync(join(root, 'bad', 'cls'), { recursive: true });
    await solid(3, 3, 9, 9, 9).png().toFile(join(root, 'bad', 'cls', 'good.png'));
    writeFileSync(join(root, 'bad', 'cls', 'broken.png'), 'this is not a png');
    mkdirSync(join(root, 'noclasses'), { recursive: true });
    writeFileSync(join(root, 'noclasses', 'loose.png'), 'a file, not a class folder');
    mkdirSync(join(root, 'emptyclass', 'a'), { recursive: true });
    mkdirSync(join(root, 'emptyclass', 'b'), { recursive: true });
    await solid(3, 3, 9, 9, 9).png().toFile(join(root, 'emptyclass', 'a', 'p.png'));
  })();

  it('assigns class ids by sorted folder name and stores exact CHW pixels', async () => {
    await made;
    const set = await loadImageFolder(join(root, 'tree'), { size: [8, 6], channels: 3 });
    expect(set.classes).toEqual(['B_upper', 'a_lower', 'c_mixed']);
    expect([set.n, set.channels, set.height, set.width]).toEqual([5, 3, 8, 6]);
    // Files sorted within a class: x.JPEG; one.PNG, two.png; alpha.png, y.jpg.
    expect([...set.labels]).toEqual([0, 1, 1, 2, 2]);
    const plane = 48;
    const image = (i: number, c: number) => [...set.images.subarray((i * 3 + c) * plane, (i * 3 + c + 1) * plane)];
    // A solid PNG stays exact through the resize, one plane per channel.
    expect(image(1, 0)).toEqual(new Array(plane).fill(200));
    expect(image(1, 1)).toEqual(new Array(plane).fill(100));
    expect(image(1, 2)).toEqual(new Array(plane).fill(50));
    expect(image(3, 0)).toEqual(new Array(plane).fill(10)); // alpha dropped
    expect(image(3, 2)).toEqual(new Array(plane).fill(30));
    // JPEG is lossy: within 2 levels of pure green.
    for (const [c, want] of [[0, 0], [1, 255], [2, 0]] as const) for (const v of image(0, c)) expect(Math.abs(v - want)).toBeLessThanOrEqual(2);
  });

  it("converts to grayscale with PIL's 601 luma and accepts a square size", async () => {
    await made;
    const set = await loadImageFolder(join(root, 'tree'), { size: 4, channels: 1 });
    expect([set.channels, set.height, set.width]).toEqual([1, 4, 4]);
    const px = (i: number) => [...set.images.subarray(i * 16, (i + 1) * 16)];
    // (200·19595 + 100·38470 + 50·7471 + 2^15) >> 16 = 124; a gray pixel keeps its level.
    expect(px(1)).toEqual(new Array(16).fill(124));
    expect(px(2)).toEqual(new Array(16).fill(123));
  });

  it('names an undecodable file, a folder without classes and an empty class', async () => {
    await made;
    const broken = join(root, 'bad', 'cls', 'broken.png');
    const e = await asyncErrorOf(loadImageFolder(join(root, 'bad'), { size: 4, channels: 3 }));
    expect(e.message.startsWith(`${broken}: Expected an image sharp can decode`)).toBe(true);
    const none = await asyncErrorOf(loadImageFolder(join(root, 'noclasses'), { size: 4, channels: 3 }));
    expect(none.message).toBe(`${join(root, 'noclasses')}: Expected one subfolder per class but received none`);
    const emptyClass = await asyncErrorOf(loadImageFolder(join(root, 'emptyclass'), { size: 4, channels: 3 }));
    expect(emptyClass.message.startsWith(`${join(root, 'emptyclass', 'b')}: Expected at least one`)).toBe(true);
    const missing = await asyncErrorOf(loadImageFolder(join(root, 'missing'), { size: 4, channels: 3 }));
    expect(missing.message.startsWith(join(root, 'missing'))).toBe(true);
    expect((await asyncErrorOf(loadImageFolder(join(root, 'tree'), { size: 0, channels: 3 }))).message).toMatch(/for size/);
    expect((await asyncErrorOf(loadImageFolder(join(root, 'tree'), { size: 4, channels: 2 as 3 }))).message).toMatch(/for channels/);
  });
});

describe('randomResizedCropBox', () => {
  for (const [H, W] of [[28, 28], [20, 45], [37, 9], [1, 1]])
    it(`stays inside a ${H}×${W} image with an area in the scale range`, () => {
      const rng = new Rng(H * 100 + W);
      const scale: [number, number] = [0.2, 1.0];
      let fallbacks = 0;
      for (let t = 0; t < 2000; t++) {
        const { box, fallback } = randomResizedCropParams(rng, H, W, scale);
        const [y0, x0, h, w] = box;
        expect(box.every(Number.isInteger)).toBe(true);
        expect(y0 >= 0 && x0 >= 0 && h >= 1 && w >= 1 && y0 + h <= H && x0 + w <= W).toBe(true);
        if (fallback) {
          fallbacks++;
          continue;
        }
        // h and w are rounded from sides whose product lies in the scale range.
        const slack = 0.5 * (h + w + 1) + 0.25;
        expect(h * w).toBeGreaterThanOrEqual(scale[0] * H * W - slack);
        expect(h * w).toBeLessThanOrEqual(scale[1] * H * W + slack);
      }
      expect(fallbacks).toBeLessThan(2000);
    });

  it('falls back to torchvision’s centre crop after ten failed attempts', () => {
    const rng = new Rng(1);
    expect(randomResizedCropParams(rng, 10, 40, [1, 1], [1, 1])).toEqual({ box: [0, 15, 10, 10], fallback: true });
    expect(randomResizedCropParams(rng, 40, 10, [1, 1], [1, 1])).toEqual({ box: [15, 0, 10, 10], fallback: true });
    expect(randomResizedCropParams(rng, 30, 31, [2, 3], [0.75, 4 / 3])).toEqual({ box: [0, 0, 30, 31], fallback: true });
    expect(randomResizedCropParams(rng, 12, 12, [1, 1], [1, 1])).toEqual({ box: [0, 0, 12, 12], fallback: false });
  });

  it('follows get_params draw by draw, rounding halves to even as Python does', () => {
    // Scripted draws: area fraction, log-ratio position, then randint for y0 and x0.
    const script = (uniforms: number[], ints: number[]) => ({
      uniform: () => uniforms.shift()!,
      int: (n: number) => Math.min(ints.shift()!, n - 1),
    });
    // 100·100·(0.2 + 0.8·0.5) = 6000, ratio exp(0) = 1: sides round(77.46) = 77; y0, x0 from randint(24).
    expect(randomResizedCropBox(script([0.5, 0.5], [5, 99]), 100, 100)).toEqual([5, 23, 77, 77]);
    // 16·25/64 = 6.25 → sides √6.25 = 2.5, which Python rounds to 2 (Math.round would give 3).
    expect(randomResizedCropBox(script([0, 0], [0, 0]), 4, 4, [25 / 64, 25 / 64], [1, 1])).toEqual([0, 0, 2, 2]);
    // First attempt too wide for 10×10 (ratio 4/3 at area 100 → w = 12); the second, area 20 at ratio 3/4,
    // gives w = round(√15) = 4, h = round(√26.7) = 5.
    expect(randomResizedCropBox(script([1, 1, 0, 0], [1, 2]), 10, 10, [0.2, 1], [0.75, 4 / 3])).toEqual([1, 2, 5, 4]);
  });

  it('rejects bad ranges, naming them', () => {
    const rng = new Rng(0);
    expect(() => randomResizedCropBox(rng, 0, 5)).toThrow(/for H/);
    expect(() => randomResizedCropBox(rng, 5, 5, [0.9, 0.1])).toThrow(/for scale/);
    expect(() => randomResizedCropBox(rng, 5, 5, [0.2, 1], [0, 1])).toThrow(/for ratio/);
  });
});

describe('ImageBatcher', () => {
  const set = randomSet(23, 3, 6, 5, 4, 21); // 23 = 5 batches of 4, and 3 left out per epoch
  const opts = { batchSize: 4, seed: 7, augment: true };
  const read = (b: { images: Tensor; labels: Tensor; indices: Int32Array }) => ({
    images: [...b.images.toArray()], labels: [...b.labels.toArray()], indices: [...b.indices],
  });

  it('makes batch k a pure function of (seed, k), so a resumed run matches', () => {
    const a = new ImageBatcher(set, opts);
    const b = new ImageBatcher(set, opts);
    expect(a.perEpoch).toBe(5);
    const first = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((k) => read(a.batch(k)));
    // b starts at k = 7, as a run resumed from a checkpoint would, and goes back too.
    for (const k of [7, 12, 0, 5]) expect(read(b.batch(k))).toEqual(first[k]);
    const c = new ImageBatcher(set, { ...opts, seed: 8 });
    expect(read(c.batch(7)).images).not.toEqual(first[7]!.images);
    a.dispose();
    b.dispose();
    c.dispose();
  });

  it('shuffles each epoch differently, each index at most once per epoch, every index once when n divides', () => {
    const a = new ImageBatcher(set, opts);
    const epochs = [0, 1, 2].map((e) => [0, 1, 2, 3, 4].flatMap((j) => [...a.batch(e * 5 + j).indices]));
    for (const ids of epochs) {
      expect(new Set(ids).size).toBe(20);
      expect(ids.every((i) => i >= 0 && i < 23)).toBe(true);
    }
    epochs.forEach((ids, e) => expect([...a.permutation(e).subarray(0, 20)]).toEqual(ids));
    expect(epochs[0]).not.toEqual(epochs[1]);
    expect(epochs[1]).not.toEqual(epochs[2]);
    const exact = new ImageBatcher(randomSet(20, 1, 3, 3, 2, 2), { batchSize: 5, seed: 3, augment: false });
    for (const e of [0, 4]) {
      const ids = [0, 1, 2, 3].flatMap((j) => [...exact.batch(e * 4 + j).indices]).sort((x, y) => x - y);
      expect(ids).toEqual(Array.from({ length: 20 }, (_, i) => i));
    }
    a.dispose();
    exact.dispose();
  });

  it('without augmentation serves the normalised images and their labels', () => {
    const mean = [0.5, 0.4, 0.3];
    const std = [0.2, 0.25, 0.3];
    const a = new ImageBatcher(set, { ...opts, augment: false, mean, std });
    const got = a.batch(3);
    const idx = [...got.indices];
    expect([...got.labels.toArray()]).toEqual(idx.map((i) => set.labels[i]));
    const ref = imageBatchRef(set, idx, idx.map(() => [0, 0, 6, 5]), idx.map(() => 0), mean, std, 6, 5);
    assertClose(got.images.toArray(), ref, tolFor('float32'));
    a.dispose();
  });

  it('augments with crops and flips: at full scale and the image ratio, each image is plain or mirrored', () => {
    const plainB = new ImageBatcher(set, { ...opts, augment: false });
    const aug = new ImageBatcher(set, { ...opts, scale: [1, 1], ratio: [5 / 6, 5 / 6] });
    expect(aug.mean).toEqual(channelStats(set).mean);
    let flips = 0;
    for (let k = 0; k < 10; k++) {
      const p = plainB.batch(k).images.toArray();
      const g = aug.batch(k).images.toArray();
      for (let b = 0; b < 4; b++) {
        let same = true;
        let mirrored = true;
        for (let row = 0; row < 3 * 6; row++)
          for (let j = 0; j < 5; j++) {
            const base = b * 90 + row * 5;
            if (g[base + j] !== p[base + j]) same = false;
            if (g[base + j] !== p[base + 4 - j]) mirrored = false;
          }
        expect(same || mirrored).toBe(true);
        if (!same) flips++;
      }
    }
    expect(flips).toBeGreaterThan(5);
    expect(flips).toBeLessThan(35);
    const crops = new ImageBatcher(set, { ...opts, outSize: [9, 8] });
    const out = crops.batch(2).images;
    expect(out.shape).toEqual([4, 3, 9, 8]);
    expect([...out.toArray()].every(Number.isFinite)).toBe(true);
    plainB.dispose();
    aug.dispose();
    crops.dispose();
  });

  it('evaluates the whole set in order, the last batch partial', () => {
    const a = new ImageBatcher(set, { ...opts, mean: [0, 0, 0], std: [1, 1, 1], outSize: [3, 2] });
    const batches = [...a.evalBatches(7)];
    expect(batches.map((b) => b.images.shape[0])).toEqual([7, 7, 7, 2]);
    const idx = batches.flatMap((b) => [...b.indices]);
    expect(idx).toEqual(Array.from({ length: 23 }, (_, i) => i));
    const ref = imageBatchRef(set, idx.slice(21), [[0, 0, 6, 5], [0, 0, 6, 5]], [0, 0], [0, 0, 0], [1, 1, 1], 3, 2);
    assertClose(batches[3]!.images.toArray(), ref, tolFor('float32'));
    expect([...batches[3]!.labels.toArray()]).toEqual([set.labels[21], set.labels[22]]);
    a.dispose();
    expect(() => a.batch(0)).toThrow(/after dispose/);
  });

  it('rejects bad options, naming them', () => {
    expect(() => new ImageBatcher(set, { ...opts, batchSize: 24 })).toThrow(/for batchSize/);
    expect(() => new ImageBatcher(set, { ...opts, seed: -1 })).toThrow(/for seed/);
    expect(() => new ImageBatcher(set, { ...opts, std: [1, 0, 1], mean: [0, 0, 0] })).toThrow(/for std/);
    expect(() => new ImageBatcher(set, { ...opts, mean: [0, 0] })).toThrow(/for mean/);
    expect(() => new ImageBatcher(set, { ...opts, outSize: [0, 4] })).toThrow(/for outSize/);
    expect(() => new ImageBatcher(set, { ...opts, scale: [0, 1] })).toThrow(/for scale/);
    expect(() => new ImageBatcher({ ...set, n: 24 }, opts)).toThrow(/for set/);
    const a = new ImageBatcher(set, opts);
    expect(() => a.batch(-1)).toThrow(/for k/);
    expect(() => a.evalBatches(0)).toThrow(/for batchSize/);
    a.dispose();
  });
});
