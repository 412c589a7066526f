/**
 * Token shard: a corpus tokenized once, stored as one binary file and read back
 * with positioned reads, so a corpus larger than RAM never has to be loaded.
 *
 * Layout (little-endian):
 *
 *   offset  size  field
 *        0     8  magic "CLZSHARD"
 *        8     4  version (2)
 *       12     4  bytes per token: 2 (uint16, vocab <= 65536) or 4 (int32)
 *       16     4  vocabulary size
 *       20     4  reserved (0)
 *       24     8  token count T
 *       32     8  document count D
 *       40    32  sha256 of what the shard was built from (tokenizer + sources)
 *       72     8  checksum: the first 8 bytes of the sha256 of the tokens and the document table
 *       80  T*b   tokens, documents back to back
 *           8(D+1) document start offsets in tokens (u64), the last one = T
 *
 * The writer streams tokens to a temporary file beside the target and renames
 * it into place only once the header is final, so a crash never leaves a
 * partial shard under the real name.
 *
 * Opening a shard reads it once whole: the checksum must match (a corrupted
 * cache is refused naming the file, and prepareShard rebuilds it), and every
 * token id must lie below the vocabulary size, so no bad id reaches the
 * masking or the embedding later. Version 1 shards (no checksum) are refused
 * the same way and rebuilt.
 */
