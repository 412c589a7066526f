/**
 * The weight-mask file of one task (`cloze export --mask-only`): one bit per
 * masked weight over a frozen base, plus the few float tensors the base does
 * not have (the classifier, and the pooler when the base had none), so that
 * a base and N of these files serve N tasks.
 *
 * Layout (little-endian):
 *    0      8  magic "CLZMASK1"
 *    8      4  header length H (bytes of UTF-8 JSON)
 *   12      H  header (MaskFileHeader)
 *   12+H   32  sha256 of the header and the body together
 *   44+H    …  body: each layer's bits in header order, row-major, bit i of a
 *              layer in byte i>>3 at bit i&7 (1 = kept), every layer padded
 *              to whole bytes; then each tensor as float32
 * The base is named by the sha256 of its model.safetensors, so loading onto
 * another base fails with both hashes instead of serving a wrong model.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { ClozeError } from '../errors.js';
import { writeAll, writeFileAtomic } from './fsutil.js';

const MAGIC = 'CLZMASK1';
const VERSION = 1;
/** A header larger than this is a corrupt length field, not a real header. */
const MAX_HEADER_BYTES = 64 << 20;

export interface MaskLayer {
  name: string;
  /** [out, in] of the weight. */
  shape: [number, number];
}

export interface MaskFileHeader {
  format: 'cloze-weight-mask';
  version: number;
  /** sha256 (hex) of the base checkpoint's model.safetensors. */
  base_sha256: string;
  /** Scores above it were kept; recorded for the reader, the bits already say it. */
  threshold: number;
  labels: string[];
  pair: boolean;
  max_length: number;
  layers: MaskLayer[];
  /** float32 tensors stored whole (classifier, pooler when the base has none). */
  tensors: Array<{ name: string; shape: number[] }>;
}

export interface MaskFile {
  header: MaskFileHeader;
  /** Packed bits per layer name. */
  bits: Map<string, Uint8Array>;
  tensors: Map<string, Float32Array>;
}

/** The element count of a shape; one past 2^40 elements is a corrupt header, not a mask. */
function checkedProduct(shape: readonly number[], what: string): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n) || n > 2 ** 40) throw new ClozeError('E_VALUE', `Expected at most 2^40 elements for ${what} but received shape [${shape.join(', ')}]`);
  }
  return n;
}

function fail(file: string, what: string): ClozeError {
  return new ClozeError('E_VALUE', `${file}: ${what}`);
}

/** Bytes of a layer's packed bits. */
export function packedBytes(shape: readonly number[]): number {
  return Math.ceil(checkedProduct(shape, 'mask layer shape') / 8);
}

/** Packs `keep[i] !== 0` into bits, LSB-first. */
export function packBits(keep: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(keep.length / 8));
  for (let i = 0; i < keep.length; i++) if (keep[i] !== 0) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

/** The kept count of packed bits over `n` weights. */
export function countKept(bits: Uint8Array, n: number): number {
  let c = 0;
  for (let i = 0; i < n; i++) c += (bits[i >> 3]! >> (i & 7)) & 1;
  return c;
}

