/**
 * Durable file primitives for checkpoints: write-then-fsync, atomic rename
 * into place, directory fsync, and unique temp names.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** `<target>.tmp-<pid>-<random>`: unique per process and call, recognisable for cleanup. */
export function tempName(target: string): string {
  return `${target}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/** Writes all of `bytes` at the fd's current position, in chunks below the 2 GiB write limit. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  const chunk = 1 << 26;
  for (let off = 0; off < bytes.length; ) {
    off += fs.writeSync(fd, bytes, off, Math.min(chunk, bytes.length - off));
  }
}

/** Flushes a directory entry table to disk; a no-op where directories cannot be opened (Windows). */
export function fsyncDir(dir: string): void {
  let fd: number;
  try {
    fd = fs.openSync(dir, 'r');
  } catch {
    return;
  }
  try {
    fs.fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic there.
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Writes `target` atomically: `fill(fd)` writes a temp file beside it, which is
 * fsynced and renamed over `target`, then the directory is fsynced. On any
 * error the temp file is removed and `target` is left as it was.
 */
export function writeFileAtomic(target: string, fill: (fd: number) => void): void {
  const tmp = tempName(target);
  const fd = fs.openSync(tmp, 'wx');
  try {
    try {
      fill(fd);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, target);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fsyncDir(path.dirname(target));
}

/** Writes a small file and fsyncs it (inside a temp directory that is renamed as a whole later). */
export function writeFileSynced(target: string, data: string | Uint8Array): void {
  const fd = fs.openSync(target, 'wx');
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
