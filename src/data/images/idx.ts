/**
 * IDX files (the MNIST family's format): a 4-byte magic 00 00 TT RR (TT the
 * element type, RR the rank), RR big-endian uint32 dimensions, then the
 * row-major payload. Files may be gzipped; that is detected by the gzip magic,
 * because distributions rename and recompress them freely.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { ClozeError } from '../../errors.js';

export interface IdxArray {
  dims: number[];
  dtype: 'uint8';
  data: Uint8Array;
}

const TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;

function fail(path: string, code: 'E_IO' | 'E_VALUE' | 'E_SHAPE', message: string): never {
  throw new ClozeError(code, `${path}: ${message}`);
}

function readBytes(path: string): Uint8Array {
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    fail(path, 'E_IO', `Expected a readable IDX file but received an error (${(e as Error).message})`);
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      return gunzipSync(raw);
    } catch (e) {
      fail(path, 'E_IO', `Expected a valid gzip stream but received a corrupt one (${(e as Error).message})`);
    }
  }
  return raw;
}

/** Reads an IDX file of unsigned bytes (rank 1 to 4), gzipped or raw. Every error names the file first. */
export function readIdx(path: string): IdxArray {
  const bytes = readBytes(path);
  if (bytes.length < 4) fail(path, 'E_VALUE', `Expected an IDX header of at least 4 bytes but received ${bytes.length}`);
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const got = [...bytes.subarray(0, 4)].map(hex).join(' ');
    fail(path, 'E_VALUE', `Expected the IDX magic 0x00 0x00 <type> <rank> but received ${got}`);
  }
  const type = bytes[2]!;
  if (type !== 0x08) {
    const name = TYPE_NAMES[type] ?? 'an unknown type';
    fail(path, 'E_VALUE', `Expected IDX type byte 0x08 (unsigned byte) but received ${hex(type)} (${name})`);
  }
  const rank = bytes[3]!;
  if (rank < 1 || rank > 4) fail(path, 'E_SHAPE', `Expected an IDX rank in [1, 4] but received ${rank}`);
  const header = 4 + 4 * rank;
  if (bytes.length < header) {
    fail(path, 'E_VALUE', `Expected ${header} header bytes for rank ${rank} but received ${bytes.length} (truncated file?)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  const want = dims.reduce((a, b) => a * b, 1);
  const got = bytes.length - header;
  const what = `${want} bytes of ${rank === 1 ? 'label' : 'image'} data for dims [${dims.join(', ')}]`;
  if (got < want) fail(path, 'E_VALUE', `Expected ${what} but received ${got} (truncated file?)`);
  if (got > want) fail(path, 'E_VALUE', `Expected ${what} but received ${got} (${got - want} trailing bytes)`);
  // A copy, so the result owns a whole ArrayBuffer (readFileSync may hand out a slice of a shared pool).
  return { dims, dtype: 'uint8', data: new Uint8Array(bytes.subarray(header)) };
}
