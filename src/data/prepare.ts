/**
 * Tokenizes a corpus once into a cached shard beside the run. The shard's
 * header records a hash of the tokenizer, the reader options and every source
 * file's path, size and mtime; a shard whose hash differs is rebuilt.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { checkInt } from '../validate.js';
import { checkCorpusOptions, readDocuments, type CorpusOptions } from './documents.js';
import { Shard, ShardWriter, SHARD_VERSION, peekShardHeader, type ShardHeader } from './shard.js';
import { DEFAULT_EXTENSIONS, listCorpusFiles } from './sources.js';
import type { TextTokenizer } from './tokenizer.js';

export interface PrepareOptions extends CorpusOptions {
  /** Directory for the shard (created if needed), typically the run directory. */
  cacheDir: string;
  /** File name without extension; default 'corpus' (→ corpus.shard). */
  name?: string;
  /** Documents sent to the tokenizer at once; default 256. */
  batchDocs?: number;
}

export interface PreparedShard {
  path: string;
  header: ShardHeader;
  /** False when an up-to-date shard was already there. */
  rebuilt: boolean;
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
  const existing = peekShardHeader(path);
  if (existing && existing.hash === hash) return { path, header: existing, rebuilt: false };

  const writer = new ShardWriter(path, tokenizer.vocabSize, hash);
  try {
    let texts: string[] = [];
    const flush = async (): Promise<void> => {
      for (const ids of await tokenizer.encodeBatch(texts)) writer.append(ids);
      texts = [];
    };
    for await (const doc of readDocuments(paths, opts)) {
      texts.push(doc.text);
      if (texts.length >= batchDocs) await flush();
    }
    await flush();
  } catch (e) {
    writer.abort();
    throw e;
  }
  return { path, header: writer.finish(), rebuilt: true };
}

/** Opens a prepared shard for reading. */
export function openShard(path: string): Shard {
  return Shard.open(path);
}
