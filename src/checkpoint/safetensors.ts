/**
 * safetensors files (https://github.com/huggingface/safetensors, "Format"):
 *
 *   [8 bytes]  N, unsigned 64-bit little-endian: the header's length in bytes
 *   [N bytes]  UTF-8 JSON object: { "<name>": { "dtype": "F32", "shape": [2, 3],
 *              "data_offsets": [begin, end] }, …, "__metadata__": { "<key>": "<string>" } }
 *   [rest]     the byte buffer: every tensor's row-major little-endian bytes; offsets
 *              are relative to its start, and the tensors tile it exactly
 *
 * The writer streams each tensor's bytes from native memory into a temp file
 * (no concatenation), fsyncs it and renames it into place. It pads the header
 * with spaces to a multiple of 8 bytes, puts `__metadata__` first, and lays
 * tensors out by item size (largest first), then by name, so every tensor is
 * naturally aligned in the file; the header lists them in that same order.
 *
 * The reader validates the whole header against the file size before it
 * allocates anything, then reads each tensor straight into native memory.
 * F32, F64, I32 and U8 load as float32, float64, int32 and uint8; BOOL loads
 * as uint8 (0/1); F16 and BF16 are widened to float32 (exact); I64 is narrowed
 * to int32 and rejected when a value does not fit (HF's `position_ids`).
 */
import * as fs from 'node:fs';
import { endianness } from 'node:os';
import { ClozeError, type ErrorCode } from '../errors.js';
import { Tensor, zeros } from '../tensor.js';
import type { AnyTypedArray, DType } from '../native/types.js';
import { writeAll, writeFileAtomic } from './fsutil.js';

/** The largest header accepted, as in the reference implementation. */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * The safetensors dtype written for each of our dtypes. bfloat16 tensors are
 * written widened to F32 (exact), so every file loads on the CPU addon too.
 */
export const SAFETENSORS_DTYPE: Readonly<Record<DType, string>> = {
  float32: 'F32',
  float64: 'F64',
  int32: 'I32',
  uint8: 'U8',
  bfloat16: 'F32',
};

interface LoadRule {
  itemSize: number;
  dtype: DType;
  /** Converts the file's bytes into the tensor's values; absent when the bytes are copied as they are. */
  convert?: (bytes: Uint8Array, out: AnyTypedArray, fail: (what: string, got: string) => never) => void;
}

const LOAD_RULES: Readonly<Record<string, LoadRule>> = {
  F32: { itemSize: 4, dtype: 'float32' },
  F64: { itemSize: 8, dtype: 'float64' },
  I32: { itemSize: 4, dtype: 'int32' },
  U8: { itemSize: 1, dtype: 'uint8' },
  BOOL: { itemSize: 1, dtype: 'uint8' },
  F16: { itemSize: 2, dtype: 'float32', convert: (b, out) => widen16(b, out, halfToFloat) },
  BF16: { itemSize: 2, dtype: 'float32', convert: (b, out) => widen16(b, out, (h) => bitsToFloat(h << 16)) },
  I64: { itemSize: 8, dtype: 'int32', convert: narrowI64 },
};

export interface SafetensorsEntry {
  name: string;
  /** The dtype as written in the file ("F32", "BF16", …). */
  dtype: string;
  shape: number[];
  /** Byte range in the data buffer, relative to its start. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  /** Tensors in file order (by data offset). */
  tensors: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** N, the header's length in bytes. */
  headerLength: number;
  /** File offset of the data buffer: 8 + N. */
  dataStart: number;
}

export interface SaveSafetensorsOptions {
  /** Called after each tensor's bytes are written, before the file is committed (tests use it to fail mid-write). */
  afterTensor?: (name: string, index: number) => void;
}

function formatError(code: ErrorCode, what: string, name: string, file: string, got: string): ClozeError {
  return new ClozeError(code, `Expected ${what} for ${name} in ${file} but received ${got}`);
}

/** A short, safe description of a header value for an error message: never throws (deep nesting, cycles), at most 80 characters. */
export function brief(v: unknown, n = 80): string {
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = Array.isArray(v) ? 'a nested array too deep to print' : typeof v;
  }
  return s.length > n ? `${s.slice(0, n)}…` : s;
}

const quoted = (name: string): string => `'${name.length > 80 ? `${name.slice(0, 80)}…` : name}'`;

/** Names `file` in an error that does not already (native errors, allocation failures). */
function inFile(err: unknown, file: string): ClozeError {
  if (err instanceof ClozeError) return err.message.includes(file) ? err : new ClozeError(err.code, `${file}: ${err.message}`);
  const e = err as Error & { code?: unknown };
  const codes: readonly string[] = ['E_SHAPE', 'E_DTYPE', 'E_INDEX', 'E_VALUE', 'E_OOM', 'E_IO', 'E_DEVICE', 'E_CUDA', 'E_INTERNAL', 'E_STATE'];
  const code = typeof e?.code === 'string' && codes.includes(e.code) ? (e.code as ErrorCode) : e instanceof RangeError ? 'E_VALUE' : 'E_IO';
  return new ClozeError(code, `${file}: ${e?.message ?? String(err)}`);
}