import { closeSync, fstatSync, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { createHash, randomBytes, type Hash } from 'node:crypto';
import { ClozeError } from '../errors.js';
import { checkInt } from '../validate.js';

export const SHARD_MAGIC = 'CLZSHARD';
export const SHARD_VERSION = 2;
export const SHARD_HEADER_BYTES = 80;

export interface ShardHeader {
  version: number;
  tokenBytes: 2 | 4;
  vocabSize: number;
  tokenCount: number;
  docCount: number;
  /** 64 hex digits. */
  hash: string;
  /** 16 hex digits: the first 8 bytes of the sha256 of the tokens and the document table. */
  checksum: string;
}

export interface OpenShardOptions {
  /** The vocabulary the shard's ids must fit (the tokenizer's); refused when the shard's is larger. */
  vocabSize?: number;
}

export class ShardWriter {
  readonly path: string;
  readonly tempPath: string;
  private fd: number | null;
  private readonly tokenBytes: 2 | 4;
  private readonly vocabSize: number;
  private readonly hash: string;
  private readonly docStarts: number[] = [];
  private tokenCount = 0;
  private buf: Buffer;
  private used = 0;
  private pos = SHARD_HEADER_BYTES;
  private readonly sum: Hash = createHash('sha256');

  constructor(path: string, vocabSize: number, hash: string, bufferBytes = 1 << 20) {
    checkInt(vocabSize, 'vocabSize', 1, 2 ** 31 - 1);
    if (!/^[0-9a-f]{64}$/.test(hash)) throw new ClozeError('E_VALUE', `Expected 64 hex digits for hash but received '${hash}'`);
    this.path = path;
    this.tempPath = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
    this.vocabSize = vocabSize;
    this.hash = hash;
    this.tokenBytes = vocabSize <= 65536 ? 2 : 4;
    this.buf = Buffer.alloc(bufferBytes);
    this.fd = openSync(this.tempPath, 'wx');
  }

  /** Appends one document's token ids. Empty documents are skipped. */
  append(ids: ArrayLike<number>): void {
    const fd = this.live();
    if (ids.length === 0) return;
    this.docStarts.push(this.tokenCount);
    const tb = this.tokenBytes;
    for (let i = 0; i < ids.length; i++) {
      const v = ids[i]!;
      if (!Number.isInteger(v) || v < 0 || v >= this.vocabSize) {
        throw new ClozeError('E_VALUE', `Expected a token id in [0, ${this.vocabSize - 1}] for ids[${i}] but received ${v}`);
      }
      if (this.used + tb > this.buf.length) this.flush(fd);
      if (tb === 2) this.buf.writeUInt16LE(v, this.used);
      else this.buf.writeInt32LE(v, this.used);
      this.used += tb;
    }
    this.tokenCount += ids.length;
  }

  get documents(): number {
    return this.docStarts.length;
  }

  /** Writes the document table and the header, then renames the file into place. */
  finish(): ShardHeader {
    const fd = this.live();
    try {
      this.flush(fd);
      const table = Buffer.alloc(8 * (this.docStarts.length + 1));
      this.docStarts.forEach((s, i) => table.writeBigUInt64LE(BigInt(s), 8 * i));
      table.writeBigUInt64LE(BigInt(this.tokenCount), 8 * this.docStarts.length);
      writeAll(fd, table, this.pos);
      this.sum.update(table);
      const header: ShardHeader = {
        version: SHARD_VERSION, tokenBytes: this.tokenBytes, vocabSize: this.vocabSize,
        tokenCount: this.tokenCount, docCount: this.docStarts.length, hash: this.hash,
        checksum: this.sum.digest('hex').slice(0, 16),
      };
      writeAll(fd, encodeHeader(header), 0);
      fsyncSync(fd);
      closeSync(fd);
      this.fd = null;
      renameSync(this.tempPath, this.path);
      return header;
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Drops the temporary file; the target path is left untouched. */
  abort(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    try { unlinkSync(this.tempPath); } catch { /* already gone */ }
  }

  private flush(fd: number): void {
    this.sum.update(this.buf.subarray(0, this.used));
    writeAll(fd, this.buf.subarray(0, this.used), this.pos);
    this.pos += this.used;
    this.used = 0;
  }

  private live(): number {
    if (this.fd === null) throw new ClozeError('E_STATE', `Expected an open shard writer for '${this.path}' but received a finished one`);
    return this.fd;
  }
}

/** A shard opened for positioned reads. Holds the document table (8 bytes per document) in memory. */
export class Shard {
  readonly path: string;
  readonly header: ShardHeader;
  private fd: number | null;
  /** Start offset of every document, plus the token count at the end. */
  readonly docStarts: Float64Array;
  private scratch: Buffer = Buffer.alloc(0);

  private constructor(path: string, fd: number, header: ShardHeader, docStarts: Float64Array) {
    this.path = path;
    this.fd = fd;
    this.header = header;
    this.docStarts = docStarts;
  }

  /**
   * Opens and validates a shard: its header, size, document table, checksum and every token id (one read of the
   * whole file). Every inconsistency is an E_IO error naming the file.
   */
  static open(path: string, opts: OpenShardOptions = {}): Shard {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      throw new ClozeError('E_IO', `Expected an existing shard file for shard but received '${path}'`);
    }
    try {
      const size = fstatSync(fd).size;
      const head = Buffer.alloc(SHARD_HEADER_BYTES);
      const n = readSync(fd, head, 0, SHARD_HEADER_BYTES, 0);
      const header = decodeHeader(head.subarray(0, n), path);
      if (opts.vocabSize !== undefined && header.vocabSize > opts.vocabSize) {
        throw new ClozeError('E_IO', `Expected token ids of a vocabulary of at most ${opts.vocabSize} (the tokenizer's) for shard '${path}' but received a shard of vocabulary ${header.vocabSize}`);
      }
      const want = SHARD_HEADER_BYTES + header.tokenCount * header.tokenBytes + 8 * (header.docCount + 1);
      if (size !== want) {
        throw new ClozeError('E_IO', `Expected ${want} bytes for shard '${path}' but received ${size}`);
      }
      const sum = createHash('sha256');
      checkTokens(fd, header, path, sum);
      const table = Buffer.alloc(8 * (header.docCount + 1));
      readAll(fd, table, SHARD_HEADER_BYTES + header.tokenCount * header.tokenBytes);
      sum.update(table);
      const got = sum.digest('hex').slice(0, 16);
      if (got !== header.checksum) {
        throw new ClozeError('E_IO', `Expected checksum ${header.checksum} for shard '${path}' but received ${got} (the file is corrupt)`);
      }
      const starts = new Float64Array(header.docCount + 1);
      for (let i = 0; i < starts.length; i++) starts[i] = Number(table.readBigUInt64LE(8 * i));
      for (let i = 1; i < starts.length; i++) {
        if (!(starts[i]! > starts[i - 1]!) || starts[i]! > header.tokenCount) {
          throw new ClozeError('E_IO', `Expected increasing document offsets for shard '${path}' but received ${starts[i - 1]} then ${starts[i]} at document ${i}`);
        }
      }
      if (starts[0] !== 0 || starts[header.docCount] !== header.tokenCount) {
        throw new ClozeError('E_IO', `Expected a document table from 0 to ${header.tokenCount} for shard '${path}' but received ${starts[0]} to ${starts[header.docCount]}`);
      }
      return new Shard(path, fd, header, starts);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Reads tokens [start, start + count) into `out` (at `outOffset`). */
  read(start: number, count: number, out: Int32Array, outOffset = 0): void {
    const fd = this.live();
    const { tokenBytes: tb, tokenCount } = this.header;
    if (start < 0 || count < 0 || start + count > tokenCount) {
      throw new ClozeError('E_INDEX', `Expected a token range within [0, ${tokenCount}] for read but received [${start}, ${start + count})`);
    }
    if (this.scratch.length < count * tb) this.scratch = Buffer.alloc(Math.max(count * tb, 4096));
    readAll(fd, this.scratch.subarray(0, count * tb), SHARD_HEADER_BYTES + start * tb);
    for (let i = 0; i < count; i++) {
      out[outOffset + i] = tb === 2 ? this.scratch.readUInt16LE(2 * i) : this.scratch.readInt32LE(4 * i);
    }
  }

  /** Tokens of document `d`. */
  document(d: number): Int32Array {
    checkInt(d, 'document', 0, this.header.docCount - 1);
    const s = this.docStarts[d]!;
    const out = new Int32Array(this.docStarts[d + 1]! - s);
    this.read(s, out.length, out);
    return out;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private live(): number {
    if (this.fd === null) throw new ClozeError('E_STATE', `Expected an open shard for '${this.path}' but received a closed one`);
    return this.fd;
  }
}

/** Reads every token once (in 1 MiB pieces), hashing the bytes and checking each id against the vocabulary. */
function checkTokens(fd: number, header: ShardHeader, path: string, sum: Hash): void {
  const { tokenBytes: tb, tokenCount, vocabSize } = header;
  const piece = Buffer.alloc(Math.min(1 << 20, Math.max(tb, tokenCount * tb)));
  const perPiece = Math.floor(piece.length / tb);
  for (let start = 0; start < tokenCount; start += perPiece) {
    const count = Math.min(perPiece, tokenCount - start);
    const bytes = piece.subarray(0, count * tb);
    readAll(fd, bytes, SHARD_HEADER_BYTES + start * tb);
    sum.update(bytes);
    for (let i = 0; i < count; i++) {
      const v = tb === 2 ? bytes.readUInt16LE(2 * i) : bytes.readInt32LE(4 * i);
      if (v < 0 || v >= vocabSize) {
        throw new ClozeError('E_IO', `Expected token ids in [0, ${vocabSize - 1}] for shard '${path}' but received ${v} at token ${start + i} (the file is corrupt)`);
      }
    }
  }
}

/** Reads just the header, or returns null when the file is missing or not a valid shard. */
export function peekShardHeader(path: string): ShardHeader | null {
  try {
    const s = Shard.open(path);
    s.close();
    return s.header;
  } catch {
    return null;
  }
}

function encodeHeader(h: ShardHeader): Buffer {
  const b = Buffer.alloc(SHARD_HEADER_BYTES);
  b.write(SHARD_MAGIC, 0, 'latin1');
  b.writeUInt32LE(h.version, 8);
  b.writeUInt32LE(h.tokenBytes, 12);
  b.writeUInt32LE(h.vocabSize, 16);
  b.writeBigUInt64LE(BigInt(h.tokenCount), 24);
  b.writeBigUInt64LE(BigInt(h.docCount), 32);
  Buffer.from(h.hash, 'hex').copy(b, 40);
  Buffer.from(h.checksum, 'hex').copy(b, 72);
  return b;
}

function decodeHeader(b: Buffer, path: string): ShardHeader {
  if (b.length < SHARD_HEADER_BYTES) {
    throw new ClozeError('E_IO', `Expected a ${SHARD_HEADER_BYTES}-byte header for shard '${path}' but received ${b.length} bytes`);
  }
  const magic = b.subarray(0, 8).toString('latin1');
  if (magic !== SHARD_MAGIC) {
    throw new ClozeError('E_IO', `Expected magic '${SHARD_MAGIC}' for shard '${path}' but received ${JSON.stringify(magic)}`);
  }
  const version = b.readUInt32LE(8);
  if (version !== SHARD_VERSION) {
    throw new ClozeError('E_IO', `Expected version ${SHARD_VERSION} for shard '${path}' but received ${version}`);
  }
  const tokenBytes = b.readUInt32LE(12);
  if (tokenBytes !== 2 && tokenBytes !== 4) {
    throw new ClozeError('E_IO', `Expected 2 or 4 bytes per token for shard '${path}' but received ${tokenBytes}`);
  }
  const vocabSize = b.readUInt32LE(16);
  const tokenCount = Number(b.readBigUInt64LE(24));
  const docCount = Number(b.readBigUInt64LE(32));
  if (!Number.isSafeInteger(tokenCount) || !Number.isSafeInteger(docCount) || vocabSize === 0) {
    throw new ClozeError('E_IO', `Expected valid counts for shard '${path}' but received vocab ${vocabSize}, ${tokenCount} tokens, ${docCount} documents`);
  }
  if (tokenBytes === 2 && vocabSize > 65536) {
    throw new ClozeError('E_IO', `Expected 4 bytes per token for a vocabulary of ${vocabSize} for shard '${path}' but received 2`);
  }
  return { version, tokenBytes, vocabSize, tokenCount, docCount, hash: b.subarray(40, 72).toString('hex'), checksum: b.subarray(72, 80).toString('hex') };
}

function writeAll(fd: number, b: Buffer, pos: number): void {
  for (let off = 0; off < b.length;) off += writeSync(fd, b, off, b.length - off, pos + off);
}

function readAll(fd: number, b: Buffer, pos: number): void {
  for (let off = 0; off < b.length;) {
    const n = readSync(fd, b, off, Math.min(b.length - off, 1 << 30), pos + off);
    if (n === 0) throw new ClozeError('E_IO', `Expected ${b.length} bytes at offset ${pos} but received ${off} (file truncated)`);
    off += n;
  }
}
