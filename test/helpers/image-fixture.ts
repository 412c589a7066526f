/**
 * A small labelled image set in Fashion-MNIST's IDX layout, generated: class c
 * draws a bright bar whose orientation and position depend on c, on a noisy
 * background, so a probe can separate the classes and a MIM model can learn
 * to fill in patches.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { Rng } from '../../src/rng.js';

export function idxBytes(typeCode: number, dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.writeUInt8(0, 0);
  head.writeUInt8(0, 1);
  head.writeUInt8(typeCode, 2);
  head.writeUInt8(dims.length, 3);
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
}

function images(n: number, classes: number, size: number, seed: number): { pixels: Uint8Array; labels: Uint8Array } {
  const rng = new Rng(seed);
  const pixels = new Uint8Array(n * size * size);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    labels[i] = c;
    const at = 4 + ((c * 5) % (size - 8)) + rng.int(3);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const onBar = c % 2 === 0 ? Math.abs(y - at) <= 2 : Math.abs(x - at) <= 2;
        pixels[i * size * size + y * size + x] = onBar ? 200 + rng.int(56) : rng.int(40);
      }
    }
  }
  return { pixels, labels };
}

/** Writes train-* and t10k-* IDX pairs (gzipped) into `dir`; returns dir. */
export function writeImageFixture(dir: string, o: { train?: number; test?: number; classes?: number; size?: number; seed?: number } = {}): string {
  mkdirSync(dir, { recursive: true });
  const size = o.size ?? 28;
  const classes = o.classes ?? 4;
  for (const [stem, n, seed] of [['train', o.train ?? 256, o.seed ?? 1], ['t10k', o.test ?? 64, (o.seed ?? 1) + 100]] as const) {
    const { pixels, labels } = images(n, classes, size, seed);
    writeFileSync(join(dir, `${stem}-images-idx3-ubyte.gz`), gzipSync(idxBytes(0x08, [n, size, size], pixels)));
    writeFileSync(join(dir, `${stem}-labels-idx1-ubyte.gz`), gzipSync(idxBytes(0x08, [n], labels)));
  }
  return dir;
}
