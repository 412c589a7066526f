/**
 * ELECTRA replaced-token detection (Clark et al., 2020): a small generator
 * MLM and a discriminator, trained together.
 *
 *   generator      the discriminator's embeddings (the same tensors) →
 *                  embeddings_project (E → G) → its own encoder (same depth,
 *                  G wide) → at the masked rows generator_predictions
 *                  (dense G → E, GELU, LayerNorm) → the tied decoder (the
 *                  word embeddings) + generator_lm_head.bias. Its MLM loss is
 *                  linearCrossEntropy; its replacements are drawn by
 *                  linearSample in the same vocabulary chunks (never [M, V]),
 *                  with no gradient.
 *   discriminator  a BERT encoder on the corrupted ids, then per token
 *                  discriminator_predictions (dense D → D, GELU, dense D → 1),
 *                  binary cross-entropy with logits over the non-pad tokens
 *                  (label 1 = replaced: the sample differs from the original).
 *   loss           L_MLM(generator) + discWeight · L_disc (discWeight 50).
 *
 * Names follow Hugging Face: the discriminator is ElectraForPreTraining
 * (electra.*, discriminator_predictions.*), the generator is ElectraForMaskedLM
 * under generator.* (generator.electra.embeddings_project,
 * generator.electra.encoder, generator.generator_predictions,
 * generator.generator_lm_head.bias); the shared embeddings are stored once,
 * under electra.embeddings. The embedding width E is the discriminator's
 * hidden size, as in the official code's base and large models (its small
 * model uses E = 128 with a projection in the discriminator too; we do not).
 */
import { keep, noGrad, scope } from '../../autograd/mode.js';
import { expected } from '../../errors.js';
import { LayerNorm, Linear, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import type { Parameter } from '../../nn/parameter.js';
import { constant } from '../../nn/init.js';
import { argmax, crossEntropy } from '../../ops/cross_entropy.js';
import { embedding } from '../../ops/embedding.js';
import { add, gelu, reshape, scale } from '../../ops/elementwise.js';
import { linear } from '../../ops/linalg.js';
import { linearCrossEntropy, linearSample } from '../../ops/linear_ce.js';
import { Rng } from '../../rng.js';
import { fromTypedArray, tensor, type DType, type Tensor } from '../../tensor.js';
import { checkDtype, checkInt, checkNumber, checkShape, checkTensor } from '../../validate.js';
import { isPacked, type EncoderBatch, type MlmBatch } from '../bert/batch.js';
import { bertConfig, type BertConfig, type BertConfigInput } from '../bert/config.js';
import { BertEncoder, BertModel, encodeBatch, type BertModelOptions, type BertTrunk } from '../bert/model.js';

export interface ElectraConfig {
  discriminator: BertConfig;
  /** Same vocabulary, positions, token types and depth as the discriminator; its own width. */
  generator: BertConfig;
  /** λ of L_MLM + λ·L_disc (ELECTRA: 50). */
  discWeight: number;
}

export interface ElectraConfigInput {
  discriminator: BertConfigInput;
  /** Generator width as a share of the discriminator's (default 1/4, or 1/3 from 768 wide: ELECTRA's base). */
  generatorFraction?: number;
  /** Explicit generator sizes; override the fraction. */
  generator?: Partial<Pick<BertConfig, 'hidden' | 'heads' | 'intermediate'>>;
  discWeight?: number;
}

/** The generator of a discriminator: same depth, `fraction` of its width, FFN 4× its width, heads = width/64 (at least 1). */
export function generatorConfig(d: BertConfig, fraction?: number, sizes: ElectraConfigInput['generator'] = {}): BertConfig {
  const f = fraction ?? (d.hidden >= 768 ? 1 / 3 : 1 / 4);
  checkNumber(f, 'generatorFraction', Number.MIN_VALUE, 1);
  const hidden = sizes.hidden ?? Math.max(1, Math.round(d.hidden * f));
  let heads = sizes.heads ?? Math.max(1, Math.floor(hidden / 64));
  while (hidden % heads !== 0) heads--;
  return bertConfig({ ...d, hidden, heads, intermediate: sizes.intermediate ?? 4 * hidden });
}

export function electraConfig(input: ElectraConfigInput): ElectraConfig {
  const discriminator = bertConfig(input.discriminator);
  if (discriminator.positionEmbedding !== 'absolute') {
    throw expected("positionEmbedding 'absolute' (ELECTRA shares the position embeddings with its generator)", 'positionEmbedding', discriminator.positionEmbedding);
  }
  const discWeight = input.discWeight ?? 50;
  checkNumber(discWeight, 'discWeight', 0);
  return { discriminator, generator: generatorConfig(discriminator, input.generatorFraction, input.generator), discWeight };
}

/** electra: the discriminator's trunk (its embeddings are the generator's too). */
export class ElectraModel extends BertModel {}

/** discriminator_predictions: dense → GELU → dense_prediction, one logit per token (HF ElectraDiscriminatorPredictions). */
export class ElectraDiscriminatorPredictions extends Module {
  readonly dense: Linear;
  readonly dense_prediction: Linear;
  constructor(c: BertConfig, init: InitOptions) {
    super();
    this.dense = this.registerModule('dense', new Linear(c.hidden, c.hidden, init));
    this.dense_prediction = this.registerModule('dense_prediction', new Linear(c.hidden, 1, init));
  }
  /** [..., D] → [..., 1]. */
  forward(x: Tensor): Tensor {
    return this.dense_prediction.forward(gelu(this.dense.forward(x)));
  }
}

/** generator.electra: the projection of the shared embeddings and the generator's encoder (the embeddings are not registered here). */
export class ElectraGeneratorTrunk extends Module {
  readonly embeddings_project: Linear;
  readonly encoder: BertEncoder;
  constructor(embeddingSize: number, c: BertConfig, init: InitOptions, seeds: () => number) {
    super();
    this.embeddings_project = this.registerModule('embeddings_project', new Linear(embeddingSize, c.hidden, init));
    this.encoder = this.registerModule('encoder', new BertEncoder(c, init, seeds));
  }
}

/** generator_predictions: dense (G → E) → GELU → LayerNorm (HF ElectraGeneratorPredictions). */
export class ElectraGeneratorPredictions extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  constructor(hidden: number, embeddingSize: number, eps: number, init: InitOptions) {
    super();
    this.dense = this.registerModule('dense', new Linear(hidden, embeddingSize, init));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(embeddingSize, eps, init.dtype));
  }
  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(gelu(this.dense.forward(x)));
  }
}

