/**
 * Tokenizes a corpus once into a cached shard beside the run. The shard's
 * header records a hash of the tokenizer, the reader options and every source
 * file's path, size and mtime; a shard whose hash differs is rebuilt, and so
 * is one that fails its checksum or id check (with a message through `log`).
 * Lines of invalid UTF-8 replaced or skipped (encodingErrors) are reported
 * through `log` with their count.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkInt } from '../validate.js';
import { checkCorpusOptions, readDocuments, type CorpusOptions } from './documents.js';
import { newEncodingStats } from './lines.js';
import { Shard, ShardWriter, SHARD_VERSION, type OpenShardOptions, type ShardHeader } from './shard.js';
import { DEFAULT_EXTENSIONS, listCorpusFiles } from './sources.js';
import type { TextTokenizer } from './tokenizer.js';

export interface PrepareOptions extends CorpusOptions {
  /** Directory for the shard (created if needed), typically the run directory. */
  cacheDir: string;
  /** File name without extension; default 'corpus' (→ corpus.shard). */
  name?: string;
  /** Documents sent to the tokenizer at once; default 256. */
  batchDocs?: number;
  /** Where notes go (a rebuilt corrupt shard, lines replaced or skipped); default process.stderr. */
  log?: (message: string) => void;
}

export interface PreparedShard {
  path: string;
  header: ShardHeader;
  /** False when an up-to-date shard was already there. */
  rebuilt: boolean;
  /** Lines of invalid UTF-8 replaced or skipped while building (absent when none were, or when not rebuilt). */
  encoding?: { replaced: number; skipped: number; examples: string[] };
}

/** The hash a shard built from these inputs carries. */
export function corpusHash(paths: string | readonly string[], tokenizer: TextTokenizer, opts: CorpusOptions = {}): string {
  const files = listCorpusFiles(paths, opts.extensions ?? DEFAULT_EXTENSIONS).map((f) => {
    const st = statSync(f);
    return [f, st.size, st.mtimeMs];
  });
  const key = {
    shard: SHARD_VERSION,
    tokenizer: tokenizer.fingerprint(),
    format: opts.format ?? 'auto', mode: opts.mode ?? 'line', field: opts.field ?? 'text',
    ...(opts.encodingErrors && opts.encodingErrors !== 'strict' ? { encodingErrors: opts.encodingErrors } : {}),
    ...(opts.recordSeparator ? { recordSeparator: opts.recordSeparator } : {}),
    files,
  };
  return createHash('sha256').update(JSON.stringify(key)).digest('hex');
}

/** Returns the cached shard for `paths`, building it first when missing or stale. */
export async function prepareShard(paths: string | readonly string[], tokenizer: TextTokenizer, opts: PrepareOptions): Promise<PreparedShard> {
  checkCorpusOptions(opts);
  const { cacheDir, name = 'corpus', batchDocs = 256 } = opts;
  checkInt(batchDocs, 'batchDocs', 1);
  const hash = corpusHash(paths, tokenizer, opts);
  mkdirSync(cacheDir, { recursive: true });
  const path = join(cacheDir, `${name}.shard`);
  const log = opts.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  if (existsSync(path)) {
    try {
      const s = Shard.open(path, { vocabSize: tokenizer.vocabSize });
      s.close();
      if (s.header.hash === hash) return { path, header: s.header, rebuilt: false };
    } catch (e) {
      log(`${(e as Error).message}; rebuilding it from the corpus`);
    }
  }

  const writer = new ShardWriter(path, tokenizer.vocabSize, hash);
  const stats = newEncodingStats();
  try {
    let texts: string[] = [];
    const flush = async (): Promise<void> => {
      for (const ids of await tokenizer.encodeBatch(texts)) writer.append(ids);
      texts = [];
    };
    for await (const doc of readDocuments(paths, { ...opts, stats })) {
      texts.push(doc.text);
      if (texts.length >= batchDocs) await flush();
    }
    await flush();
  } catch (e) {
    writer.abort();
    throw e;
  }
  if (stats.replaced + stats.skipped > 0) {
    const what = stats.replaced > 0 ? `${stats.replaced} line${stats.replaced === 1 ? '' : 's'} of invalid UTF-8 read with U+FFFD` : `${stats.skipped} line${stats.skipped === 1 ? '' : 's'} of invalid UTF-8 skipped`;
    log(`corpus: ${what} (first: ${stats.examples.join(', ')})`);
  }
  const header = writer.finish();
  return stats.replaced + stats.skipped > 0 ? { path, header, rebuilt: true, encoding: stats } : { path, header, rebuilt: true };
}

/** Opens a prepared shard for reading (validated whole: checksum and token ids). */
export function openShard(path: string, opts: OpenShardOptions = {}): Shard {
  return Shard.open(path, opts);
}
