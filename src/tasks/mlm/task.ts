/**
 * The MLM task of the shared loop: data → tokenizer → cached shard → packed
 * sequences → masking → BertForMaskedLM. Everything random is a pure function
 * of (seed, micro-batch): the data order of each epoch, the token selection
 * (an Rng seeded per micro-batch), the 80/10/10 draws (Philox) and dropout
 * (Philox with per-site call counters, which the checkpoint carries).
 */
import { existsSync, readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import type { BertConfig } from '../../models/bert/config.js';
import { join } from 'node:path';
import { loadCheckpoint } from '../../checkpoint/checkpoint.js';
import { placeModel } from '../../train/place-model.js';
import { ClozeError } from '../../errors.js';
import { bertConfigFromHf, hfBertConfig, HF_EXTRA_KEYS } from '../../models/bert/hf-config.js';
import { BertForMaskedLM, isDecoderKey, type MlmDecoder } from '../../models/bert/model.js';
import { bertConfig } from '../../models/bert/config.js';
import { bertPreset, type BertPresetName } from '../../models/bert/presets.js';
import type { Communicator } from '../../distributed/index.js';
import { withDropoutShard } from '../../nn/layers.js';
import { AdamW } from '../../optim/adamw.js';
import { dropoutCounters, restoreDropout } from '../../train/dropout-state.js';
import type { TrainTask } from '../../train/loop.js';
import { evalMaskRatioOf, type MlmRunConfig } from './config.js';
import { BatchCursor, defaultCorpus, openTextCorpus } from './data.js';
import { evaluateMlm, type EvalResult } from './evaluate.js';
import { MaskingPlan } from './masking-plan.js';
import { buildElectraTask } from './electra.js';

/** Seed stream of the DrBERT decoder's draws, apart from the masking's. */
const DECODER_SEED_OFFSET = 104_729;

/** The --decoder setting as the model's option (null for none). */
export function mlmDecoderOf(cfg: Pick<MlmRunConfig, 'decoder' | 'decoderLayers' | 'unmaskFraction' | 'decoderMix'>): MlmDecoder | null {
  if (cfg.decoder === 'emd') return { kind: 'emd' };
  if (cfg.decoder === 'drbert') return { kind: 'drbert', layers: cfg.decoderLayers, unmaskFraction: cfg.unmaskFraction, mixProb: cfg.decoderMix };
  return null;
}

/** The layer count the activation estimate uses: EMD runs one layer more than the encoder, DrBERT its extra blocks. */
function withDecoderLayers<C extends { layers?: number }>(c: C, decoder: MlmDecoder | null): C {
  const extra = decoder === null ? 0 : decoder.kind === 'emd' ? 1 : decoder.layers;
  return extra && c.layers !== undefined ? { ...c, layers: c.layers + extra } : c;
}

function checkDecoderPreset(decoder: MlmDecoder | null, preset: string, positionEmbedding: string, unpadded: boolean): void {
  if (decoder?.kind === 'emd' && positionEmbedding !== 'absolute') {
    throw new ClozeError('E_VALUE', `Expected a preset with absolute position embeddings for decoder emd (its query adds the position table) but received preset ${preset} (positionEmbedding ${positionEmbedding}); use a bert-* preset or decoder drbert`);
  }
  if (decoder?.kind === 'drbert' && unpadded) {
    throw new ClozeError('E_VALUE', `Expected a preset with padded batches for decoder drbert (its [B, L, L] key mask needs them) but received preset ${preset} (unpadded); use a bert-* preset`);
  }
}

export function readJsonFile(path: string): { [key: string]: unknown } {
  if (!existsSync(path)) throw new ClozeError('E_IO', `Expected a config.json at ${path} but received no such file`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { [key: string]: unknown };
  } catch (e) {
    throw new ClozeError('E_VALUE', `Expected JSON in ${path} but received text that does not parse (${(e as Error).message})`);
  }
}

/**
 * A pre-flight estimate of one micro-batch's activation memory (kept for the backward pass): per layer and token,
 * about 16 hidden-wide and 2 FFN-wide float32 vectors plus the heads' attention rows (2 × heads × L). A run whose
 * estimate exceeds the machine's memory is refused before anything is allocated, naming the sizes to lower.
 */
export function checkActivationMemory(model: Pick<BertConfig, 'layers' | 'hidden' | 'intermediate' | 'heads'> | null, cfg: Pick<MlmRunConfig, 'batchSize' | 'maxLength' | 'preset'>): void {
  if (!model) return;
  const L = cfg.maxLength;
  const bytes = 4 * cfg.batchSize * L * model.layers * (16 * model.hidden + 2 * model.intermediate + 2 * model.heads * L);
  const limit = totalmem();
  if (bytes > limit) {
    const gib = (b: number): string => `${(b / 2 ** 30).toFixed(1)} GiB`;
    throw new ClozeError('E_OOM', `Expected a run whose activations fit in memory (${gib(limit)}) but received batchSize ${cfg.batchSize} × maxLength ${L} on ${cfg.preset}, about ${gib(bytes)} per micro-batch; lower maxLength or batchSize (gradAccum keeps the effective batch)`);
  }
}

/**
 * Builds the MLM task; `resumeDir` is the checkpoint the run continues from, if any. With `comm` of more
 * than one rank, each micro-batch is the global one of comm.size × batchSize sequences (the single-process
 * run's at that batch), and this rank trains on its rows of it: see microBatch.
 */
export async function buildMlmTask(
  cfg: MlmRunConfig, outDir: string, resumeDir: string | null, progress: { note(s: string): void } | null = null,
  comm: Communicator | null = null,
): Promise<TrainTask<EvalResult> & { totalSteps: number }> {
  const ranks = comm && comm.size > 1 ? comm : null;
  if (cfg.objective === 'electra') {
    if (cfg.decoder !== 'none') throw new ClozeError('E_VALUE', `Expected decoder 'none' with objective electra (decoder is for objective mlm) but received decoder '${cfg.decoder}'`);
    return buildElectraTask(cfg, outDir, resumeDir, progress, comm);
  }
  const decoder = mlmDecoderOf(cfg);
  // Before the tokenizer and shard are made: a preset the decoder cannot use is refused at once.
  if (decoder) {
    const p = bertPreset(cfg.preset as BertPresetName);
    checkDecoderPreset(decoder, cfg.preset, bertConfig(p.config).positionEmbedding, p.unpadded);
  }
  const data = cfg.data ?? defaultCorpus();
  // Before the tokenizer is trained: the preset's activation estimate does not depend on the vocabulary.
  if (!resumeDir && !cfg.initFrom) {
    checkActivationMemory(withDecoderLayers(bertPreset(cfg.preset as BertPresetName, { vocabSize: cfg.vocabSize, maxPosition: Math.max(512, cfg.maxLength) }).config, decoder), cfg);
  }
  const { tok, corpus } = await openTextCorpus(cfg, data, outDir, resumeDir, progress);
  const preset = bertPreset(cfg.preset as BertPresetName, { vocabSize: tok.vocabSize, maxPosition: Math.max(512, cfg.maxLength) });
  // The model's shape: a resumed run's own config.json, else the one of the directory it starts from, else the preset.
  const shapeFrom = resumeDir ?? cfg.initFrom;
  const modelConfig = shapeFrom ? bertConfigFromHf(readJsonFile(join(shapeFrom, 'config.json')), join(shapeFrom, 'config.json')) : preset.config;
  if (shapeFrom) checkActivationMemory(withDecoderLayers(modelConfig, decoder), cfg);
  const init = cfg.initFrom && !resumeDir ? loadCheckpoint(cfg.initFrom) : null;
  checkDecoderPreset(decoder, cfg.preset, bertConfig(modelConfig).positionEmbedding, preset.unpadded);
  const model = new BertForMaskedLM(modelConfig, { seed: cfg.seed, decoder });
  if (init) {
    try {
      // A DrBERT checkpoint's decoder blocks are not carried over unless this run has them too.
      const mine = new Set(Object.keys(model.stateDict()));
      model.loadStateDict(Object.fromEntries(Object.entries(init.model).filter(([k]) => !HF_EXTRA_KEYS.has(k) && (!isDecoderKey(k) || mine.has(k)))));
    } finally {
      init.dispose();
    }
  }
  // On cuda the model moves before the optimizer flattens its parameters
  // there; bf16 parameters get fp32 master weights in the optimizer.
  const placement = placeModel([model], cfg);
  const optimizer = new AdamW(model.parameters(), { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
  const plan = new MaskingPlan(cfg, tok, corpus, preset.unpadded);
  // The global micro-batch: what one process at batch ranks × batchSize reads, in its order.
  const cursor = new BatchCursor(corpus, cfg.batchSize * (ranks?.size ?? 1));
  const hfConfig = hfBertConfig(model.config);
  if (!existsSync(join(outDir, 'tokenizer.json'))) tok.save(join(outDir, 'tokenizer.json'));
  const totalSteps = cfg.epochs > 0 ? Math.ceil((cfg.epochs * cursor.perEpoch) / cfg.gradAccum) : cfg.maxSteps;

  return {
    model,
    optimizer,
    unit: 'tok',
    name: 'MLM',
    totalSteps,
    microBatch(k) {
      // The decoder's draws: a pure function of (seed, micro-batch), so --resume is exact.
      const drawSeed = (cfg.seed * 2_654_435_761 + k + DECODER_SEED_OFFSET) % 2 ** 52;
      if (!ranks) {
        const mb = plan.build(cursor.at(k), cfg.seed, k);
        return { loss: model.loss(mb.batch, { drawSeed }), units: mb.realTokens };
      }
      // Data parallel: the global batch masked as one process would, then this rank's rows of it. The loss is
      // this rank's sum over the global masked count, so the ranks' gradients SUM to the single-process mean's;
      // dropout draws the global tensor's mask for these rows.
      const mb = plan.build(cursor.at(k), cfg.seed, k, cfg.maskRatio, { rank: ranks.rank, size: ranks.size });
      const sh = mb.shard!;
      const loss = withDropoutShard(sh.rowsBefore, sh.rows, () => model.loss(mb.batch, { drawSeed, normalizer: Math.max(1, sh.globalMasked), drawRows: sh.masked }));
      return { loss, units: mb.realTokens };
    },
    // No held-out split (evalFraction 0): no evaluation, rather than NaN metrics.
    shouldEvaluate: (step, last) => corpus.evalIndices.length > 0 && (step % cfg.evalEvery === 0 || last),
    // Data parallel, rank 0 evaluates alone, at the global batch: the single process's evaluation.
    evaluate: (step) => evaluateMlm(model, corpus, plan, { seed: cfg.seed, batchSize: cfg.batchSize * (ranks?.size ?? 1), maxBatches: cfg.evalBatches, step, maskRatio: evalMaskRatioOf(cfg) }),
    describe: (e) => e.maskedTokens === 0 ? `eval step ${e.step}: no masked tokens in the held-out batches` : `eval step ${e.step}: loss ${e.loss.toFixed(4)}  accuracy ${(100 * e.accuracy).toFixed(2)}%  perplexity ${e.perplexity.toFixed(2)}`,
    checkpoint: () => ({
      config: hfConfig,
      tokenizerFiles: [join(outDir, 'tokenizer.json')].filter((f) => existsSync(f)),
      dropoutCounters: dropoutCounters(model),
    }),
    restore: (ck) => restoreDropout(model, ck.dropoutCounters),
    dispose() {
      optimizer.dispose();
      model.dispose();
      plan.dispose();
      placement.release();
    },
  };
}
