/**
 * The ELECTRA objective of the text task (`--objective electra`): the MLM
 * task's data, tokenizer and masking (15% of tokens; 85% [MASK], 15%
 * unchanged, no random tokens), then ElectraForPreTraining: the generator's
 * MLM loss, its samples (drawn in the fused head, keyed on (seed, micro-batch,
 * row)), and the discriminator's replaced-token detection, L_MLM + 50·L_disc.
 * Both networks are one model, so one checkpoint holds both (electra.* and
 * discriminator_predictions.* for the discriminator, generator.* for the
 * generator) with one optimizer state, and --resume is exact.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { placeModel } from '../../train/place-model.js';
import { ClozeError } from '../../errors.js';
import { scope } from '../../autograd/mode.js';
import { bertConfig } from '../../models/bert/config.js';
import { BERT_PRESETS, bertPreset, type BertPresetName } from '../../models/bert/presets.js';
import { electraConfigFromHf, hfElectraConfig } from '../../models/electra/hf-config.js';
import { electraConfig, ElectraForPreTraining, type ElectraConfig } from '../../models/electra/model.js';
import { electraPreset, isElectraPreset, ELECTRA_PRESETS } from '../../models/electra/presets.js';
import type { Communicator } from '../../distributed/index.js';
import { withDropoutShard } from '../../nn/layers.js';
import { AdamW } from '../../optim/adamw.js';
import { dropoutCounters, restoreDropout } from '../../train/dropout-state.js';
import type { TrainTask } from '../../train/loop.js';
import { evalMaskRatioOf, type MlmRunConfig } from './config.js';
import { BatchCursor, defaultCorpus, openTextCorpus } from './data.js';
import { EVAL_SEED_OFFSET, type EvalResult } from './evaluate.js';
import { MaskingPlan } from './masking-plan.js';
import { checkActivationMemory, readJsonFile } from './task.js';

/** ELECTRA's corruption of the selected tokens: 85% [MASK], 15% unchanged, no random tokens. */
export const ELECTRA_CORRUPTION = { maskProb: 0.85, randomProb: 0 } as const;

/** Seed stream of the generator's samples, apart from the masking's. */
const SAMPLE_SEED_OFFSET = 7_919;

/** Held-out metrics of an ELECTRA run; loss, accuracy and perplexity are the generator's MLM ones. */
export interface ElectraEvalResult extends EvalResult {
  /** L_MLM + λ·L_disc. */
  totalLoss: number;
  discLoss: number;
  /** The discriminator's per-token accuracy over the non-pad tokens. */
  discAccuracy: number;
  /** Share of the non-pad tokens the generator replaced. */
  replacedFraction: number;
}

/** The discriminator's config of a preset: an electra-* one, or a BERT one (absolute positions, padded batches). */
function presetConfig(name: string, overrides: { vocabSize: number; maxPosition: number }): { config: ElectraConfig } {
  if (isElectraPreset(name)) {
    const p = electraPreset(name, overrides);
    return { config: electraConfig({ discriminator: p.discriminator, generatorFraction: p.generatorFraction }) };
  }
  if (!Object.prototype.hasOwnProperty.call(BERT_PRESETS, name)) {
    throw new ClozeError('E_VALUE', `Expected one of ${[...Object.keys(ELECTRA_PRESETS), ...Object.keys(BERT_PRESETS)].join(', ')} for preset but received ${JSON.stringify(name)}`);
  }
  const p = bertPreset(name as BertPresetName, overrides);
  if (p.unpadded || bertConfig(p.config).positionEmbedding !== 'absolute') {
    throw new ClozeError('E_VALUE', `Expected a preset with absolute positions and padded batches for objective electra but received ${name} (ALiBi, unpadded); use electra-mini, electra-small or a bert-* preset`);
  }
  return { config: electraConfig({ discriminator: p.config }) };
}

