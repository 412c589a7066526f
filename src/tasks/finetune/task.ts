/**
 * The fine-tuning task of the shared training loop: encoded examples →
 * batches in a seeded order per epoch → the method's class logits
 * (mlp-ft's head, or MVP's label words at [MASK]) → cross-entropy, on
 * one-step L2 PGD perturbations of the word embeddings with --adv; scored on
 * the test split after every epoch. Everything random is a pure function of
 * (seed, micro-batch): the order of each epoch, dropout (Philox with call
 * counters, which checkpoints carry) and PGD's random start.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { JsonValue } from '../../checkpoint/checkpoint.js';
import { ClozeError } from '../../errors.js';
import { hfBertConfig } from '../../models/bert/hf-config.js';
import { crossEntropy } from '../../ops/cross_entropy.js';
import { scale } from '../../ops/elementwise.js';
import { withDropoutShard } from '../../nn/layers.js';
import { AdamW } from '../../optim/adamw.js';
import { Rng } from '../../rng.js';
import { fromTypedArray } from '../../tensor.js';
import { dropoutCounters, restoreDropout } from '../../train/dropout-state.js';
import { epochPlan } from '../../train/epochs.js';
import type { TrainTask } from '../../train/loop.js';
import type { EncodedExample, TextClassifier } from './classifier.js';
import { AsaAdversary, asaLoss, AsaTrainModel } from './asa.js';
import { usesAsa, type FinetuneConfig } from './config.js';
import { evaluateClassifier, type FinetuneEval } from './evaluate.js';
import { pgdPerturbation } from './pgd.js';

/** PGD's random start draws from its own Philox stream, apart from dropout's. */
const PGD_SEED_OFFSET = 0x5eed_0adf;

/** Settings a resumed run must keep. */
const RUN_IDENTITY = ['method', 'adv', 'asa', 'asaTau', 'maskThreshold', 'maskInitSparsity', 'maskInitScale', 'applyMask', 'task', 'taskData', 'testData', 'template', 'verbalizer', 'maxLength', 'seed', 'batchSize', 'gradAccum', 'epochs', 'maxSteps', 'lr', 'warmupRatio', 'decay', 'minLrRatio'] as const satisfies ReadonlyArray<keyof FinetuneConfig>;

export interface FinetuneInputs {
  classifier: TextClassifier;
  train: { examples: EncodedExample[]; labels: Int32Array };
  test: { examples: EncodedExample[]; labels: Int32Array };
  /** What config.json says beyond the BERT config (labels, method, prompts). */
  describe: { [key: string]: JsonValue };
}

