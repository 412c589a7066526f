/**
 * The held-out MLM evaluation masks at its own ratio (evalMaskRatio), not the training one: MosaicBERT's recipe
 * trains at 30% and evaluates at 15% (mosaicml/examples, bert yamls/main/mosaic-bert-base-uncased.yaml). Checked
 * through the trainer and `cloze eval`: the masked-token counts of an evaluation are recounted from the held-out
 * sequences themselves (selection masks round(ratio·n) of the n non-special tokens of each sequence).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from '../src/data/tokenizer.js';
import { openShard } from '../src/data/prepare.js';
import { PackedCorpus } from '../src/data/packing.js';
import { evaluateMlmCheckpoint } from '../src/tasks/mlm/evaluate-checkpoint.js';
import { pretrain, type EvalResult } from '../src/tasks/pretrain.js';
import { fixtureTokenizerIn, writeFixtureCorpus } from './helpers/fixture-corpus.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-eval-ratio-'));
let corpus = '';
let tokenizer = '';
const base = { maxLength: 32, batchSize: 8, evalBatches: 3, evalFraction: 0.2, maxSteps: 2, evalEvery: 2, saveEvery: 2, logEvery: 1, threads: 0 };

beforeAll(async () => {
  corpus = writeFixtureCorpus(join(root, 'data'));
  tokenizer = fixtureTokenizerIn(root);
});

/** Σ over the first `batches` held-out batches' sequences of round(ratio · non-special tokens), from the run's shard. */
async function expectedMasked(out: string, ratio: number, batches: number): Promise<number> {
  const tok = await loadTokenizer(join(out, 'tokenizer.json'));
  const special = new Set([tok.padId, tok.clsId, tok.sepId, tok.maskId]);
  const packed = new PackedCorpus(openShard(join(out, 'corpus.shard'), { vocabSize: tok.vocabSize }),
    { clsId: tok.clsId, sepId: tok.sepId, padId: tok.padId }, { maxLength: base.maxLength, evalFraction: base.evalFraction, seed: 0 });
  let total = 0;
  let k = 0;
  for (const b of packed.batches('eval', base.batchSize)) {
    if (k++ >= batches) break;
    const [B, L] = b.shape;
    for (let r = 0; r < B!; r++) {
      let n = 0;
      for (let l = 0; l < L!; l++) if (!special.has(b.ids[r * L! + l]!)) n++;
      total += Math.round(ratio * n);
    }
  }
  return total;
}

function savedRun(checkpoint: string): Record<string, unknown> {
  return (JSON.parse(readFileSync(join(checkpoint, 'trainer_state.json'), 'utf8')) as { extra: { run: Record<string, unknown> } }).extra.run;
}

describe('evalMaskRatio', () => {
  it("mosaic-bert-mini trains at its recipe's 30% and evaluates at its 15%, in the trainer and in cloze eval", async () => {
    const out = join(root, 'mosaic');
    const evals: EvalResult[] = [];
    const r = await pretrain({ ...base, preset: 'mosaic-bert-mini', seed: 0, data: corpus, tokenizer, out }, { output: null, onEval: (e) => evals.push(e as EvalResult) });
    const run = savedRun(r.checkpoint!);
    expect(run.maskRatio).toBe(0.3);
    expect(run.evalMaskRatio).toBe(0.15);
    const at15 = await expectedMasked(out, 0.15, base.evalBatches);
    const at30 = await expectedMasked(out, 0.3, base.evalBatches);
    expect(at30).toBeGreaterThan(at15 * 1.5);
    expect(evals).toHaveLength(1);
    expect(evals[0]!.maskedTokens).toBe(at15);
    expect((evals[0] as EvalResult & { maskRatio: number }).maskRatio).toBe(0.15);
    const metrics = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string; maskRatio?: number });
    expect(metrics.find((l) => l.kind === 'eval')!.maskRatio).toBe(0.15);

    // cloze eval of the run: its recorded evalMaskRatio by default, the flag's when given.
    const byDefault = await evaluateMlmCheckpoint({ checkpoint: out, maxBatches: base.evalBatches });
    expect(byDefault.maskRatio).toBe(0.15);
    expect(byDefault.maskedTokens).toBe(at15);
    const flagged = await evaluateMlmCheckpoint({ checkpoint: out, maxBatches: base.evalBatches, evalMaskRatio: 0.3 });
    expect(flagged.maskedTokens).toBe(at30);
    for (const bad of [0, 1, 1.5, -0.1]) {
      await expect(evaluateMlmCheckpoint({ checkpoint: out, evalMaskRatio: bad })).rejects.toThrow(/Expected a number in \(0, 1\) for evalMaskRatio/);
    }
  });

  it('a preset without a recipe evaluates at maskRatio unless evalMaskRatio is given', async () => {
    const plain: EvalResult[] = [];
    const a = join(root, 'plain');
    await pretrain({ ...base, maskRatio: 0.4, seed: 0, data: corpus, tokenizer, out: a }, { output: null, onEval: (e) => plain.push(e as EvalResult) });
    expect(plain[0]!.maskedTokens).toBe(await expectedMasked(a, 0.4, base.evalBatches));

    const own: EvalResult[] = [];
    const b = join(root, 'own');
    const r = await pretrain({ ...base, maskRatio: 0.4, evalMaskRatio: 0.1, seed: 0, data: corpus, tokenizer, out: b }, { output: null, onEval: (e) => own.push(e as EvalResult) });
    expect(own[0]!.maskedTokens).toBe(await expectedMasked(b, 0.1, base.evalBatches));
    expect(savedRun(r.checkpoint!).evalMaskRatio).toBe(0.1);
    expect((await evaluateMlmCheckpoint({ checkpoint: b, maxBatches: base.evalBatches })).maskedTokens).toBe(own[0]!.maskedTokens);
  });

  it('refuses an evalMaskRatio outside (0, 1), naming the field', async () => {
    for (const bad of [0, 1]) {
      await expect(pretrain({ ...base, evalMaskRatio: bad, data: corpus, tokenizer, out: join(root, `bad-${bad}`) }, { output: null }))
        .rejects.toThrow(`Expected a number in (0, 1) for evalMaskRatio but received ${bad}`);
    }
  });
});