/** generator_lm_head: only its bias is a parameter; the weight is the shared word embeddings. */
export class ElectraLmHeadBias extends Module {
  readonly bias: Parameter;
  constructor(vocabSize: number, dtype: DType) {
    super();
    this.bias = this.registerParameter('bias', constant([vocabSize], 0, dtype));
  }
}

export class ElectraGenerator extends Module {
  readonly electra: ElectraGeneratorTrunk;
  readonly generator_predictions: ElectraGeneratorPredictions;
  readonly generator_lm_head: ElectraLmHeadBias;
  constructor(embeddingSize: number, c: BertConfig, init: InitOptions, seeds: () => number) {
    super();
    this.electra = this.registerModule('electra', new ElectraGeneratorTrunk(embeddingSize, c, init, seeds));
    this.generator_predictions = this.registerModule('generator_predictions', new ElectraGeneratorPredictions(c.hidden, embeddingSize, c.layerNormEps, init));
    this.generator_lm_head = this.registerModule('generator_lm_head', new ElectraLmHeadBias(c.vocabSize, init.dtype ?? 'float32'));
  }
}

/**
 * A data-parallel rank's place in the global batch: masked rows on lower ranks (the sampler's row offset), and
 * the global batch's masked targets and real tokens (the generator's and the discriminator's loss denominators).
 */
export interface ElectraShard {
  maskedBefore: number;
  globalMasked: number;
  globalTokens: number;
  /** This rank's real tokens (the discriminator's labels that are not −100). */
  tokens: number;
}

/** One ELECTRA step's pieces: the loss and what went into it. */
export interface ElectraStep {
  /** L_MLM + discWeight · L_disc, 0-d. */
  loss: Tensor;
  genLoss: Tensor;
  discLoss: Tensor;
  /** Sampled ids at the masked rows, int32 [M] (host). */
  sampled: Int32Array;
  /** The discriminator's input ids, flat (host). */
  corrupted: Int32Array;
  /** Per token: 1 replaced, 0 original, −100 padding (host, flat). */
  labels: Int32Array;
}

export class ElectraForPreTraining extends Module {
  readonly config: ElectraConfig;
  readonly electra: ElectraModel;
  readonly discriminator_predictions: ElectraDiscriminatorPredictions;
  readonly generator: ElectraGenerator;
  /** [[0], [1]]: turns a logit z into the two-class logits [0, z], whose cross-entropy is the BCE with logits. */
  private readonly twoClass: Tensor;
  private readonly generatorTrunk: BertTrunk;

