/**
 * ELECTRA replaced-token detection: the generator/discriminator pair and its
 * shared embeddings, the replaced labels, the discriminator loss against a
 * TypeScript reference, and `pretrain({ objective: 'electra' })` end to end
 * (learning, checkpoint names, exact resume, the non-finite stop).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backward, scope, tensor, type Tensor } from '../src/index.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { exportCheckpoint } from '../src/commands/export.js';
import { BertForSequenceClassification } from '../src/models/bert/classification.js';
import { electraConfigFromHf, hfElectraConfig } from '../src/models/electra/hf-config.js';
import { ElectraForPreTraining, replaceTokens } from '../src/models/electra/model.js';
import type { PaddedMlmBatch } from '../src/models/bert/batch.js';
import { pretrain, resolveRun, type StepInfo } from '../src/tasks/pretrain.js';
import { fixtureTokenizerIn, writeFixtureCorpus } from './helpers/fixture-corpus.js';
import { Rng } from '../src/rng.js';
import { loadTokenizer } from '../src/data/tokenizer.js';
import type { PackedCorpus } from '../src/data/packing.js';
import { ELECTRA_CORRUPTION } from '../src/tasks/mlm/electra.js';
import { MaskingPlan } from '../src/tasks/mlm/masking-plan.js';
import { evaluateMlmCheckpoint } from '../src/tasks/mlm/evaluate-checkpoint.js';
import { straightAndResumed } from './helpers/resume.js';

const V = 50;
const tiny = { discriminator: { vocabSize: V, hidden: 32, layers: 2, heads: 2, intermediate: 64, hiddenDropout: 0 } };

/** Two sequences of 8 tokens (the second with 3 pads), 4 masked rows ([MASK] = 4 at three of them, one unchanged). */
function maskedBatch(): PaddedMlmBatch {
  const orig = [2, 11, 12, 13, 14, 15, 16, 3, 2, 21, 22, 3, 0, 0, 0, 0];
  const rows = [1, 4, 6, 10];
  const ids = orig.slice();
  for (const r of rows.slice(0, 3)) ids[r] = 4;
  return {
    ids: tensor(ids, [2, 8], 'int32'),
    attentionMask: tensor(orig.map((x, i) => (i >= 12 ? 0 : 1)), [2, 8], 'int32'),
    rows: tensor(rows, [4], 'int32'),
    targets: tensor(rows.map((r) => orig[r]!), [4], 'int32'),
  };
}