export async function buildElectraTask(
  cfg: MlmRunConfig, outDir: string, resumeDir: string | null, progress: { note(s: string): void } | null = null,
  comm: Communicator | null = null,
): Promise<TrainTask<ElectraEvalResult> & { totalSteps: number }> {
  const ranks = comm && comm.size > 1 ? comm : null;
  if (cfg.initFrom) throw new ClozeError('E_VALUE', 'Expected no initFrom for objective electra but received one; ELECTRA runs start from scratch (or --resume)');
  const data = cfg.data ?? defaultCorpus();
  if (!resumeDir) checkActivationMemory(presetConfig(cfg.preset, { vocabSize: cfg.vocabSize, maxPosition: Math.max(512, cfg.maxLength) }).config.discriminator, cfg);
  const { tok, corpus } = await openTextCorpus(cfg, data, outDir, resumeDir, progress);
  // The shape: a resumed run's own config.json, else the preset.
  const config = resumeDir
    ? electraConfigFromHf(readJsonFile(join(resumeDir, 'config.json')), join(resumeDir, 'config.json'))
    : presetConfig(cfg.preset, { vocabSize: tok.vocabSize, maxPosition: Math.max(512, cfg.maxLength) }).config;
  if (resumeDir) checkActivationMemory(config.discriminator, cfg);
  const model = new ElectraForPreTraining(config, { seed: cfg.seed });
  const placement = placeModel([model], cfg);
  const optimizer = new AdamW(model.parameters(), { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
  // No random replacements in ELECTRA's corruption, so randomTokens does not apply.
  const plan = new MaskingPlan({ maskRatio: cfg.maskRatio, masking: cfg.masking }, tok, corpus, false, ELECTRA_CORRUPTION);
  // The global micro-batch: what one process at batch ranks × batchSize reads, in its order.
  const cursor = new BatchCursor(corpus, cfg.batchSize * (ranks?.size ?? 1));
  const hfConfig = hfElectraConfig(model.config);
  if (!existsSync(join(outDir, 'tokenizer.json'))) tok.save(join(outDir, 'tokenizer.json'));
  const totalSteps = cfg.epochs > 0 ? Math.ceil((cfg.epochs * cursor.perEpoch) / cfg.gradAccum) : cfg.maxSteps;
  const sampleSeed = (cfg.seed + SAMPLE_SEED_OFFSET) % 2 ** 52;

  const evaluate = (step: number): ElectraEvalResult => {
    const wasTraining = model.training;
    model.eval();
    let gen = 0, genN = 0, genOk = 0, disc = 0, discN = 0, discOk = 0, replaced = 0, batches = 0;
    let k = 0;
    // At the global batch: a data-parallel rank 0 evaluates as the single process does.
    for (const b of corpus.batches('eval', cfg.batchSize * (ranks?.size ?? 1))) {
      if (k >= cfg.evalBatches) break;
      scope(() => {
        const mb = plan.build(b, cfg.seed + EVAL_SEED_OFFSET, k, evalMaskRatioOf(cfg));
        if (mb.maskedCount === 0) return;
        const r = model.accuracy(mb.batch, { seed: sampleSeed + EVAL_SEED_OFFSET, step: k });
        gen += r.genLoss * r.genCount;
        genN += r.genCount;
        genOk += r.genCorrect;
        disc += r.discLoss;
        discN += r.discCount;
        discOk += r.discCorrect;
        replaced += r.replaced;
        batches++;
      });
      k++;
    }
    model.train(wasTraining);
    const loss = genN > 0 ? gen / genN : NaN;
    const discLoss = batches > 0 ? disc / batches : NaN;
    return {
      step, loss, accuracy: genN > 0 ? genOk / genN : NaN, perplexity: Math.exp(loss), maskedTokens: genN, maskRatio: evalMaskRatioOf(cfg),
      totalLoss: loss + model.config.discWeight * discLoss, discLoss,
      discAccuracy: discN > 0 ? discOk / discN : NaN, replacedFraction: discN > 0 ? replaced / discN : NaN,
    };
  };

  return {
    model,
    optimizer,
    unit: 'tok',
    name: 'ELECTRA',
    totalSteps,
    microBatch(k) {
      if (!ranks) {
        const mb = plan.build(cursor.at(k), cfg.seed, k);
        const s = model.step(mb.batch, { seed: sampleSeed, step: k });
        return { loss: s.loss, units: mb.realTokens, parts: { gen: s.genLoss, disc: s.discLoss } };
      }
      // Data parallel: the global batch masked as one process would, this rank's rows of it. The generator samples
      // its rows at their place among the global masked rows, and both losses are shares of the global means (their
      // sum over ranks, and the gradients', is the single process's); dropout draws at the rank's offset.
      const mb = plan.build(cursor.at(k), cfg.seed, k, cfg.maskRatio, { rank: ranks.rank, size: ranks.size });
      const sh = mb.shard!;
      const shard = { maskedBefore: sh.masked.before, globalMasked: sh.globalMasked, globalTokens: sh.globalTokens, tokens: mb.realTokens };
      const s = withDropoutShard(sh.rowsBefore, sh.rows, () => model.step(mb.batch, { seed: sampleSeed, step: k, shard }));
      return { loss: s.loss, units: mb.realTokens, parts: { gen: s.genLoss, disc: s.discLoss } };
    },
    shouldEvaluate: (step, last) => corpus.evalIndices.length > 0 && (step % cfg.evalEvery === 0 || last),
    // Data parallel, rank 0 evaluates alone.
    evaluate,
    describe: (e) => e.maskedTokens === 0
      ? `eval step ${e.step}: no masked tokens in the held-out batches`
      : `eval step ${e.step}: generator loss ${e.loss.toFixed(4)}  accuracy ${(100 * e.accuracy).toFixed(2)}%  discriminator loss ${e.discLoss.toFixed(4)}  accuracy ${(100 * e.discAccuracy).toFixed(2)}%  replaced ${(100 * e.replacedFraction).toFixed(1)}%`,
    checkpoint: () => ({
      config: hfConfig,
      tokenizerFiles: [join(outDir, 'tokenizer.json')].filter((f) => existsSync(f)),
      dropoutCounters: dropoutCounters(model),
    }),
    restore: (ck) => {
      if ((ck.config as { model_type?: unknown } | null)?.model_type !== 'electra') {
        throw new ClozeError('E_VALUE', `Expected an ELECTRA checkpoint (config.json model_type "electra") for resume with objective electra but received model_type ${JSON.stringify((ck.config as { model_type?: unknown } | null)?.model_type)}`);
      }
      restoreDropout(model, ck.dropoutCounters);
    },
    dispose() {
      optimizer.dispose();
      model.dispose();
      plan.dispose();
      placement.release();
    },
  };
}
