/**
 * IDX files (the MNIST family's format): a 4-byte magic 00 00 TT RR (TT the
 * element type, RR the rank), RR big-endian uint32 dimensions, then the
 * row-major payload. Files may be gzipped; that is detected by the gzip magic,
 * because distributions rename and recompress them freely.
 *
 * A gzipped file is never inflated whole before its header is checked: the
 * header is inflated from a prefix of the stream, the payload size it promises
 * is checked against what the compressed size can possibly hold (deflate
 * expands at most 1032:1) and against MAX_IDX_BYTES, and the whole stream is
 * then inflated with that size as the output limit, so a small file that
 * inflates to gigabytes is refused at the size its header promised.
 */
import { readFileSync } from 'node:fs';
import { constants, gunzipSync } from 'node:zlib';
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

/** The largest IDX payload read (2 GiB less one byte: one Uint8Array). Fashion-MNIST's training images are 47 MB. */
export const MAX_IDX_BYTES = 2 ** 31 - 1;
/** Deflate's largest expansion ratio (zlib's technical notes): a bound on what a compressed file can hold. */
const MAX_DEFLATE_RATIO = 1032;

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;

function fail(path: string, code: 'E_IO' | 'E_VALUE' | 'E_SHAPE', message: string): never {
  throw new ClozeError(code, `${path}: ${message}`);
}

function readRaw(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    fail(path, 'E_IO', `Expected a readable IDX file but received an error (${(e as Error).message})`);
  }
}

const isGzip = (raw: Uint8Array): boolean => raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b;

function gunzipError(path: string, e: unknown): never {
  fail(path, 'E_IO', `Expected a valid gzip stream but received a corrupt one (${(e as Error).message})`);
}

/** The first bytes the gzip stream `raw` inflates to: at least `want` when it has them (fewer only at its end). */
function inflatePrefix(path: string, raw: Buffer, want: number): Buffer {
  for (let n = Math.min(raw.length, 256); ; n = Math.min(raw.length, n * 4)) {
    let out: Buffer;
    try {
      // A prefix of the stream, flushed: what it inflates to so far, without an end-of-stream error.
      // Once the prefix is the whole file, inflate it normally so a stream cut short is reported as corrupt.
      const flush = n < raw.length ? { finishFlush: constants.Z_SYNC_FLUSH } : {};
      out = gunzipSync(raw.subarray(0, n), { ...flush, maxOutputLength: n * MAX_DEFLATE_RATIO + 1024 });
    } catch (e) {
      gunzipError(path, e);
    }
    if (out.length >= want || n === raw.length) return out;
  }
}

/** Reads an IDX file of unsigned bytes (rank 1 to 4), gzipped or raw. Every error names the file first. */
export function readIdx(path: string): IdxArray {
  const raw = readRaw(path);
  const gz = isGzip(raw);
  // Raw files are read whole (their size is the file's); gzipped ones only up to the header first.
  const head = gz ? inflatePrefix(path, raw, 4 + 4 * 4) : raw;
  const bytes = head;
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
  const dims = readDims(bytes, rank);
  const want = dims.reduce((a, b) => a * b, 1);
  const what = `${want} bytes of ${rank === 1 ? 'label' : 'image'} data for dims [${dims.join(', ')}]`;
  if (want > MAX_IDX_BYTES) fail(path, 'E_SHAPE', `Expected at most ${MAX_IDX_BYTES} bytes of data (MAX_IDX_BYTES) but received a header promising ${what}`);
  if (gz) {
    if (header + want > raw.length * MAX_DEFLATE_RATIO) {
      fail(path, 'E_VALUE', `Expected ${what} but received a ${raw.length}-byte gzip file, which cannot inflate to that much (truncated file?)`);
    }
    let all: Buffer;
    try {
      all = gunzipSync(raw, { maxOutputLength: header + want });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') fail(path, 'E_VALUE', `Expected ${what} but received more (trailing bytes)`);
      gunzipError(path, e);
    }
    return payload(path, all, header, dims, want, what);
  }
  return payload(path, bytes, header, dims, want, what);
}

function readDims(bytes: Uint8Array, rank: number): number[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(view.getUint32(4 + 4 * i, false));
  return dims;
}

function payload(path: string, bytes: Uint8Array, header: number, dims: number[], want: number, what: string): IdxArray {
  const got = bytes.length - header;
  if (got < want) fail(path, 'E_VALUE', `Expected ${what} but received ${got} (truncated file?)`);
  if (got > want) fail(path, 'E_VALUE', `Expected ${what} but received ${got} (${got - want} trailing bytes)`);
  // A copy, so the result owns a whole ArrayBuffer (readFileSync may hand out a slice of a shared pool).
  return { dims, dtype: 'uint8', data: new Uint8Array(bytes.subarray(header)) };
}
