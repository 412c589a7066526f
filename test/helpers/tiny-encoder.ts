/**
 * A tiny pre-trained text encoder for fine-tuning and attack tests: the committed
 * fixture WordPiece vocabulary (182 tokens) and 60 MLM steps on the fixture corpus, in `root/pre`.
 */
import { join } from 'node:path';
import { pretrain } from '../../src/tasks/pretrain.js';
import { fixtureTokenizerIn, writeFixtureCorpus } from './fixture-corpus.js';

export async function pretrainTinyEncoder(root: string): Promise<string> {
  const corpus = writeFixtureCorpus(join(root, 'data'));
  const tokenizer = fixtureTokenizerIn(root);
  const pre = join(root, 'pre');
  await pretrain({ data: corpus, tokenizer, out: pre, maxSteps: 60, lr: 1e-3, maxLength: 32, batchSize: 8, evalEvery: 60, evalBatches: 2 }, { output: null });
  return pre;
}
