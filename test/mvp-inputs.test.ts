/**
 * MVP's tokenised inputs: template placement ([SEP]-prefixed after the input,
 * otherwise right after [CLS]), the [MASK] row of every (example, template),
 * truncation that never cuts a template, sentence pairs with [SEP] and token
 * types as BERT makes them, verbalizer word ids (multi-token words dropped
 * with a warning, a class left empty an error), and mlp-ft's plain inputs.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { isPacked } from '../src/models/bert/batch.js';
import { loadTokenizer, type TextTokenizer } from '../src/data/tokenizer.js';
import {
  buildSequence, mvpInputs, plainInputs, tokenizeTemplates, verbalizerWordIds,
} from '../src/tasks/finetune/mvp-inputs.js';

const WORDS = ['the', 'statement', 'is', 'sentiment', 'of', 'this', 'a', '.', 'great', 'bad', 'good', 'cat', 'sat', 'on', 'mat', 'dog', 'ran', 'answer', 'question', 'un', '##good'];
let tok: TextTokenizer;
let id: (w: string) => number;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cloze-mvp-'));
  writeFileSync(join(dir, 'vocab.txt'), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...WORDS].join('\n') + '\n');
  tok = await loadTokenizer(join(dir, 'vocab.txt'));
  id = (w) => ({ '[CLS]': 2, '[SEP]': 3, '[MASK]': 4, '[PAD]': 0 } as Record<string, number>)[w] ?? 5 + WORDS.indexOf(w);
});
const ids = (s: string): number[] => s.split(' ').map((w) => id(w));

describe('templates', () => {
  it('go right after [CLS], or after the input when they start with [SEP] (the marker is not a token)', async () => {
    const [front, back] = await tokenizeTemplates(tok, ['Sentiment of the statement is [MASK] .', '[SEP] The statement is [MASK]']);
    expect(front!.after).toBe(false);
    expect(back!.after).toBe(true);
    const a = Int32Array.from(ids('the cat sat'));
    const f = buildSequence(tok, a, null, front!, 32);
    expect(Array.from(f.ids)).toEqual(ids('[CLS] sentiment of the statement is [MASK] . the cat sat [SEP]'));
    expect(f.maskPos).toBe(6);
    const b = buildSequence(tok, a, null, back!, 32);
    expect(Array.from(b.ids)).toEqual(ids('[CLS] the cat sat the statement is [MASK] [SEP]'));
    expect(b.maskPos).toBe(7);
    expect(Array.from(b.types)).toEqual(new Array(9).fill(0));
  });

  it('without [MASK], or with two, are errors naming the template', async () => {
    await expect(tokenizeTemplates(tok, ['the statement is'])).rejects.toThrow(/one \[MASK\] in templates\[0\].*"the statement is" with no \[MASK\]/);
    await expect(tokenizeTemplates(tok, ['this', '[MASK] is [MASK]'])).rejects.toThrow(/templates\[0\]/);
    await expect(tokenizeTemplates(tok, ['[MASK] is [MASK]'])).rejects.toThrow(/with 2 \[MASK\]s/);
    await expect(tokenizeTemplates(tok, [])).rejects.toThrow(/at least one template/);
  });

  it('are never truncated: the input is, from the right', async () => {
    const [front, back] = await tokenizeTemplates(tok, ['Sentiment of the statement is [MASK] .', '[SEP] The statement is [MASK]']);
    const a = Int32Array.from(ids('the cat sat on the mat the dog ran'));
    const f = buildSequence(tok, a, null, front!, 12);
    expect(Array.from(f.ids)).toEqual(ids('[CLS] sentiment of the statement is [MASK] . the cat sat [SEP]'));
    const b = buildSequence(tok, a, null, back!, 8);
    expect(Array.from(b.ids)).toEqual(ids('[CLS] the cat the statement is [MASK] [SEP]'));
    expect(b.ids[b.maskPos]).toBe(tok.maskId);
    // No room left for the input: an error, not a cut template.
    expect(() => buildSequence(tok, a, null, front!, 9)).toThrow(/maxLength.*takes 7 tokens/);
  });

  it('sentence pairs: [SEP] between, types 1 on the second segment (and a template after it), the longer cut first', async () => {
    const [front, back] = await tokenizeTemplates(tok, ['Answer of the question is [MASK]', '[SEP] [MASK]']);
    const a = Int32Array.from(ids('the cat sat on the mat'));
    const b = Int32Array.from(ids('a dog'));
    const f = buildSequence(tok, a, b, front!, 13);
    // 13 − 3 specials − 6 template tokens = 4 for the input: a is cut to 2, b keeps its 2.
    expect(Array.from(f.ids)).toEqual(ids('[CLS] answer of the question is [MASK] the cat [SEP] a dog [SEP]'));
    expect(Array.from(f.types)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
    const k = buildSequence(tok, a, b, back!, 32);
    expect(Array.from(k.ids)).toEqual(ids('[CLS] the cat sat on the mat [SEP] a dog [MASK] [SEP]'));
    expect(Array.from(k.types)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1]);
    expect(k.maskPos).toBe(10);
  });
});

describe('mvpInputs', () => {
  it('makes one sequence per (example, template), example-major, with each [MASK] row', async () => {
    const templates = await tokenizeTemplates(tok, ['this is [MASK]', '[SEP] [MASK]']);
    const { batch, maskRows } = await mvpInputs(tok, [{ text: 'the cat sat on the mat' }, { text: 'a dog' }], templates, 32);
    const [B, L] = batch.ids.shape as [number, number];
    expect(B).toBe(4);
    const flat = batch.ids.toArray();
    const rows = Array.from(maskRows.toArray());
    expect(rows.map((r) => flat[r])).toEqual([4, 4, 4, 4]);
    expect(rows.map((r) => Math.floor(r / L))).toEqual([0, 1, 2, 3]);
    expect(Array.from(flat.slice(3 * L, 3 * L + 5))).toEqual(ids('[CLS] a dog [MASK] [SEP]'));
    if (isPacked(batch)) throw new Error('expected a padded MVP batch');
    expect(Array.from(batch.attentionMask!.toArray().slice(3 * L, 4 * L))).toEqual([1, 1, 1, 1, 1, ...new Array(L - 5).fill(0)]);
  });

  it('rejects a pair batch where some rows lack text_pair', async () => {
    const templates = await tokenizeTemplates(tok, ['[MASK]']);
    await expect(mvpInputs(tok, [{ text: 'a', textPair: 'b' }, { text: 'c' }], templates, 16)).rejects.toThrow(/text_pair.*examples\[1\]/);
  });
});

describe('verbalizerWordIds', () => {
  it('keeps single-token words, drops others with a warning, and maps each word to its class', async () => {
    const warnings: string[] = [];
    const v = await verbalizerWordIds(tok, { neg: ['bad', 'ungood'], pos: ['good', 'great'] }, ['neg', 'pos'], (m) => warnings.push(m));
    expect(Array.from(v.words)).toEqual([id('bad'), id('good'), id('great')]);
    expect(Array.from(v.classOf)).toEqual([0, 1, 1]);
    expect(v.kept).toEqual([['bad'], ['good', 'great']]);
    expect(warnings).toEqual(['verbalizer word "ungood" of label "neg" is 2 tokens, not one: dropped']);
  });
  it('errors on a class left without words, a missing label and a foreign one', async () => {
    const quiet = (): void => {};
    await expect(verbalizerWordIds(tok, { neg: ['ungood'], pos: ['good'] }, ['neg', 'pos'], quiet, 'labels.json'))
      .rejects.toThrow(/single-token word for label "neg" in labels.json/);
    await expect(verbalizerWordIds(tok, { pos: ['good'] }, ['neg', 'pos'], quiet)).rejects.toThrow(/words for label "neg"/);
    await expect(verbalizerWordIds(tok, { neg: ['bad'], pos: ['good'], meh: ['a'] }, ['neg', 'pos'], quiet)).rejects.toThrow(/"meh"/);
  });
});

describe('plainInputs (mlp-ft)', () => {
  it('makes [CLS] a [SEP] b [SEP] with token types, truncated to maxLength', async () => {
    const batch = await plainInputs(tok, [{ text: 'the cat sat on the mat', textPair: 'a dog ran' }, { text: 'a', textPair: 'dog' }], 8);
    expect(batch.ids.shape).toEqual([2, 8]);
    expect(Array.from(batch.ids.toArray().slice(0, 8))).toEqual(ids('[CLS] the cat sat [SEP] a dog [SEP]'));
    expect(Array.from(batch.tokenTypeIds!.toArray().slice(0, 8))).toEqual([0, 0, 0, 0, 0, 1, 1, 1]);
    expect(Array.from(batch.ids.toArray().slice(8, 13))).toEqual(ids('[CLS] a [SEP] dog [SEP]'));
  });
});