/** The epoch's example order: a seeded permutation, a pure function of (seed, epoch). */
function epochOrder(n: number, seed: number, epoch: number): Uint32Array {
  const order = Uint32Array.from({ length: n }, (_, i) => i);
  // Keyed on (seed, epoch) together, so seed s at epoch e+1 does not replay seed s+1 at epoch e.
  const rng = new Rng((seed * 1_000_003 + 7_919 * (epoch + 1)) % 2 ** 52);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** config.json of a fine-tuned checkpoint: the BERT config under HF's keys, the label maps, and cloze's own record of the method. */
export function finetuneConfigJson(c: TextClassifier, describe: { [key: string]: JsonValue }): { [key: string]: JsonValue } {
  const id2label = Object.fromEntries(c.labels.map((l, i) => [String(i), l]));
  const label2id = Object.fromEntries(c.labels.map((l, i) => [l, i]));
  return {
    ...hfBertConfig(c.module.config),
    architectures: [c.m.method === 'mlp-ft' ? 'BertForSequenceClassification' : 'BertForMaskedLM'],
    id2label,
    label2id,
    num_labels: c.labels.length,
    cloze_finetune: describe,
  };
}

/**
 * This rank's share of a global micro-batch of n examples: examples [lo, hi), ⌊r·n/N⌋ to ⌊(r+1)·n/N⌋, so that ranks
 * differ by at most one example and every rank has one when n ≥ N.
 */
export function rankSlice(n: number, rank: number, size: number): { lo: number; hi: number } {
  return { lo: Math.floor((rank * n) / size), hi: Math.floor(((rank + 1) * n) / size) };
}

/**
 * What data-parallel fine-tuning supports: mlp-ft, mvp, mask-tune and asa, --adv and --asa included (PGD's random
 * start is drawn at the rank's rows of the global batch; ASA's padded batches pad to the global batch's longest
 * sequence). Refuses any other method naming it; one rank passes.
 */
export function checkDataParallelFinetune(cfg: Pick<FinetuneConfig, 'method' | 'adv' | 'asa'>, size: number): void {
  if (size <= 1) return;
  if (cfg.method !== 'mlp-ft' && cfg.method !== 'mvp' && cfg.method !== 'mask-tune' && cfg.method !== 'asa') {
    throw new ClozeError('E_VALUE', `Expected method mlp-ft, mvp, mask-tune or asa for data-parallel fine-tuning (${size} MPI ranks) but received ${cfg.method}; run one process, or pass --distributed off`);
  }
}

/**
 * `ranks` (data parallel, more than one rank): each micro-batch is the global one of ranks × batchSize examples, in
 * the single process's order at that batch; this rank trains on its slice (rankSlice), with the loss scaled so that the
 * ranks' gradients SUM to the single-process mean's, and dropout drawing the global batch's mask for its rows.
 */
export function buildFinetuneTask(
  cfg: FinetuneConfig, outDir: string, inputs: FinetuneInputs, ranks: { rank: number; size: number } | null = null,
): TrainTask<FinetuneEval> & { totalSteps: number; perEpoch: number } {
  const { classifier, train, test } = inputs;
  if (ranks) checkDataParallelFinetune(cfg, ranks.size);
  const world = ranks && ranks.size > 1 ? ranks : null;
  const globalBatch = cfg.batchSize * (world?.size ?? 1);
  const model = classifier.module;
  if (train.examples.length === 0) throw new ClozeError('E_VALUE', 'Expected training examples for the fine-tuning data but received none');
  // ASA: the adversary trains with the model (one optimizer, one checkpoint under asa.*) and is never part of the classifier.
  // It is made where the model is (built in float32 and cast, as the model was), before the optimizer flattens both.
  const adversary = usesAsa(cfg) ? new AsaAdversary(model.config, { seed: cfg.seed, dtype: model.device === 'cpu' ? model.dtype : 'float32' }) : null;
  if (adversary && model.device !== 'cpu') adversary.to(model.device, model.dtype);
  const trained = adversary ? new AsaTrainModel(model, adversary) : model;
  const perEpoch = Math.ceil(train.examples.length / globalBatch);
  const plan = epochPlan({ epochs: cfg.epochs, maxSteps: cfg.maxSteps, gradAccum: cfg.gradAccum, probeEvery: 1 }, perEpoch);
  // Frozen tensors (mask-tune's weights) take no optimizer state: only what trains is flattened.
  const trainable = (ps: ReturnType<typeof model.parameters>) => ps.filter((p) => p.requiresGrad);
  const byDecay = (ps: ReturnType<typeof model.parameters>, clip: boolean) => [
    { params: ps.filter((p) => p.decay), weightDecay: cfg.weightDecay, clip },
    { params: ps.filter((p) => !p.decay), weightDecay: 0, clip },
  ];
  // ASA: the adversary's gradient (through the bias's 1e4 scale) is orders of magnitude above the model's, so it stays
  // out of the global norm clip: the model is clipped as in every method, the adversary not at all (the official code
  // clips neither); Adam's update size does not depend on the gradient's scale.
  const optimizer = new AdamW(adversary ? [...byDecay(trainable(model.parameters()), true), ...byDecay(adversary.parameters(), false)] : trainable(model.parameters()),
    { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay });
  const configJson = finetuneConfigJson(classifier, inputs.describe);
  let order: { epoch: number; ids: Uint32Array } = { epoch: -1, ids: new Uint32Array(0) };
  const tokenizerFile = join(outDir, 'tokenizer.json');

  // Data parallel: this rank's slice of the global micro-batch `all`. A rank whose slice is empty (a last batch with
  // fewer examples than ranks) runs one example with its loss scaled by 0, so that it still joins the all-reduce.
  const shardLoss = (all: Uint32Array, k: number): { loss: ReturnType<typeof crossEntropy>; units: number } => {
    const { lo, hi } = rankSlice(all.length, world!.rank, world!.size);
    const mine = hi > lo ? all.subarray(lo, hi) : all.subarray(0, 1);
    // Rows of the global packed batch before this rank's: its encoder dropouts cover tokens, the head's sequences.
    const T = classifier.sequencesPerExample;
    const start = hi > lo ? lo : 0;
    const lengths = classifier.sequenceLengths(Array.from(adversary ? all : all.subarray(0, start + mine.length), (i) => train.examples[i]!));
    let tokensBefore = 0;
    let tokens = 0;
    let padTo = 1;
    if (adversary) {
      // ASA's batches are padded, to the global batch's longest sequence as one process pads them: the rows before
      // this rank's are its sequences before it times that length.
      padTo = Math.max(1, ...lengths);
      tokensBefore = start * T * padTo;
      tokens = mine.length * T * padTo;
    } else {
      for (let q = 0; q < start * T; q++) tokensBefore += lengths[q]!;
      for (let q = start * T; q < (start + mine.length) * T; q++) tokens += lengths[q]!;
    }
    const { batch, maskRows } = classifier.batchOf(Array.from(mine, (i) => train.examples[i]!), adversary ? { padded: true, padTo } : {});
    // On the host: crossEntropy counts and checks them there and uploads them, so it need not wait for the device.
    const labels = fromTypedArray(Int32Array.from(mine, (i) => train.labels[i]!), [mine.length]);
    const weight = hi > lo ? mine.length / all.length : 0;
    if (adversary) {
      // ASA's terms (cross-entropy, the symmetric KL, τ²·kept pairs per sequence) are batch means: weight makes each
      // the rank's share, as for the plain loss.
      const loss = withDropoutShard(tokensBefore, tokens, () => scale(asaLoss(classifier, adversary, batch, maskRows, labels, cfg.asaTau).loss, weight), { before: start * T, rows: mine.length * T });
      return { loss, units: hi - lo };
    }
    const lossOf = (b: typeof batch) => crossEntropy(classifier.classLogits(b, maskRows), labels);
    // --adv: PGD's random start is drawn at this rank's rows of the global packed batch (tokensBefore); its step
    // normalises each sequence's gradient on its own, so the rank's unscaled loss gives the single process's δ.
    const delta = cfg.adv ? pgdPerturbation(model, batch, lossOf, { seed: (cfg.seed + PGD_SEED_OFFSET) % 2 ** 52, step: k, rowOffset: tokensBefore }) : null;
    const loss = withDropoutShard(tokensBefore, tokens, () => scale(lossOf(delta ? { ...batch, wordEmbeddingDelta: delta } : batch), weight), { before: start * T, rows: mine.length * T });
    return { loss, units: hi - lo };
  };

  return {
    model: trained,
    optimizer,
    unit: 'ex',
    name: 'fine-tuning',
    totalSteps: plan.totalSteps,
    perEpoch,
    microBatch(k) {
      const epoch = Math.floor(k / perEpoch);
      if (order.epoch !== epoch) order = { epoch, ids: epochOrder(train.examples.length, cfg.seed, epoch) };
      const first = (k % perEpoch) * globalBatch;
      const all = order.ids.subarray(first, first + globalBatch);
      if (world) return shardLoss(all, k);
      const ids = all;  // one process: the whole global batch
      const { batch, maskRows } = classifier.batchOf(Array.from(ids, (i) => train.examples[i]!), { padded: adversary !== null });
      // On the host, as in shardLoss: crossEntropy uploads them without waiting for the device.
      const labels = fromTypedArray(Int32Array.from(ids, (i) => train.labels[i]!), [ids.length]);
      if (adversary) return { loss: asaLoss(classifier, adversary, batch, maskRows, labels, cfg.asaTau).loss, units: ids.length };
      const lossOf = (b: typeof batch) => crossEntropy(classifier.classLogits(b, maskRows), labels);
      if (!cfg.adv) return { loss: lossOf(batch), units: ids.length };
      const delta = pgdPerturbation(model, batch, lossOf, { seed: (cfg.seed + PGD_SEED_OFFSET) % 2 ** 52, step: k });
      return { loss: lossOf({ ...batch, wordEmbeddingDelta: delta }), units: ids.length };
    },
    shouldEvaluate: plan.shouldProbe,
    evaluate: (step) => evaluateClassifier(classifier, test.examples, test.labels, { batchSize: cfg.batchSize, step, epoch: Math.round(plan.epochAt(step) * 1000) / 1000 }),
    describe: (e) => `eval at epoch ${e.epoch} (step ${e.step}): accuracy ${(100 * e.accuracy).toFixed(2)}%  macro-F1 ${(100 * e.macroF1).toFixed(2)}%  loss ${e.loss.toFixed(4)}  (${e.examples} examples)`,
    checkpoint: () => ({
      config: configJson,
      tokenizerFiles: existsSync(tokenizerFile) ? [tokenizerFile] : [],
      dropoutCounters: dropoutCounters(model),
    }),
    restore(ck) {
      const saved = (ck.extra.run ?? {}) as Record<string, unknown>;
      // The batch is the global one (world size × batch size): a resume at another world size with the same global
      // batch continues exactly (checkResumeWorld has compared it), so batchSize alone is not part of the identity.
      const savedGlobal = Number(saved.batchSize) * (Number(saved.worldSize) || 1);
      if ('batchSize' in saved && savedGlobal !== globalBatch) {
        throw new ClozeError('E_VALUE', `Expected a global batch of ${savedGlobal} examples (the run in ${ck.dir}) for resume but received ${globalBatch} (world size ${world?.size ?? 1} × batch size ${cfg.batchSize})`);
      }
      for (const f of RUN_IDENTITY) {
        if (f === 'batchSize') continue;
        if (f in saved && JSON.stringify(saved[f]) !== JSON.stringify(cfg[f])) {
          throw new ClozeError('E_VALUE', `Expected ${f} ${JSON.stringify(saved[f])} (the setting of the run in ${ck.dir}) for resume but received ${JSON.stringify(cfg[f])}`);
        }
      }
      restoreDropout(model, ck.dropoutCounters);
    },
    dispose() {
      optimizer.dispose();
      adversary?.dispose();
      classifier.dispose();
    },
  };
}
