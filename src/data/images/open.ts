/**
 * The images of an image task's run (mim, spark): a directory of IDX files (MNIST / Fashion-MNIST
 * layout: train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], and the
 * t10k-* test pair) or of images in class subfolders under train/ and test/ (or
 * val/). The default is Debian's Fashion-MNIST.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ClozeError } from '../../errors.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, loadIdxPair, subset, type ImageSet } from './dataset.js';
import { loadImageFolder } from './folder.js';


export interface ImageData {
  train: ImageSet;
  test: ImageSet;
  source: string;
}

function idxFile(dir: string, stem: string): string | null {
  for (const f of [`${stem}`, `${stem}.gz`]) if (existsSync(join(dir, f))) return join(dir, f);
  return null;
}

const isDir = (p: string): boolean => existsSync(p) && statSync(p).isDirectory();

export async function openImageData(data: string | null, o: { size: [number, number]; channels: number }): Promise<ImageData> {
  const dir = data ?? FASHION_MNIST_DIR;
  if (!isDir(dir)) {
    const hint = data === null ? ' (install it with: apt-get install dataset-fashion-mnist)' : '';
    const what = existsSync(dir) ? (statSync(dir).isFile() ? 'a file, not a directory (give the directory that holds the IDX files or the train/ and test/ folders)' : 'not a directory') : 'which does not exist';
    throw new ClozeError('E_IO', `Expected a directory of IDX files or of image class folders for data but received ${dir}, ${what}${hint}`);
  }
  const trainImages = idxFile(dir, 'train-images-idx3-ubyte');
  if (trainImages) {
    const need = (stem: string): string => {
      const f = idxFile(dir, stem);
      if (!f) throw new ClozeError('E_IO', `Expected ${stem}[.gz] in ${dir} (an IDX data directory) but received no such file`);
      return f;
    };
    const classes = dir === FASHION_MNIST_DIR || /fashion/i.test(dir) ? FASHION_MNIST_CLASSES : undefined;
    return {
      train: loadIdxPair(trainImages, need('train-labels-idx1-ubyte'), classes),
      test: loadIdxPair(need('t10k-images-idx3-ubyte'), need('t10k-labels-idx1-ubyte'), classes),
      source: dir,
    };
  }
  const testDir = ['test', 'val'].map((d) => join(dir, d)).find(isDir);
  if (isDir(join(dir, 'train')) && testDir) {
    const opts = { size: o.size, channels: o.channels as 1 | 3 };
    return { train: await loadImageFolder(join(dir, 'train'), opts), test: await loadImageFolder(testDir, opts), source: dir };
  }
  const entries = readdirSync(dir).slice(0, 5).join(', ');
  throw new ClozeError('E_IO', `Expected ${dir} to hold train-images-idx3-ubyte[.gz] (IDX) or train/ and test/ (or val/) folders of class subfolders, but received: ${entries || 'an empty directory'}`);
}

/** A seeded subset when `count` is below the set's size, else the set itself. */
export function limit(set: ImageSet, count: number, seed: number): ImageSet {
  return count > 0 && count < set.n ? subset(set, count, seed) : set;
}
