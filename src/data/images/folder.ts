/**
 * An image folder in torchvision's ImageFolder layout: one subfolder per
 * class, class ids by sorted folder name. Images are decoded by sharp, scaled
 * to cover the target size and centre-cropped (sharp's fit 'cover': the aspect
 * ratio is kept, as torchvision's Resize + CenterCrop does), then stored CHW.
 */
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import sharp from 'sharp';
import { ClozeError, expected } from '../../errors.js';
import { checkInt } from '../../validate.js';
import type { ImageSet } from './dataset.js';

export interface ImageFolderOptions {
  /** Output [H, W], or one number for a square. */
  size: [number, number] | number;
  /** 1: grayscale (PIL's convert('L') luma); 3: sRGB. Alpha is dropped, not composited. */
  channels: 1 | 3;
  /** Images decoded at once (default 8); sharp runs each on libuv's thread pool. */
  concurrency?: number;
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

// Code-unit order, like Python's sorted(), so class ids match torchvision's on ASCII names.
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir).sort(byName);
  } catch (e) {
    throw new ClozeError('E_IO', `${dir}: Expected a readable image folder but received an error (${(e as Error).message})`);
  }
}

// PIL's convert('L') (ITU-R 601 luma in 16-bit fixed point, rounded), which torchvision's Grayscale uses,
// so grayscale folders match a PyTorch baseline; libvips' own b-w conversion is perceptual and differs.
function lumaPil(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
}

// Decodes one file to planar CHW at h × w, written into out at offset.
async function decodeInto(file: string, h: number, w: number, channels: 1 | 3, out: Uint8Array, offset: number): Promise<void> {
  let data: Buffer;
  try {
    // sharp premultiplies alpha around its resize, whatever the call order, which shifts colours
    // under translucent pixels; alpha is dropped in a first pass instead, as PIL's convert('RGB') does.
    const meta = await sharp(file).metadata();
    const input = meta.hasAlpha
      ? await sharp(file).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true })
      : null;
    const source = input
      ? sharp(input.data, { raw: { width: input.info.width, height: input.info.height, channels: input.info.channels } })
      : sharp(file);
    const res = await source
      .resize(w, h, { fit: 'cover', position: 'centre' })
      .toColourspace('srgb')
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (res.info.channels !== 3 || res.info.width !== w || res.info.height !== h) {
      throw new Error(`decoded to ${res.info.width}×${res.info.height}×${res.info.channels}`);
    }
    data = res.data;
  } catch (e) {
    throw new ClozeError('E_IO', `${file}: Expected an image sharp can decode but received an error (${(e as Error).message})`);
  }
  const plane = h * w;
  if (channels === 1) {
    for (let p = 0; p < plane; p++) out[offset + p] = lumaPil(data[3 * p]!, data[3 * p + 1]!, data[3 * p + 2]!);
  } else {
    for (let p = 0; p < plane; p++) for (let c = 0; c < 3; c++) out[offset + c * plane + p] = data[3 * p + c]!;
  }
}

/** Loads every .png/.jpg/.jpeg (any case) under dir/<class>/, resized to `size` with `channels` channels. */
export async function loadImageFolder(dir: string, opts: ImageFolderOptions): Promise<ImageSet> {
  const size = opts?.size;
  const [height, width] = typeof size === 'number' ? [size, size] : Array.isArray(size) && size.length === 2 ? size : [NaN, NaN];
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw expected('a positive integer or [H, W] of positive integers', 'size', size);
  }
  const channels = opts.channels;
  if (channels !== 1 && channels !== 3) throw expected('1 or 3', 'channels', channels);
  const concurrency = opts.concurrency ?? 8;
  checkInt(concurrency, 'concurrency', 1, 256);

  const classes = listDir(dir).filter((name) => statSync(join(dir, name)).isDirectory());
  if (classes.length === 0) throw new ClozeError('E_VALUE', `${dir}: Expected one subfolder per class but received none`);
  const files: string[] = [];
  const fileLabels: number[] = [];
  classes.forEach((cls, id) => {
    const sub = join(dir, cls);
    const found = listDir(sub).filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase()) && statSync(join(sub, f)).isFile());
    if (found.length === 0) {
      throw new ClozeError('E_VALUE', `${sub}: Expected at least one .png, .jpg or .jpeg image in class folder '${cls}' but received none`);
    }
    for (const f of found) {
      files.push(join(sub, f));
      fileLabels.push(id);
    }
  });

  const px = channels * height * width;
  const images = new Uint8Array(files.length * px);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < files.length) {
      const i = next++;
      await decodeInto(files[i]!, height, width, channels, images, i * px);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, files.length) }, worker));
  return {
    images, labels: Int32Array.from(fileLabels), n: files.length, channels, height, width, classes, source: dir,
  };
}
