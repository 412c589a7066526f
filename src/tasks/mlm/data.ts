/**
 * The data of an MLM run: the corpus (the bundled WordNet one by default), the
 * tokenizer (a resumed run's, an --init-from directory's, a given file, or
 * WordPiece trained on the corpus), and the micro-batch cursor over the packed
 * sequences, each epoch in its own seeded order.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { EncodingErrors } from '../../data/lines.js';
import { loadTokenizer, trainWordPiece, type TextTokenizer } from '../../data/tokenizer.js';
import { PackedCorpus, type Batch } from '../../data/packing.js';
import { openShard, prepareShard } from '../../data/prepare.js';
import { ClozeError } from '../../errors.js';
import { packageRoot } from '../../native/loader.js';
import type { MlmRunConfig } from './config.js';

/** The bundled WordNet corpus (data/corpus/README.md). */
export function defaultCorpus(): string {
  return join(packageRoot(), 'data', 'corpus', 'default.txt');
}

export async function makeTokenizer(cfg: MlmRunConfig, data: string, outDir: string, resumeDir: string | null): Promise<TextTokenizer> {
  const saved = join(outDir, 'tokenizer.json');
  if (resumeDir && existsSync(join(resumeDir, 'tokenizer.json'))) return loadTokenizer(join(resumeDir, 'tokenizer.json'));
  if (cfg.initFrom) {
    for (const f of ['tokenizer.json', 'vocab.txt']) if (existsSync(join(cfg.initFrom, f))) return loadTokenizer(join(cfg.initFrom, f), { lowercase: cfg.lowercase });
    throw new ClozeError('E_IO', `Expected tokenizer.json or vocab.txt in ${cfg.initFrom} for initFrom but received neither`);
  }
  if (cfg.tokenizer) return loadTokenizer(cfg.tokenizer, { lowercase: cfg.lowercase });
  if (existsSync(saved)) return loadTokenizer(saved);
  const tok = await trainWordPiece(data, {
    vocabSize: cfg.vocabSize, lowercase: cfg.lowercase, mode: cfg.textMode as 'line' | 'paragraph', field: cfg.jsonlField,
    encodingErrors: cfg.encodingErrors as EncodingErrors, recordSeparator: cfg.recordSeparator,
  });
  tok.save(saved);
  return tok;
}

/**
 * The tokenizer and the packed corpus of a text run (MLM or ELECTRA): the
 * corpus tokenised once into a cached shard in the run directory, then packed
 * into sequences with its held-out split.
 */
export async function openTextCorpus(
  cfg: MlmRunConfig, data: string, outDir: string, resumeDir: string | null, progress: { note(s: string): void } | null,
): Promise<{ tok: TextTokenizer; corpus: PackedCorpus }> {
  const tok = await makeTokenizer(cfg, data, outDir, resumeDir);
  const shard = await prepareShard(data, tok, {
    cacheDir: outDir, mode: cfg.textMode as 'line' | 'paragraph', field: cfg.jsonlField,
    encodingErrors: cfg.encodingErrors as EncodingErrors, recordSeparator: cfg.recordSeparator, log: (m) => progress?.note(m),
  });
  const corpus = new PackedCorpus(openShard(shard.path, { vocabSize: tok.vocabSize }), { clsId: tok.clsId, sepId: tok.sepId, padId: tok.padId }, {
    maxLength: cfg.maxLength,
    evalFraction: cfg.evalFraction,
    seed: cfg.seed,
  });
  if (corpus.evalIndices.length === 0) progress?.note('no held-out split (evalFraction 0): held-out evaluation is off');
  return { tok, corpus };
}

/** The micro-batch with global index `k`: epochs follow each other, each in its own seeded order. */
export class BatchCursor {
  private epoch = -1;
  private order: Uint32Array = new Uint32Array(0);
  readonly perEpoch: number;
  constructor(
    private readonly corpus: PackedCorpus,
    private readonly batchSize: number,
  ) {
    this.perEpoch = Math.floor(corpus.trainIndices.length / batchSize);
    if (this.perEpoch === 0) {
      throw new ClozeError('E_VALUE', `Expected at least batchSize (${batchSize}) training sequences for batchSize but received ${corpus.trainIndices.length}; use a smaller batch or more data`);
    }
  }
  at(k: number): Batch {
    const epoch = Math.floor(k / this.perEpoch);
    if (epoch !== this.epoch) {
      this.epoch = epoch;
      this.order = this.corpus.trainOrder(epoch);
    }
    const first = (k % this.perEpoch) * this.batchSize;
    return this.corpus.batchOf(this.order.subarray(first, first + this.batchSize));
  }
}