  constructor(config: ElectraConfigInput | ElectraConfig, opts: BertModelOptions = {}) {
    super();
    this.config = 'discWeight' in config && 'generator' in config && (config.generator as BertConfig).vocabSize !== undefined
      ? config as ElectraConfig
      : electraConfig(config as ElectraConfigInput);
    const seed = opts.seed ?? 0;
    checkInt(seed, 'seed', 0, 2 ** 32 - 1);
    const dtype = opts.dtype ?? 'float32';
    const d = this.config.discriminator;
    const g = this.config.generator;
    const seedRng = new Rng(seed + 2 ** 32);
    const seeds = (): number => seedRng.nextU32();
    const init: InitOptions = { rng: new Rng(seed), std: d.initializerRange, dtype };
    this.electra = this.registerModule('electra', new ElectraModel(d, init, seeds));
    this.discriminator_predictions = this.registerModule('discriminator_predictions', new ElectraDiscriminatorPredictions(d, init));
    this.generator = this.registerModule('generator', new ElectraGenerator(d.hidden, g, { ...init, std: g.initializerRange }, seeds));
    this.twoClass = keep(tensor([0, 1], [2, 1], dtype));
    const shared = this.electra.embeddings;
    const trunk = this.generator.electra;
    this.generatorTrunk = {
      embeddings: {
        word_embeddings: shared.word_embeddings,
        forward: (ids, positions, types, delta) => trunk.embeddings_project.forward(shared.forward(ids, positions, types, delta)),
      },
      encoder: trunk.encoder,
      get device() { return trunk.device; },
    };
  }

  get dtype(): DType {
    return this.electra.embeddings.word_embeddings.weight.dtype as DType;
  }

  protected override moveFixed(move: (t: Tensor) => void): void {
    move(this.twoClass);
  }

  override dispose(): void {
    this.twoClass.dispose();
    super.dispose();
  }

  /** The tied decoder of the generator: the shared word embeddings [V, E]. */
  get decoderWeight(): Parameter {
    return this.electra.embeddings.word_embeddings.weight;
  }

  /** The discriminator's final hidden states: [B, L, D] padded, [nnz, D] packed. */
  encode(batch: EncoderBatch): Tensor {
    return encodeBatch(this.electra, this.config.discriminator, null, batch);
  }

  /** The generator's head input at `rows`: [M, E] after generator_predictions. */
  generatorHidden(batch: EncoderBatch, rows: Tensor): Tensor {
    checkTensor(rows, 'rows');
    checkDtype(rows, 'int32', 'rows');
    const h = encodeBatch(this.generatorTrunk, this.config.generator, null, batch);
    const flat = reshape(h, [-1, this.config.generator.hidden]);
    return this.generator.generator_predictions.forward(embedding(flat, reshape(rows.to(this.device), [-1])));
  }

  /** The generator's mean MLM cross-entropy over the masked rows, from generatorHidden's output. */
  generatorLoss(h: Tensor, targets: Tensor, normalizer?: number): Tensor {
    // Host targets go to the head as they are: it counts and checks them there before uploading them (no sync).
    const t = targets.device === 'cpu' ? targets : targets.to(this.device);
    return linearCrossEntropy(h, this.decoderWeight, this.generator.generator_lm_head.bias, t, normalizer === undefined ? {} : { normalizer });
  }

  /** Replacements for the masked rows, sampled from the generator's softmax at temperature 1 (no gradient): int32 [M]. */
  sample(h: Tensor, o: { seed: number; step: number; temperature?: number; rowOffset?: number }): Tensor {
    return noGrad(() => linearSample(h, this.decoderWeight, this.generator.generator_lm_head.bias, { seed: o.seed, step: o.step, temperature: o.temperature ?? 1, rowOffset: o.rowOffset ?? 0 }));
  }

  /** The discriminator's logit per token, flat: [B·L] padded, [nnz] packed. */
  discriminatorLogits(batch: EncoderBatch): Tensor {
    const h = this.encode(batch);
    return reshape(this.discriminator_predictions.forward(reshape(h, [-1, this.config.discriminator.hidden])), [-1]);
  }

  /** Mean binary cross-entropy with logits over the tokens whose label is not −100: logits [N], labels int32 [N] of 0, 1 or −100. */
  discriminatorLoss(logits: Tensor, labels: Tensor): Tensor {
    checkShape(labels, logits.shape, 'labels');
    // CE over the logits [0, z] with target y is log(1 + e^z) − y·z: the BCE with logits.
    // Host labels stay on the host: crossEntropy counts and uploads them there, with no wait for the device.
    return crossEntropy(linear(reshape(logits, [-1, 1]), this.twoClass), labels.device === 'cpu' ? labels : labels.to(this.device));
  }