describe('ElectraForPreTraining', () => {
  it('sizes the generator at 1/4 width, same depth, FFN 4x, heads width/64 (at least 1); 1/3 from base width', () => {
    const m = new ElectraForPreTraining(tiny);
    const g = m.config.generator;
    expect([g.hidden, g.layers, g.intermediate, g.heads, g.vocabSize]).toEqual([8, 2, 32, 1, V]);
    m.dispose();
    const base = new ElectraForPreTraining({ discriminator: { vocabSize: 10, hidden: 768, layers: 1, heads: 12, intermediate: 3072 } });
    expect([base.config.generator.hidden, base.config.generator.heads, base.config.generator.intermediate]).toEqual([256, 4, 1024]);
    base.dispose();
  });

  it('names parameters as HF (electra.*, discriminator_predictions.*, generator.*) and stores the shared embeddings once', () => {
    const m = new ElectraForPreTraining(tiny);
    const named = new Map(m.namedParameters());
    const shape = (n: string): number[] => [...named.get(n)!.shape];
    expect(shape('electra.embeddings.word_embeddings.weight')).toEqual([V, 32]);
    expect(shape('discriminator_predictions.dense.weight')).toEqual([32, 32]);
    expect(shape('discriminator_predictions.dense_prediction.weight')).toEqual([1, 32]);
    expect(shape('generator.electra.embeddings_project.weight')).toEqual([8, 32]);
    expect(shape('generator.electra.encoder.layer.1.intermediate.dense.weight')).toEqual([32, 8]);
    expect(shape('generator.generator_predictions.dense.weight')).toEqual([32, 8]);
    expect(shape('generator.generator_predictions.LayerNorm.weight')).toEqual([32]);
    expect(shape('generator.generator_lm_head.bias')).toEqual([V]);
    // No second copy of any embedding table: the generator reads the discriminator's.
    expect([...named.keys()].filter((n) => n.includes('embeddings.') && !n.startsWith('electra.embeddings.'))).toEqual([]);
    const params = m.parameters();
    expect(new Set(params).size).toBe(params.length);
    expect(m.decoderWeight.native.sharesStorage(m.electra.embeddings.word_embeddings.weight.native)).toBe(true);
    m.dispose();
  });

  it('gives the generator and discriminator the shapes of their batch, and trains the shared embeddings from the generator loss', () => {
    const m = new ElectraForPreTraining(tiny, { seed: 3 });
    scope(() => {
      const b = maskedBatch();
      const h = m.generatorHidden(b, b.rows);
      expect(h.shape).toEqual([4, 32]);
      expect(m.discriminatorLogits(b).shape).toEqual([16]);
      const loss = m.generatorLoss(h, b.targets);
      expect(Number.isFinite(loss.item())).toBe(true);
      backward(loss);
      const emb = m.electra.embeddings;
      const nonzero = (t: Tensor | null): boolean => !!t && Array.from(t.toArray()).some((x) => x !== 0);
      // Tied decoder and input embeddings, and the position and token-type tables, all shared with the discriminator.
      expect(nonzero(emb.word_embeddings.weight.grad)).toBe(true);
      expect(nonzero(emb.position_embeddings!.weight.grad)).toBe(true);
      expect(nonzero(emb.token_type_embeddings!.weight.grad)).toBe(true);
      expect(nonzero(m.generator.electra.embeddings_project.weight.grad)).toBe(true);
      // The discriminator's own layers see nothing of the generator loss.
      expect(nonzero(m.electra.encoder.layer.items[0]!.attention.self.query.weight.grad)).toBe(false);
      expect(nonzero(m.discriminator_predictions.dense.weight.grad)).toBe(false);
      m.zeroGrad();
    });
    m.dispose();
  });

  it('labels a token "replaced" only where the sample differs from the original, and padding −100', () => {
    scope(() => {
      const b = maskedBatch();
      // Row 1 (orig 11) sampled 11: not replaced; row 4 (orig 14) → 30; row 6 (orig 16) → 16; row 10 (orig 22, kept unchanged) → 9.
      const { corrupted, labels } = replaceTokens(b, Int32Array.from([11, 30, 16, 9]));
      expect(Array.from(corrupted)).toEqual([2, 11, 12, 13, 30, 15, 16, 3, 2, 21, 9, 3, 0, 0, 0, 0]);
      expect(Array.from(labels)).toEqual([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0, -100, -100, -100, -100]);
    });
  });

  it('computes the discriminator loss as the mean BCE with logits over the non-pad tokens (value and gradient)', () => {
    const m = new ElectraForPreTraining(tiny);
    scope(() => {
      const rng = new Rng(5);
      const N = 23;
      const zv = Array.from({ length: N }, () => 6 * rng.uniform() - 3);
      const yv = Array.from({ length: N }, (_, i) => (i % 5 === 4 ? -100 : rng.uniform() < 0.3 ? 1 : 0));
      const z = tensor(zv, [N]);
      z.requiresGrad = true;
      const loss = m.discriminatorLoss(z, tensor(yv, [N], 'int32'));
      const kept = yv.map((y, i) => [y, zv[i]!] as const).filter(([y]) => y !== -100);
      const ref = kept.reduce((a, [y, x]) => a + Math.log1p(Math.exp(x)) - y * x, 0) / kept.length;
      expect(loss.item()).toBeCloseTo(ref, 5);
      backward(loss);
      const g = z.grad!.toArray();
      for (let i = 0; i < N; i++) {
        const want = yv[i] === -100 ? 0 : (1 / (1 + Math.exp(-zv[i]!)) - yv[i]!) / kept.length;
        expect(g[i]).toBeCloseTo(want, 6);
      }
    });
    m.dispose();
  });

  it('step: total = L_MLM + 50·L_disc, the samples come from the generator (stop-gradient), the labels agree with them', () => {
    const m = new ElectraForPreTraining(tiny, { seed: 1 });
    scope(() => {
      const b = maskedBatch();
      const s = m.step(b, { seed: 7, step: 0 });
      expect(s.loss.item()).toBeCloseTo(s.genLoss.item() + 50 * s.discLoss.item(), 4);
      expect(s.sampled.length).toBe(4);
      const rows = b.rows.toArray();
      const targets = b.targets.toArray();
      for (let k = 0; k < 4; k++) {
        expect(s.corrupted[rows[k]!]).toBe(s.sampled[k]);
        expect(s.labels[rows[k]!]).toBe(s.sampled[k] !== targets[k] ? 1 : 0);
      }
      expect(s.labels.filter((l) => l === 1).length).toBeLessThanOrEqual(4);
      // Same key, same samples.
      expect(Array.from(m.step(b, { seed: 7, step: 0 }).sampled)).toEqual(Array.from(s.sampled));
      // The samples carry no gradient: backward reaches the generator only through L_MLM.
      backward(s.loss);
      expect(m.generator.generator_lm_head.bias.grad).not.toBeNull();
      // A generator whose head puts all its mass on one id samples that id everywhere.
      const bias = new Float32Array(V).fill(-1000);
      bias[33] = 1000;
      m.generator.generator_lm_head.bias.native.write(bias);
      m.generator.generator_predictions.LayerNorm.weight.native.fill(0);
      m.generator.generator_predictions.LayerNorm.bias.native.fill(0);
      const again = m.step(b, { seed: 7, step: 1 });
      expect(Array.from(again.sampled)).toEqual([33, 33, 33, 33]);
    });
    m.dispose();
  });

  it('writes and reads back an HF ElectraConfig (model_type electra) with the generator sizes', () => {
    const m = new ElectraForPreTraining(tiny);
    const j = JSON.parse(JSON.stringify(hfElectraConfig(m.config))) as Record<string, unknown>;
    expect(j.model_type).toBe('electra');
    expect(j.architectures).toEqual(['ElectraForPreTraining']);
    expect(j.embedding_size).toBe(32);
    expect(electraConfigFromHf(j, 'config.json')).toEqual(m.config);
    m.dispose();
  });
});

