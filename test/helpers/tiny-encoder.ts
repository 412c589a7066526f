/**
 * A tiny pre-trained text encoder for fine-tuning and attack tests: a 200-token
 * WordPiece vocabulary and 60 MLM steps on the fixture corpus, in `root/pre`.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { pretrain } from '../../src/tasks/pretrain.js';
import { FIXTURE_TOKENIZER, writeFixtureCorpus } from './fixture-corpus.js';

export async function pretrainTinyEncoder(root: string): Promise<string> {
  const corpus = writeFixtureCorpus(join(root, 'data'));
  // The committed fixture, not a tokenizer trained here: WordPiece training is not reproducible run to run.
  copyFileSync(FIXTURE_TOKENIZER, join(root, 'tokenizer.json'));
  const pre = join(root, 'pre');
  await pretrain({ data: corpus, tokenizer: join(root, 'tokenizer.json'), out: pre, maxSteps: 60, lr: 1e-3, maxLength: 32, batchSize: 8, evalEvery: 60, evalBatches: 2 }, { output: null });
  return pre;
}