function checkHostEndianness(): void {
  if (endianness() !== 'LE') throw new ClozeError('E_INTERNAL', 'safetensors: a big-endian host is not supported');
}

function byteView(a: AnyTypedArray): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Writes `tensors` (each a live tensor of any shape, including 0-d and empty)
 * to `file` atomically; `metadata` becomes `__metadata__`.
 */
export function saveSafetensors(
  file: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
  opts: SaveSafetensorsOptions = {},
): void {
  checkHostEndianness();
  const entries = Object.entries(tensors);
  for (const [name, t] of entries) {
    if (name === '__metadata__') throw formatError('E_VALUE', 'a tensor name other than __metadata__', 'tensors', file, `'${name}'`);
    if (!(t instanceof Tensor) || t.disposed) throw formatError('E_VALUE', 'a live Tensor', `tensor '${name}'`, file, String(t));
  }
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (typeof v !== 'string') throw formatError('E_VALUE', 'a string', `metadata '${k}'`, file, typeof v);
  }
  const itemSize = (t: Tensor): number => LOAD_RULES[SAFETENSORS_DTYPE[t.dtype]]!.itemSize;
  entries.sort(([na, a], [nb, b]) => itemSize(b) - itemSize(a) || (na < nb ? -1 : na > nb ? 1 : 0));

  // Built by hand so the key order is exactly the layout order (JSON.stringify puts integer-like keys first).
  const parts: string[] = [];
  if (metadata) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const [name, t] of entries) {
    const end = offset + t.size * itemSize(t);
    parts.push(`${JSON.stringify(name)}:{"dtype":"${SAFETENSORS_DTYPE[t.dtype]}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const headerLength = Math.ceil(json.length / 8) * 8;
  const head = Buffer.alloc(8 + headerLength, 0x20);
  head.writeBigUInt64LE(BigInt(headerLength), 0);
  json.copy(head, 8);

  writeFileAtomic(file, (fd) => {
    writeAll(fd, head);
    entries.forEach(([name, t], i) => {
      // data() is a zero-copy view of CPU memory; cuda and bfloat16 tensors are copied out (widened) by read().
      if (t.size > 0) writeAll(fd, byteView(t.device === 'cpu' && t.dtype !== 'bfloat16' ? t.data() : t.toArray()));
      opts.afterTensor?.(name, i);
    });
  });
}

/** Reads and validates the header of `file` against its size; reads no tensor data. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openForRead(file);
  try {
    return readHeader(fd, file);
  } catch (err) {
    throw inFile(err, file);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Loads every tensor of `file` into new tensors (see the file comment for dtype conversions). The result has no
 * prototype, so any tensor name, `__proto__` and `constructor` included, is an ordinary key. Every error names `file`.
 */
export function loadSafetensors(file: string): Record<string, Tensor> {
  checkHostEndianness();
  const fd = openForRead(file);
  const out: Record<string, Tensor> = Object.create(null) as Record<string, Tensor>;
  try {
    const header = readHeader(fd, file);
    for (const e of header.tensors) {
      const rule = LOAD_RULES[e.dtype]!;
      let t: Tensor;
      try {
        t = zeros(e.shape, rule.dtype);
      } catch (err) {
        throw inFile(err, `${file} (tensor ${quoted(e.name)}, shape [${e.shape.join(', ')}])`);
      }
      out[e.name] = t;
      const position = header.dataStart + e.dataOffsets[0];
      const nbytes = e.dataOffsets[1] - e.dataOffsets[0];
      if (nbytes === 0) continue;
      if (!rule.convert) {
        readExact(fd, byteView(t.data()), position, file, e.name);
      } else {
        const bytes = new Uint8Array(nbytes);
        readExact(fd, bytes, position, file, e.name);
        const values = t.data();
        rule.convert(bytes, values, (what, got) => {
          throw formatError('E_VALUE', what, `tensor '${e.name}'`, file, got);
        });
      }
    }
    return out;
  } catch (err) {
    for (const t of Object.values(out)) t.dispose();
    throw inFile(err, file);
  } finally {
    fs.closeSync(fd);
  }
}

function openForRead(file: string): number {
  try {
    return fs.openSync(file, 'r');
  } catch (err) {
    throw new ClozeError('E_IO', `safetensors: cannot open ${file}: ${(err as Error).message}`);
  }
}

function readExact(fd: number, into: Uint8Array, position: number, file: string, name: string): void {
  const chunk = 1 << 26;
  for (let off = 0; off < into.length; ) {
    const n = fs.readSync(fd, into, off, Math.min(chunk, into.length - off), position + off);
    if (n === 0) {
      throw formatError('E_IO', `${into.length} bytes`, name, file, `${off} (file truncated while reading)`);
    }
    off += n;
  }
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function readHeader(fd: number, file: string): SafetensorsHeader {
  const fileSize = fs.fstatSync(fd).size;
  const fail = (code: ErrorCode, what: string, name: string, got: string): never => {
    throw formatError(code, what, name, file, got);
  };
  if (fileSize < 8) fail('E_IO', 'a file of at least 8 bytes', 'the header length', `a file of ${fileSize} bytes`);
  const lenBytes = Buffer.alloc(8);
  fs.readSync(fd, lenBytes, 0, 8, 0);
  const n64 = lenBytes.readBigUInt64LE(0);
  if (n64 < 2n || n64 > BigInt(MAX_HEADER_BYTES)) {
    fail('E_IO', `a header length in [2, ${MAX_HEADER_BYTES}]`, 'the header length', String(n64));
  }
  const headerLength = Number(n64);
  if (8 + headerLength > fileSize) {
    fail('E_IO', `a header length of at most ${fileSize - 8} (the file size less 8)`, 'the header length', `${headerLength} (file truncated?)`);
  }
  const raw = Buffer.alloc(headerLength);
  readExact(fd, raw, 8, file, 'the header');

  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw));
  } catch (err) {
    fail('E_VALUE', 'a UTF-8 JSON object', 'the header', `text that does not parse (${(err as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail('E_VALUE', 'a JSON object', 'the header', Array.isArray(parsed) ? 'an array' : String(parsed));
  }

  const metadata: Record<string, string> = Object.create(null) as Record<string, string>;
  const tensors: SafetensorsEntry[] = [];
  const dataStart = 8 + headerLength;
  const bufferLength = fileSize - dataStart;
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('E_VALUE', 'an object of strings', '__metadata__', brief(value));
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') fail('E_VALUE', 'a string', `__metadata__ ${quoted(k)}`, brief(v));
        metadata[k] = v as string;
      }
      continue;
    }
    const where = `tensor ${quoted(name)}`;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('E_VALUE', 'an object with dtype, shape and data_offsets', where, brief(value));
    const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
    if (typeof dtype !== 'string') fail('E_VALUE', 'a dtype string', `${where} dtype`, brief(dtype));
    const rule = LOAD_RULES[dtype as string];
    if (!rule) fail('E_DTYPE', `one of ${Object.keys(LOAD_RULES).join(', ')}`, `${where} dtype`, `'${dtype}'`);
    if (!Array.isArray(shape) || !shape.every(isCount)) fail('E_SHAPE', 'an array of non-negative integers', `${where} shape`, brief(shape));
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount) || offsets[0] > offsets[1]) {
      fail('E_VALUE', '[begin, end] with 0 ≤ begin ≤ end', `${where} data_offsets`, brief(offsets));
    }
    const [begin, end] = offsets as [number, number];
    const numel = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end - begin !== numel * rule!.itemSize) {
      fail('E_SHAPE', `${numel * rule!.itemSize} bytes (shape [${(shape as number[]).join(', ')}] × ${rule!.itemSize}-byte ${dtype})`, where, `data_offsets [${begin}, ${end}] (${end - begin} bytes)`);
    }
    if (end > bufferLength) {
      fail('E_IO', `data_offsets within the ${bufferLength}-byte data buffer`, where, `[${begin}, ${end}] (file truncated?)`);
    }
    tensors.push({ name, dtype: dtype as string, shape: shape as number[], dataOffsets: [begin, end] });
  }

  // The tensors must tile the buffer: no overlap, no gap, nothing after the last.
  const byOffset = [...tensors].sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  let covered = 0;
  for (const e of byOffset) {
    const [begin] = e.dataOffsets;
    if (begin !== covered) {
      fail('E_VALUE', `data_offsets beginning at byte ${covered}, where the previous tensor ends`, `tensor ${quoted(e.name)}`,
        `[${e.dataOffsets.join(', ')}] (${begin < covered ? 'overlapping' : 'leaving a gap'})`);
    }
    covered = e.dataOffsets[1];
  }
  if (covered !== bufferLength) {
    fail('E_VALUE', `tensors covering the whole ${bufferLength}-byte data buffer`, 'the header', `tensors covering ${covered} bytes (${bufferLength - covered} trailing bytes)`);
  }
  return { tensors: byOffset, metadata, headerLength, dataStart };
}

function widen16(bytes: Uint8Array, out: AnyTypedArray, f: (h: number) => number): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = f(dv.getUint16(2 * i, true));
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function bitsToFloat(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

/** IEEE binary16 → number (exact: every half is a float32). */
function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function narrowI64(bytes: Uint8Array, out: AnyTypedArray, fail: (what: string, got: string) => never): void {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < out.length; i++) {
    const v = dv.getBigInt64(8 * i, true);
    if (v < -2147483648n || v > 2147483647n) fail('I64 values within the int32 range', `${v} at element ${i}`);
    out[i] = Number(v);
  }
}
