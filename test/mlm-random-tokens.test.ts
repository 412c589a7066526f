/**
 * BERT's random replacements draw from the whole vocabulary [0, V) by default, as google-research/bert's
 * create_pretraining_data.py (rng.randint(0, len(vocab_words) - 1)) and Hugging Face's
 * DataCollatorForLanguageModeling (torch.randint(len(tokenizer))) do; randomTokens 'non-special' leaves out
 * the five special tokens, as fairseq's MaskTokensDataset (RoBERTa) does. Checked on the trainer's MaskingPlan
 * over many draws, and through resume: a run saved before the setting existed drew from [5, V).
 */
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { scope } from '../src/autograd/mode.js';
import { loadTokenizer, type TextTokenizer } from '../src/data/tokenizer.js';
import type { PackedCorpus } from '../src/data/packing.js';
import { latestCheckpoint } from '../src/checkpoint/checkpoint.js';
import { MaskingPlan, randomTokenLow } from '../src/tasks/mlm/masking-plan.js';
import { pretrain } from '../src/tasks/pretrain.js';
import { fixtureTokenizerIn, writeFixtureCorpus } from './helpers/fixture-corpus.js';
import { sdTol } from './helpers/mlm-batch.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-random-tokens-'));
let corpus = '';
let tokenizer = '';
let tok: TextTokenizer;
const B = 128, L = 64;

beforeAll(async () => {
  corpus = writeFixtureCorpus(join(root, 'data'));
  tokenizer = fixtureTokenizerIn(root);
  tok = await loadTokenizer(tokenizer);
});

/** Rows of [CLS] ordinary ids [SEP], no padding. */
function rowsOfWords(): Int32Array {
  const ids = new Int32Array(B * L);
  for (let b = 0; b < B; b++) {
    for (let l = 0; l < L; l++) ids[b * L + l] = 5 + ((b * 31 + l * 7) % (tok.vocabSize - 5));
    ids[b * L] = tok.clsId;
    ids[b * L + L - 1] = tok.sepId;
  }
  return ids;
}

/** The corrupted ids and the selected positions of one plan batch. */
function build(randomTokens: string | undefined, corruption: { maskProb: number; randomProb: number } | null, seed: number, ratio = 1) {
  const plan = new MaskingPlan({ maskRatio: ratio, masking: 'token', ...(randomTokens ? { randomTokens } : {}) }, tok, {} as PackedCorpus, false, corruption);
  return scope(() => {
    const mb = plan.build({ ids: rowsOfWords(), attentionMask: new Int32Array(B * L).fill(1), shape: [B, L], indices: new Uint32Array(B) }, seed, 0);
    return { out: Int32Array.from(mb.batch.ids.toArray()), rows: Int32Array.from(mb.batch.rows.toArray()) };
  });
}