describe("pretrain({ objective: 'electra' })", () => {
  const root = mkdtempSync(join(tmpdir(), 'cloze-electra-'));
  let corpus = '';
  let tokenizer = '';
  const base = { objective: 'electra', maxLength: 32, batchSize: 8, evalBatches: 2, logEvery: 5, threads: 0 } as const;

  beforeAll(async () => {
    corpus = writeFixtureCorpus(join(root, 'data'));
    tokenizer = fixtureTokenizerIn(root);
  });

  it('masks 15% of the tokens, 85% of them [MASK] and the rest unchanged, never a random token', async () => {
    const tok = await loadTokenizer(tokenizer);
    const plan = new MaskingPlan({ maskRatio: 0.15, masking: 'token' }, tok, {} as PackedCorpus, false, ELECTRA_CORRUPTION);
    const B = 64;
    const L = 64;
    const ids = new Int32Array(B * L);
    for (let b = 0; b < B; b++) {
      for (let l = 0; l < L; l++) ids[b * L + l] = 5 + ((b * 31 + l * 7) % (tok.vocabSize - 5));
      ids[b * L] = tok.clsId;
      ids[b * L + L - 1] = tok.sepId;
    }
    scope(() => {
      const mb = plan.build({ ids, attentionMask: new Int32Array(B * L).fill(1), shape: [B, L], indices: new Uint32Array(B) }, 11, 0);
      const out = mb.batch.ids.toArray();
      const rows = mb.batch.rows.toArray();
      const targets = mb.batch.targets.toArray();
      let masked = 0;
      let kept = 0;
      rows.forEach((r, k) => {
        if (out[r] === tok.maskId) masked++;
        else if (out[r] === targets[k]) kept++;
      });
      expect(masked + kept).toBe(rows.length);
      expect(rows.length / (B * (L - 2))).toBeCloseTo(0.15, 2);
      expect(masked / rows.length).toBeGreaterThan(0.81);
      expect(masked / rows.length).toBeLessThan(0.89);
      // Outside the selection, nothing changes.
      const selected = new Set(rows);
      for (let i = 0; i < ids.length; i++) if (!selected.has(i)) expect(out[i]).toBe(ids[i]);
    });
  });

  it('takes the ELECTRA recipe: electra-mini by default, electra-small with batch 128', () => {
    const a = resolveRun({ objective: 'electra' });
    expect([a.preset, a.lr, a.maskRatio, a.weightDecay, a.batchSize]).toEqual(['electra-mini', 5e-4, 0.15, 0.01, 32]);
    const b = resolveRun({ preset: 'electra-small' });
    expect([b.objective, b.batchSize, b.lr]).toEqual(['electra', 128, 5e-4]);
    expect(resolveRun({ objective: 'electra', preset: 'bert-tiny', lr: 1e-3 }).lr).toBe(1e-3);
  });

  it('lowers the loss over a few dozen steps, evaluates, and saves both networks in one checkpoint', async () => {
    const steps: StepInfo[] = [];
    const out = join(root, 'learn');
    const r = await pretrain(
      { ...base, data: corpus, tokenizer, out, maxSteps: 40, lr: 1e-3, warmupRatio: 0, evalEvery: 40, saveEvery: 40, evalFraction: 0.2 },
      { output: null, onStep: (s) => steps.push(s) },
    );
    expect(r.step).toBe(40);
    for (const s of steps) expect(Number.isFinite(s.loss)).toBe(true);
    const first = steps.slice(0, 5).reduce((a, s) => a + s.loss, 0) / 5;
    const last = steps.slice(-5).reduce((a, s) => a + s.loss, 0) / 5;
    expect(last).toBeLessThan(first * 0.8);
    const e = r.eval as unknown as { discAccuracy: number; replacedFraction: number; loss: number };
    expect(Number.isFinite(e.loss)).toBe(true);
    expect(e.discAccuracy).toBeGreaterThan(0.5);
    expect(e.replacedFraction).toBeGreaterThan(0);
    const ck = loadCheckpoint(r.checkpoint!);
    const names = Object.keys(ck.model);
    expect(names).toContain('electra.encoder.layer.3.attention.self.query.weight');
    expect(names).toContain('discriminator_predictions.dense_prediction.weight');
    expect(names).toContain('generator.electra.encoder.layer.3.attention.self.query.weight');
    expect(names).toContain('generator.generator_lm_head.bias');
    expect(ck.config.model_type).toBe('electra');
    ck.dispose();
    const cfg = JSON.parse(readFileSync(join(r.checkpoint!, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect([cfg.hidden_size, cfg.num_hidden_layers, cfg.cloze_generator_hidden_size]).toEqual([128, 4, 32]);

    // cloze export: the discriminator alone, as HF ElectraForPreTraining.
    const exported = join(root, 'export');
    exportCheckpoint(out, exported);
    const ex = loadCheckpoint(exported);
    const exNames = Object.keys(ex.model);
    expect(exNames.filter((n) => n.startsWith('generator.'))).toEqual([]);
    expect(exNames.every((n) => n.startsWith('electra.') || n.startsWith('discriminator_predictions.'))).toBe(true);
    expect(exNames).toContain('electra.embeddings.word_embeddings.weight');
    expect(ex.config.model_type).toBe('electra');
    const disc = Float64Array.from(ex.model['electra.encoder.layer.2.output.dense.weight']!.toArray());

    // Fine-tuning from the run (or the export): the discriminator is the encoder, electra.* read as bert.*.
    for (const from of [r.checkpoint!, exported]) {
      const { model, initialised } = BertForSequenceClassification.fromPretrained(from, { numLabels: 3 });
      expect(initialised.every((n) => n.startsWith('bert.pooler.') || n.startsWith('classifier.'))).toBe(true);
      expect(Float64Array.from(model.bert.encoder.layer.items[2]!.output.dense.weight.toArray())).toEqual(disc);
      model.dispose();
    }
    ex.dispose();
    // cloze eval does not score an ELECTRA checkpoint, and says so.
    await expect(evaluateMlmCheckpoint({ checkpoint: out })).rejects.toThrow(/ELECTRA/);
  });

  it('resumes exactly: the losses after an interruption equal those of an uninterrupted run', async () => {
    const cfg = { ...base, data: corpus, tokenizer, maxSteps: 10, evalEvery: 100, saveEvery: 100, gradAccum: 2 };
    const { straight, resumed, stoppedAt, finalStep } = await straightAndResumed(pretrain, cfg, join(root, 'resume'), 4);
    expect(stoppedAt).toBe(4);
    expect(finalStep).toBe(10);
    expect(resumed).toEqual(straight);
  });

  it('stops with a clear message when the loss is not finite', async () => {
    await expect(
      pretrain({ ...base, data: corpus, tokenizer, out: join(root, 'nan'), maxSteps: 30, lr: 1e9, gradClip: 0, warmupRatio: 0 }, { output: null }),
    ).rejects.toThrow(/The ELECTRA loss became (NaN|Infinity|-Infinity) at step \d+/);
  });
});
