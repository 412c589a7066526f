/**
 * A small generated English corpus for trainer tests. Each subject comes with
 * its own verb, object and ending, in random order of sentences, so a masked
 * word is predictable from the rest of its sentence and a tiny model's accuracy can rise well above chance.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../../src/index.js';

/** trainWordPiece({ vocabSize: 200 }) on writeFixtureCorpus(dir, 400): 182 tokens (all it learned), trained once and committed (training is not reproducible run to run). */
export const FIXTURE_TOKENIZER = join(__dirname, '..', 'fixtures', 'tokenizer', 'fixture-wordpiece-200.json');

/**
 * Copies FIXTURE_TOKENIZER to dir/tokenizer.json (the name a tokenizer has in a run or an export) and returns that
 * path: the trainer tests' tokenizer, the same every run, where one trained per run made their data differ.
 */
export function fixtureTokenizerIn(dir: string): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'tokenizer.json');
  copyFileSync(FIXTURE_TOKENIZER, path);
  return path;
}

const subjects = ['the cat', 'a dog', 'my friend', 'the teacher', 'a bird', 'the child', 'our neighbour', 'the farmer'];
const verbs = ['sees', 'likes', 'finds', 'follows', 'helps', 'watches', 'calls', 'meets'];
const objects = ['the ball', 'a red apple', 'the old house', 'a small boat', 'the green field', 'a quiet river'];
const tails = ['every morning', 'after school', 'in the garden', 'near the lake', 'before dinner', 'on sunday'];

/** Writes `lines` sentences (one document per line) to dir/corpus.txt and returns its path. */
export function writeFixtureCorpus(dir: string, lines = 600, seed = 1): string {
  mkdirSync(dir, { recursive: true });
  const rng = new Rng(seed);
  const out: string[] = [];
  for (let i = 0; i < lines; i++) {
    const k = rng.int(subjects.length);
    out.push(`${subjects[k]} ${verbs[k]} ${objects[k % objects.length]} ${tails[k % tails.length]} .`);
  }
  const path = join(dir, 'corpus.txt');
  writeFileSync(path, `${out.join('\n')}\n`);
  return path;
}
