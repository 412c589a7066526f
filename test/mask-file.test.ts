/**
 * The weight-mask file (issue 15): an exact round trip of bits, header and
 * head tensors, and every kind of damage refused with an error naming the
 * file (truncation, a flipped body byte, a bad magic, a lying header).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { countKept, packBits, readMaskFile, writeMaskFile } from '../src/checkpoint/mask-file.js';
import { ClozeError } from '../src/errors.js';
import { Rng } from '../src/rng.js';

const SHA = 'ab'.repeat(32);

function sample(dir: string): { file: string; keeps: Map<string, Uint8Array>; head: Float32Array } {
  const rng = new Rng(15);
  const layers: Array<{ name: string; shape: [number, number] }> = [
    { name: 'bert.encoder.layer.0.attention.self.query', shape: [7, 5] },
    { name: 'classifier', shape: [3, 13] },
  ];
  const keeps = new Map<string, Uint8Array>();
  const bits = new Map<string, Uint8Array>();
  for (const l of layers) {
    const k = Uint8Array.from({ length: l.shape[0] * l.shape[1] }, () => (rng.uniform() < 0.9 ? 1 : 0));
    keeps.set(l.name, k);
    bits.set(l.name, packBits(k));
  }
  const head = Float32Array.from({ length: 3 }, () => rng.normal());
  const file = join(dir, 'task.mask');
  writeMaskFile(file, { base_sha256: SHA, threshold: 0.01, labels: ['a', 'b', 'c'], pair: false, max_length: 64, layers, tensors: [{ name: 'classifier.bias', shape: [3] }] }, bits, new Map([['classifier.bias', head]]));
  return { file, keeps, head };
}

function refused(file: string): string {
  try {
    readMaskFile(file);
  } catch (e) {
    expect(e).toBeInstanceOf(ClozeError);
    return (e as Error).message;
  }
  throw new Error(`${file} was read`);
}

describe('weight-mask file', () => {
  it('round-trips bits, header and head tensors exactly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloze-mask-'));
    const { file, keeps, head } = sample(dir);
    const mf = readMaskFile(file);
    expect(mf.header.base_sha256).toBe(SHA);
    expect(mf.header.labels).toEqual(['a', 'b', 'c']);
    for (const [name, k] of keeps) {
      const bits = mf.bits.get(name)!;
      const back = Array.from(k, (_, i) => (bits[i >> 3]! >> (i & 7)) & 1);
      expect(back).toEqual(Array.from(k));
      expect(countKept(bits, k.length)).toBe(k.reduce((a, b) => a + b, 0));
    }
    expect(mf.tensors.get('classifier.bias')).toEqual(head);
    // One bit per weight: 35 and 39 weights take 5 bytes each.
    expect(mf.bits.get('classifier')!.length).toBe(5);
  });

  it('refuses truncated, corrupt, foreign and lying files, naming the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloze-mask-'));
    const { file } = sample(dir);
    const good = readFileSync(file);
    const bad = join(dir, 'bad.mask');
    const variants: Array<[string, Buffer, RegExp]> = [
      ['truncated', good.subarray(0, good.length - 3), /truncated or padded/],
      ['cut in the header', good.subarray(0, 30), /truncated or its header length is corrupt/],
      ['empty', Buffer.alloc(0), /magic/],
      ['a flipped body byte', Buffer.from(good.map((b, i) => (i === good.length - 1 ? b ^ 1 : b))), /corrupt/],
      ['another format', Buffer.concat([Buffer.from('GGUF0000'), good.subarray(8)]), /magic CLZMASK1/],
      // A label changed in the header ("a" → "q") still parses: the checksum covers the header too.
      ['a changed label', Buffer.from(good.toString('latin1').replace('"labels":["a"', '"labels":["q"'), 'latin1'), /corrupt/],
    ];
    for (const [what, bytes, msg] of variants) {
      writeFileSync(bad, bytes);
      const m = refused(bad);
      expect(m, what).toMatch(msg);
      expect(m, what).toContain(bad);
    }
    // A header whose layer shape lies about the body: the size check catches it before any bit is read.
    const hlen = good.readUInt32LE(8);
    const header = JSON.parse(good.subarray(12, 12 + hlen).toString('utf8')) as { layers: Array<{ shape: number[] }> };
    header.layers[0]!.shape = [70, 5];
    const json = Buffer.from(JSON.stringify(header));
    const head = Buffer.alloc(12);
    head.write('CLZMASK1', 0, 'latin1');
    head.writeUInt32LE(json.length, 8);
    writeFileSync(bad, Buffer.concat([head, json, good.subarray(12 + hlen)]));
    expect(refused(bad)).toMatch(/Expected \d+ body bytes/);
    header.layers[0]!.shape = [7, -5];
    const json2 = Buffer.from(JSON.stringify(header));
    head.writeUInt32LE(json2.length, 8);
    writeFileSync(bad, Buffer.concat([head, json2, good.subarray(12 + hlen)]));
    expect(refused(bad)).toMatch(/layer bert\.encoder\.layer\.0\.attention\.self\.query/);
    expect(refused(join(dir, 'missing.mask'))).toMatch(/missing\.mask/);
  });
});
