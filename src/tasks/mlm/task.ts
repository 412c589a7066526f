/**
 * The MLM task of the shared loop: data → tokenizer → cached shard → packed
 * sequences → masking → BertForMaskedLM. Everything random is a pure function
 * of (seed, micro-batch): the data order of each epoch, the token selection
 * (an Rng seeded per micro-batch), the 80/10/10 draws (Philox) and dropout
 * (Philox with per-site call counters, which the checkpoint carries).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint } from '../../checkpoint/checkpoint.js';
import { openShard, prepareShard } from '../../data/prepare.js';
import { PackedCorpus } from '../../data/packing.js';
import { resolveDevice, resolvePrecision, TrainerStream, type DeviceChoice, type Precision } from '../../device.js';
import { ClozeError } from '../../errors.js';
import { bertConfigFromHf, hfBertConfig, HF_EXTRA_KEYS } from '../../models/bert/hf-config.js';
import { BertForMaskedLM } from '../../models/bert/model.js';
import { bertPreset, type BertPresetName } from '../../models/bert/presets.js';
import { AdamW } from '../../optim/adamw.js';
import { dropoutCounters, restoreDropout } from '../../train/dropout-state.js';
import type { TrainTask } from '../../train/loop.js';
import type { MlmRunConfig } from './config.js';
import { BatchCursor, defaultCorpus, makeTokenizer } from './data.js';
import { evaluateMlm, type EvalResult } from './evaluate.js';
import { MaskingPlan } from './masking-plan.js';

function readJsonFile(path: string): { [key: string]: unknown } {
  if (!existsSync(path)) throw new ClozeError('E_IO', `Expected a config.json at ${path} but received no such file`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as { [key: string]: unknown };
  } catch (e) {
    throw new ClozeError('E_VALUE', `Expected JSON in ${path} but received text that does not parse (${(e as Error).message})`);
  }
}

/** Builds the MLM task; `resumeDir` is the checkpoint the run continues from, if any. */
export async function buildMlmTask(cfg: MlmRunConfig, outDir: string, resumeDir: string | null): Promise<TrainTask<EvalResult> & { totalSteps: number }> {
  const data = cfg.data ?? defaultCorpus();
  const tok = await makeTokenizer(cfg, data, outDir, resumeDir);
  const shard = await prepareShard(data, tok, { cacheDir: outDir, mode: cfg.textMode as 'line' | 'paragraph', field: cfg.jsonlField });
  const corpus = new PackedCorpus(openShard(shard.path), { clsId: tok.clsId, sepId: tok.sepId, padId: tok.padId }, {
    maxLength: cfg.maxLength,
    evalFraction: cfg.evalFraction,
    seed: cfg.seed,
  });
  const preset = bertPreset(cfg.preset as BertPresetName, { vocabSize: tok.vocabSize, maxPosition: Math.max(512, cfg.maxLength) });
  // The model's shape: a resumed run's own config.json, else the one of the directory it starts from, else the preset.
  const shapeFrom = resumeDir ?? cfg.initFrom;
  const modelConfig = shapeFrom ? bertConfigFromHf(readJsonFile(join(shapeFrom, 'config.json')), join(shapeFrom, 'config.json')) : preset.config;
  const init = cfg.initFrom && !resumeDir ? loadCheckpoint(cfg.initFrom) : null;
  const model = new BertForMaskedLM(modelConfig, { seed: cfg.seed });
  if (init) {
    try {
      model.loadStateDict(Object.fromEntries(Object.entries(init.model).filter(([k]) => !HF_EXTRA_KEYS.has(k))));
    } finally {
      init.dispose();
    }
  }
  // On cuda the model moves before the optimizer flattens its parameters
  // there; bf16 parameters get fp32 master weights in the optimizer.
  const device = resolveDevice(cfg.device as DeviceChoice);
  const stream = new TrainerStream(device);
  if (device === 'cuda') model.to('cuda', resolvePrecision(cfg.precision as Precision, device));
  else resolvePrecision(cfg.precision as Precision, device);
  const optimizer = new AdamW(model.parameters(), { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
  const plan = new MaskingPlan(cfg, tok, corpus, preset.unpadded);
  const cursor = new BatchCursor(corpus, cfg.batchSize);
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
      const mb = plan.build(cursor.at(k), cfg.seed, k);
      return { loss: model.loss(mb.batch), units: mb.realTokens };
    },
    shouldEvaluate: (step, last) => step % cfg.evalEvery === 0 || last,
    evaluate: (step) => evaluateMlm(model, corpus, plan, { seed: cfg.seed, batchSize: cfg.batchSize, maxBatches: cfg.evalBatches, step }),
    describe: (e) => `eval step ${e.step}: loss ${e.loss.toFixed(4)}  accuracy ${(100 * e.accuracy).toFixed(2)}%  perplexity ${e.perplexity.toFixed(2)}`,
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
      stream.release();
    },
  };
}