describe('random replacements', () => {
  const allRandom = { maskProb: 0, randomProb: 1 };

  it('default: uniform over the whole vocabulary, so ids 0..4 appear at 5/V', () => {
    const { out, rows } = build(undefined, allRandom, 3);
    const n = rows.length;
    expect(n).toBe(B * (L - 2));
    let special = 0;
    for (const r of rows) if (out[r]! < 5) special++;
    const p = 5 / tok.vocabSize;
    expect(Math.abs(special / n - p)).toBeLessThan(sdTol(p, n));
    expect(special).toBeGreaterThan(0);
    // And each of them: [MASK] itself can be drawn, as in BERT and Hugging Face.
    for (let id = 0; id < 5; id++) expect(rows.some((r) => out[r] === id)).toBe(true);
  });

  it("non-special: never an id below 5, the rest uniform over [5, V)", () => {
    const { out, rows } = build('non-special', allRandom, 3);
    const n = rows.length;
    const K = tok.vocabSize - 5;
    const counts = new Array<number>(K).fill(0);
    for (const r of rows) {
      expect(out[r]!).toBeGreaterThanOrEqual(5);
      counts[out[r]! - 5]!++;
    }
    const e = n / K;
    const chi2 = counts.reduce((s, c) => s + (c - e) ** 2 / e, 0);
    // Wilson–Hilferty 0.999 quantile of chi-square with K − 1 degrees of freedom.
    const df = K - 1, z = 3.0902;
    expect(chi2).toBeLessThan(df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3);
  });

  it("BERT's 80/10/10: the range changes the replacement ids only, not which positions are masked, replaced or kept", () => {
    const a = build(undefined, null, 9, 0.15);
    const b = build('non-special', null, 9, 0.15);
    const again = build(undefined, null, 9, 0.15);
    expect(again.out).toEqual(a.out);
    expect(b.rows).toEqual(a.rows);
    const src = rowsOfWords();
    let replaced = 0;
    for (const r of a.rows) {
      // [MASK] in one iff [MASK] in the other; kept in one iff kept in the other (a draw equal to the original aside).
      expect(a.out[r] === tok.maskId).toBe(b.out[r] === tok.maskId);
      if (a.out[r] !== tok.maskId && a.out[r] !== src[r]) replaced++;
    }
    expect(replaced / a.rows.length).toBeGreaterThan(0.05);
  });

  it("non-special needs the specials at ids 0..4: a BERT vocab.txt layout is refused, naming randomTokens", () => {
    const bertVocab = { padId: 0, unkId: 100, clsId: 101, sepId: 102, maskId: 103 };
    expect(randomTokenLow(bertVocab, 'all')).toBe(0);
    expect(() => randomTokenLow(bertVocab, 'non-special')).toThrow(/special tokens at ids 0\.\.4 for randomTokens 'non-special'.*\[UNK\] 100/);
    expect(randomTokenLow(tok, 'non-special')).toBe(5);
  });

  it('a run saved before randomTokens existed (it drew from [5, V)) resumes exactly, and only, with non-special', async () => {
    const cfg = { data: corpus, tokenizer, maxLength: 32, batchSize: 8, evalFraction: 0, maxSteps: 6, saveEvery: 100, logEvery: 1, threads: 0 };
    const straight: number[] = [];
    await pretrain({ ...cfg, randomTokens: 'non-special', out: join(root, 'straight') }, { output: null, onStep: (s) => straight.push(s.loss) });
    const whole: number[] = [];
    await pretrain({ ...cfg, out: join(root, 'whole') }, { output: null, onStep: (s) => whole.push(s.loss) });
    // The setting reaches training: the same seed with the whole vocabulary gives other losses.
    expect(whole).not.toEqual(straight);

    const out = join(root, 'legacy');
    const resumed: number[] = [];
    const ac = new AbortController();
    await pretrain({ ...cfg, randomTokens: 'non-special', out }, {
      output: null, signal: ac.signal, onStep: (s) => { resumed.push(s.loss); if (s.step === 3) ac.abort(); },
    });
    // As a checkpoint written before the setting existed: no randomTokens in its saved run settings.
    const state = join(latestCheckpoint(out)!, 'trainer_state.json');
    const saved = JSON.parse(readFileSync(state, 'utf8')) as { extra: { run: Record<string, unknown> } };
    expect(saved.extra.run.randomTokens).toBe('non-special');
    delete saved.extra.run.randomTokens;
    writeFileSync(state, JSON.stringify(saved));
    const marker = join(latestCheckpoint(out)!, 'complete');
    const complete = JSON.parse(readFileSync(marker, 'utf8')) as { files: Record<string, number> };
    complete.files['trainer_state.json'] = statSync(state).size;
    writeFileSync(marker, JSON.stringify(complete));
    await expect(pretrain({ ...cfg, out, resume: true }, { output: null })).rejects.toThrow(/Expected randomTokens "non-special" .* but received "all"/);
    const r = await pretrain({ ...cfg, randomTokens: 'non-special', out, resume: true }, { output: null, onStep: (s) => resumed.push(s.loss) });
    expect(r.step).toBe(6);
    expect(resumed).toEqual(straight);
  });
});
