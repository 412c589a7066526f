/** Expands corpus paths (files and directories) into a sorted list of files. */
import { readdirSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import { ClozeError } from '../errors.js';

export const DEFAULT_EXTENSIONS: readonly string[] = ['.txt', '.jsonl'];

/**
 * Files named by `paths`, in order; a directory contributes every file below it
 * (recursively) whose extension is in `extensions`, sorted by path. A file named
 * directly is always kept, whatever its extension.
 */
export function listCorpusFiles(paths: string | readonly string[], extensions: readonly string[] = DEFAULT_EXTENSIONS): string[] {
  const list = typeof paths === 'string' ? [paths] : paths;
  if (list.length === 0) throw new ClozeError('E_VALUE', 'Expected at least one path for corpus but received []');
  const exts = new Set(extensions.map((e) => e.toLowerCase()));
  const out: string[] = [];
  for (const p of list) {
    const abs = resolve(p);
    let st;
    try {
      st = statSync(abs);
    } catch {
      throw new ClozeError('E_IO', `Expected an existing file or directory for corpus but received '${abs}'`);
    }
    if (st.isDirectory()) {
      const found = walk(abs).filter((f) => exts.has(extname(f).toLowerCase()));
      if (found.length === 0) {
        throw new ClozeError('E_IO', `Expected at least one ${[...exts].join(' or ')} file for corpus but received none in '${abs}'`);
      }
      out.push(...found);
    } else if (st.isFile()) {
      out.push(abs);
    } else {
      // A device (/dev/zero, /dev/urandom), FIFO or socket never ends or cannot be read twice (the tokenizer and the shard each read the corpus).
      throw new ClozeError('E_IO', `Expected a regular file or a directory for corpus but received '${abs}', a ${kindOf(st)}`);
    }
  }
  return out;
}

function kindOf(st: import('node:fs').Stats): string {
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  return 'special file';
}

function walk(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) files.push(...walk(full));
    else if (entry.isFile()) files.push(full);
  }
  return files.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}