export function writeMaskFile(file: string, header: Omit<MaskFileHeader, 'format' | 'version'>, bits: Map<string, Uint8Array>, tensors: Map<string, Float32Array>): void {
  const h: MaskFileHeader = { format: 'cloze-weight-mask', version: VERSION, ...header };
  const parts: Uint8Array[] = [];
  for (const l of h.layers) {
    const b = bits.get(l.name);
    if (!b || b.length !== packedBytes(l.shape)) throw new ClozeError('E_VALUE', `${file}: Expected ${packedBytes(l.shape)} bytes of bits for layer ${l.name} but received ${b?.length ?? 'none'}`);
    parts.push(b);
  }
  for (const t of h.tensors) {
    const v = tensors.get(t.name);
    const n = checkedProduct(t.shape, `tensor ${t.name}`);
    if (!v || v.length !== n) throw new ClozeError('E_VALUE', `${file}: Expected ${n} values for tensor ${t.name} but received ${v?.length ?? 'none'}`);
    parts.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  const json = Buffer.from(JSON.stringify(h), 'utf8');
  // The header is covered too: a damaged label, length or base hash that still parses is caught here.
  const digest = createHash('sha256').update(json);
  for (const p of parts) digest.update(p);
  const head = Buffer.alloc(12);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(json.length, 8);
  writeFileAtomic(file, (fd) => {
    writeAll(fd, head);
    writeAll(fd, json);
    writeAll(fd, digest.digest());
    for (const p of parts) writeAll(fd, p);
  });
}

function checkShape(file: string, v: unknown, what: string, rank?: number): number[] {
  if (!Array.isArray(v) || (rank !== undefined && v.length !== rank) || v.some((d) => !Number.isSafeInteger(d) || d < 1)) {
    throw fail(file, `Expected a shape of ${rank ?? 'some'} positive integers for ${what} but received ${JSON.stringify(v)?.slice(0, 80)}`);
  }
  return v as number[];
}

function checkHeader(file: string, h: unknown): MaskFileHeader {
  const o = h as Record<string, unknown>;
  if (o === null || typeof o !== 'object' || o.format !== 'cloze-weight-mask') throw fail(file, `Expected a cloze weight-mask header (format "cloze-weight-mask") but received ${JSON.stringify(o)?.slice(0, 80)}`);
  if (o.version !== VERSION) throw fail(file, `Expected version ${VERSION} for the mask file's version but received ${JSON.stringify(o.version)}`);
  if (typeof o.base_sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(o.base_sha256)) throw fail(file, `Expected 64 hex digits for base_sha256 but received ${JSON.stringify(o.base_sha256)}`);
  if (typeof o.threshold !== 'number' || !Number.isFinite(o.threshold)) throw fail(file, `Expected a finite number for threshold but received ${JSON.stringify(o.threshold)}`);
  if (!Array.isArray(o.labels) || o.labels.length < 2 || o.labels.some((l) => typeof l !== 'string')) throw fail(file, `Expected at least two string labels for labels but received ${JSON.stringify(o.labels)?.slice(0, 80)}`);
  if (typeof o.pair !== 'boolean') throw fail(file, `Expected true or false for pair but received ${JSON.stringify(o.pair)}`);
  if (!Number.isSafeInteger(o.max_length) || (o.max_length as number) < 1) throw fail(file, `Expected a positive integer for max_length but received ${JSON.stringify(o.max_length)}`);
  if (!Array.isArray(o.layers) || o.layers.length === 0) throw fail(file, `Expected a non-empty list for layers but received ${JSON.stringify(o.layers)?.slice(0, 80)}`);
  if (!Array.isArray(o.tensors)) throw fail(file, `Expected a list for tensors but received ${JSON.stringify(o.tensors)?.slice(0, 80)}`);
  const names = new Set<string>();
  for (const [i, l] of [...(o.layers as unknown[]), ...(o.tensors as unknown[])].entries()) {
    const e = l as { name?: unknown; shape?: unknown };
    if (e === null || typeof e !== 'object' || typeof e.name !== 'string' || e.name === '') throw fail(file, `Expected {name, shape} for entry ${i} of layers/tensors but received ${JSON.stringify(l)?.slice(0, 80)}`);
    if (names.has(e.name)) throw fail(file, `Expected each name once but received layer ${e.name} twice`);
    names.add(e.name);
    checkShape(file, e.shape, `layer ${e.name}`, i < (o.layers as unknown[]).length ? 2 : undefined);
  }
  return o as unknown as MaskFileHeader;
}

/** Reads and checks a mask file: magic, version, header fields, exact size, body checksum. */
export function readMaskFile(file: string): MaskFile {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    throw new ClozeError('E_IO', `Expected a readable weight-mask file for mask but received ${file} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (bytes.length < 12 || bytes.toString('latin1', 0, 8) !== MAGIC) throw fail(file, `Expected a cloze weight-mask file (magic ${MAGIC}) but received ${bytes.length < 8 ? `${bytes.length} bytes` : JSON.stringify(bytes.toString('latin1', 0, 8))}`);
  const hlen = bytes.readUInt32LE(8);
  if (hlen > MAX_HEADER_BYTES || 12 + hlen + 32 > bytes.length) throw fail(file, `Expected a header of ${hlen} bytes and a checksum within the file's ${bytes.length} bytes but the file is truncated or its header length is corrupt`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(12, 12 + hlen)));
  } catch (e) {
    throw fail(file, `Expected a JSON header but received one that does not parse (${(e as Error).message})`);
  }
  const header = checkHeader(file, parsed);
  const sum = bytes.subarray(12 + hlen, 44 + hlen);
  let pos = 44 + hlen;
  let want = 0;
  for (const l of header.layers) want += packedBytes(l.shape);
  for (const t of header.tensors) want += 4 * checkedProduct(t.shape, `tensor ${t.name}`);
  if (bytes.length - pos !== want) throw fail(file, `Expected ${want} body bytes for the layers and tensors its header lists but received ${bytes.length - pos} (a truncated or padded file)`);
  if (!createHash('sha256').update(bytes.subarray(12, 12 + hlen)).update(bytes.subarray(pos)).digest().equals(sum)) {
    throw fail(file, 'Expected the header and body to match their sha256 but they do not (the file is corrupt)');
  }
  const bits = new Map<string, Uint8Array>();
  for (const l of header.layers) {
    const n = packedBytes(l.shape);
    bits.set(l.name, new Uint8Array(bytes.subarray(pos, pos + n)));
    pos += n;
  }
  const tensors = new Map<string, Float32Array>();
  for (const t of header.tensors) {
    const n = checkedProduct(t.shape, `tensor ${t.name}`);
    const v = new Float32Array(n);
    new Uint8Array(v.buffer).set(bytes.subarray(pos, pos + 4 * n));
    tensors.set(t.name, v);
    pos += 4 * n;
  }
  return { header, bits, tensors };
}

/** sha256 (hex) of a file, read in chunks (a base's weights can be large). */
export function fileSha256(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}