  /**
   * One ELECTRA step on a masked batch (85% [MASK], 15% unchanged at the
   * rows): generator loss and samples, the corrupted ids and their labels,
   * the discriminator loss, and the total. The samples are keyed on
   * (seed, step, row); they and the labels are built on the host.
   */
  step(batch: MlmBatch, o: { seed: number; step: number; shard?: ElectraShard }): ElectraStep {
    checkTensor(batch.targets, 'targets');
    checkDtype(batch.targets, 'int32', 'targets');
    checkShape(batch.targets, batch.rows.shape, 'targets');
    const sh = o.shard;
    const h = this.generatorHidden(batch, batch.rows);
    const genLoss = this.generatorLoss(h, batch.targets, sh ? Math.max(1, sh.globalMasked) : undefined);
    const sampled = this.sample(h, { seed: o.seed, step: o.step, rowOffset: sh?.maskedBefore ?? 0 }).toArray() as Int32Array;
    const { corrupted, labels } = replaceTokens(batch, sampled);
    const ids = fromTypedArray(corrupted, batch.ids.shape);
    const discBatch: EncoderBatch = { ...batch, ids } as EncoderBatch;
    let discLoss = this.discriminatorLoss(this.discriminatorLogits(discBatch), fromTypedArray(labels, [labels.length]));
    if (sh) {
      // The rank's mean over its tokens times its share of the global batch's tokens: the shares sum to the global mean.
      discLoss = scale(discLoss, sh.tokens / Math.max(1, sh.globalTokens));
    }
    const loss = add(genLoss, scale(discLoss, this.config.discWeight));
    return { loss, genLoss, discLoss, sampled, corrupted, labels };
  }

  /** Eval-only: the generator's argmax accuracy at the masked rows and the discriminator's per-token accuracy. Records no graph. */
  accuracy(batch: MlmBatch, o: { seed: number; step: number }): { genCorrect: number; genCount: number; discCorrect: number; discCount: number; replaced: number; loss: number; genLoss: number; discLoss: number } {
    return noGrad(() => scope(() => {
      const h = this.generatorHidden(batch, batch.rows);
      const genLoss = this.generatorLoss(h, batch.targets).item();
      const best = argmax(linear(h, this.decoderWeight, this.generator.generator_lm_head.bias)).toArray();
      const t = batch.targets.toArray();
      let genCorrect = 0;
      let genCount = 0;
      for (let m = 0; m < t.length; m++) {
        if (t[m] === -100) continue;
        genCount++;
        if (best[m] === t[m]) genCorrect++;
      }
      const sampled = this.sample(h, o).toArray() as Int32Array;
      const { corrupted, labels } = replaceTokens(batch, sampled);
      const logits = this.discriminatorLogits({ ...batch, ids: fromTypedArray(corrupted, batch.ids.shape) } as EncoderBatch);
      const discLoss = this.discriminatorLoss(logits, fromTypedArray(labels, [labels.length])).item();
      const z = logits.toArray();
      let discCorrect = 0;
      let discCount = 0;
      let replaced = 0;
      for (let i = 0; i < labels.length; i++) {
        if (labels[i] === -100) continue;
        discCount++;
        if (labels[i] === 1) replaced++;
        if ((z[i]! > 0 ? 1 : 0) === labels[i]) discCorrect++;
      }
      return { genCorrect, genCount, discCorrect, discCount, replaced, genLoss, discLoss, loss: genLoss + this.config.discWeight * discLoss };
    }));
  }
}

/**
 * The discriminator's input and labels: the batch's (masked) ids with the
 * samples written at the masked rows, and per token 1 where the sample
 * differs from the original, 0 elsewhere, −100 at padding.
 */
export function replaceTokens(batch: MlmBatch, sampled: Int32Array): { corrupted: Int32Array; labels: Int32Array } {
  const corrupted = Int32Array.from(batch.ids.toArray() as ArrayLike<number>);
  const rows = batch.rows.toArray();
  const targets = batch.targets.toArray();
  if (sampled.length !== rows.length) throw expected(`${rows.length} samples (one per masked row)`, 'sampled', sampled.length, 'E_SHAPE');
  const labels = new Int32Array(corrupted.length);
  if (!isPacked(batch) && batch.attentionMask) {
    const mask = batch.attentionMask.toArray();
    for (let i = 0; i < labels.length; i++) if (!mask[i]) labels[i] = -100;
  }
  for (let m = 0; m < rows.length; m++) {
    if (targets[m] === -100) continue;
    const r = rows[m]!;
    corrupted[r] = sampled[m]!;
    labels[r] = sampled[m] !== targets[m] ? 1 : 0;
  }
  return { corrupted, labels };
}
