/**
 * BertForMaskedLM with Hugging Face's parameter names. Stages:
 *   embed   ids → [B, L, D] (or packed [nnz, D])
 *   encode  L layers of attention + FFN on the fused attention kernel
 *   head    gather the M masked rows → dense → GELU → LN → tied decoder + bias
 *           → cross-entropy, in vocabulary chunks (linearCrossEntropy)
 *   or, for MVP, the same head at the [MASK] rows → only the label words'
 *           logits (labelWordLogits)
 */
import { keep, noGrad, scope } from '../../autograd/mode.js';
import { expected } from '../../errors.js';
import { alibiSlopes } from '../../ops/attention.js';
import { add, gelu, reshape } from '../../ops/elementwise.js';
import { linear } from '../../ops/linalg.js';
import { linearCrossEntropy } from '../../ops/linear_ce.js';
import { labelWordLogits } from '../../ops/label_words.js';
import { argmax } from '../../ops/cross_entropy.js';
import { embedding } from '../../ops/embedding.js';
import { Dropout, Embedding, LayerNorm, Linear, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import type { Parameter } from '../../nn/parameter.js';
import type { Device } from '../../native/types.js';
import { constant } from '../../nn/init.js';
import { Rng } from '../../rng.js';
import { fromTypedArray, tensor, type DType, type Tensor } from '../../tensor.js';
import { checkDtype, checkFloat, checkInt, checkShape, checkTensor } from '../../validate.js';
import { isPacked, keyPaddingFromAttentionMask, positionIds, type EncoderBatch, type MlmBatch } from './batch.js';
import { bertConfig, type BertConfig, type BertConfigInput } from './config.js';
import { BertLayer, ModuleList, type AttentionLayout } from './layers.js';

export interface BertModelOptions {
  /** Seeds the weight init and, through it, every dropout site. Default 0. */
  seed?: number;
  dtype?: DType;
}

/** word + position (absolute only) + token type embeddings, LayerNorm, dropout. */
export class BertEmbeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding | null;
  readonly token_type_embeddings: Embedding | null;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;
  constructor(c: BertConfig, init: InitOptions, dropoutSeed: number) {
    super();
    this.word_embeddings = this.registerModule('word_embeddings', new Embedding(c.vocabSize, c.hidden, init));
    this.position_embeddings =
      c.positionEmbedding === 'absolute' ? this.registerModule('position_embeddings', new Embedding(c.maxPosition, c.hidden, init)) : null;
    this.token_type_embeddings =
      c.typeVocabSize > 0 ? this.registerModule('token_type_embeddings', new Embedding(c.typeVocabSize, c.hidden, init)) : null;
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(c.hidden, c.layerNormEps, init.dtype));
    this.dropout = this.registerModule('dropout', new Dropout(c.hiddenDropout, dropoutSeed));
  }
  /**
   * ids [...] int32, positions/types of the same shape → [..., D]. wordDelta
   * ([..., D]) is added to the word embeddings alone, before the rest: the
   * perturbation adversarial training (PGD) puts on the input.
   */
  forward(ids: Tensor, positions: Tensor | null, types: Tensor | null, wordDelta: Tensor | null = null): Tensor {
    let x = this.word_embeddings.forward(ids);
    if (wordDelta) x = add(x, wordDelta);
    if (this.position_embeddings && positions) x = add(x, this.position_embeddings.forward(positions));
    if (this.token_type_embeddings && types) x = add(x, this.token_type_embeddings.forward(types));
    return this.dropout.forward(this.LayerNorm.forward(x));
  }
}

/** encoder.layer.N; pre-LN adds a final encoder.LayerNorm (not an HF name: HF BERT has no pre-LN). */
export class BertEncoder extends Module {
  readonly layer: ModuleList<BertLayer>;
  readonly LayerNorm: LayerNorm | null;
  constructor(c: BertConfig, init: InitOptions, seeds: () => number) {
    super();
    this.layer = this.registerModule('layer', new ModuleList(Array.from({ length: c.layers }, () => new BertLayer(c, init, [seeds(), seeds()]))));
    this.LayerNorm = c.norm === 'pre' ? this.registerModule('LayerNorm', new LayerNorm(c.hidden, c.layerNormEps, init.dtype)) : null;
  }
  forward(x: Tensor, layout: AttentionLayout): Tensor {
    this.layer.items.forEach((l, i) => {
      const bias = layout.layerBias ? layout.layerBias(i, x, layout.keyPadding ?? null) : undefined;
      x = l.forward(x, layout, bias);
    });
    return this.LayerNorm ? this.LayerNorm.forward(x) : x;
  }
}

export class BertModel extends Module {
  readonly embeddings: BertEmbeddings;
  readonly encoder: BertEncoder;
  constructor(c: BertConfig, init: InitOptions, seeds: () => number) {
    super();
    this.embeddings = this.registerModule('embeddings', new BertEmbeddings(c, init, seeds()));
    this.encoder = this.registerModule('encoder', new BertEncoder(c, init, seeds));
  }
}

/** cls.predictions.transform: dense → GELU → LayerNorm. */
export class BertPredictionHeadTransform extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  constructor(c: BertConfig, init: InitOptions) {
    super();
    this.dense = this.registerModule('dense', new Linear(c.hidden, c.hidden, init));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(c.hidden, c.layerNormEps, init.dtype));
  }
  forward(x: Tensor): Tensor {
    return this.LayerNorm.forward(gelu(this.dense.forward(x)));
  }
}

/** cls.predictions: the transform and the decoder bias; the decoder weight is the word embeddings. */
export class BertLMPredictionHead extends Module {
  readonly transform: BertPredictionHeadTransform;
  readonly bias: Parameter;
  constructor(c: BertConfig, init: InitOptions) {
    super();
    this.transform = this.registerModule('transform', new BertPredictionHeadTransform(c, init));
    this.bias = this.registerParameter('bias', constant([c.vocabSize], 0, init.dtype));
  }
}

export class BertOnlyMLMHead extends Module {
  readonly predictions: BertLMPredictionHead;
  constructor(c: BertConfig, init: InitOptions) {
    super();
    this.predictions = this.registerModule('predictions', new BertLMPredictionHead(c, init));
  }
}

/**
 * What encodeBatch runs: embeddings then encoder. BertModel is one; ELECTRA's
 * generator is another (the discriminator's embeddings, projected, then its own encoder).
 */
export interface BertTrunk {
  readonly embeddings: Pick<BertEmbeddings, 'forward' | 'word_embeddings'>;
  readonly encoder: Pick<BertEncoder, 'forward'>;
  readonly device: Device;
}

/**
 * The encoder's final hidden states for a batch: [B, L, D] padded, [nnz, D]
 * packed. Shared by every model with a `bert` trunk (MLM, classification,
 * ELECTRA); `slopes` are the ALiBi slopes, or null for absolute positions.
 */
export function encodeBatch(bert: BertTrunk, c: BertConfig, slopes: Tensor | null, batch: EncoderBatch): Tensor {
  checkTensor(batch.ids, 'ids');
  checkDtype(batch.ids, 'int32', 'ids');
  const packed = isPacked(batch);
  if (packed && batch.ids.shape.length !== 1) throw expected('an int32 tensor [nnz] with cuSeqlens', 'ids', batch.ids, 'E_SHAPE');
  if (!packed && batch.ids.shape.length !== 2) throw expected('an int32 tensor [B, L]', 'ids', batch.ids, 'E_SHAPE');
  const L = packed ? batch.maxSeqlen : batch.ids.shape[1]!;
  if (c.positionEmbedding === 'absolute' && L > c.maxPosition) {
    throw expected(`sequences of at most maxPosition (${c.maxPosition}) tokens`, packed ? 'maxSeqlen' : 'ids', L, 'E_SHAPE');
  }
  if (batch.tokenTypeIds) {
    checkTensor(batch.tokenTypeIds, 'tokenTypeIds');
    checkDtype(batch.tokenTypeIds, 'int32', 'tokenTypeIds');
    checkShape(batch.tokenTypeIds, batch.ids.shape, 'tokenTypeIds');
    if (c.typeVocabSize === 0) throw expected('no tokenTypeIds (typeVocabSize is 0)', 'tokenTypeIds', batch.tokenTypeIds);
  }
  // Batches are built on the host; the model moves what it reads to its own
  // device (a no-op on the CPU), so the same task code drives either device.
  const dev = bert.device;
  const positions = c.positionEmbedding === 'absolute' ? fromTypedArray(positionIds(batch), batch.ids.shape).to(dev) : null;
  const types = (batch.tokenTypeIds ?? (c.typeVocabSize > 0 ? fromTypedArray(new Int32Array(batch.ids.size), batch.ids.shape) : null))?.to(dev) ?? null;
  const layout: AttentionLayout = { ...(slopes ? { alibiSlopes: slopes } : {}) };
  if (isPacked(batch)) {
    layout.cuSeqlens = batch.cuSeqlens.to(dev);
    layout.maxSeqlen = batch.maxSeqlen;
  } else if (batch.attentionMask) {
    layout.keyPadding = keyPaddingFromAttentionMask(batch.attentionMask, batch.ids.shape).to(dev);
  }
  if (batch.attentionBias) {
    if (isPacked(batch)) throw expected('a padded batch with attentionBias (a [B, L, L] bias needs the padded layout)', 'cuSeqlens', 'a packed batch');
    layout.layerBias = batch.attentionBias;
  }
  let delta: Tensor | null = null;
  if (batch.wordEmbeddingDelta) {
    checkFloat(batch.wordEmbeddingDelta, 'wordEmbeddingDelta');
    checkShape(batch.wordEmbeddingDelta, [...batch.ids.shape, c.hidden], 'wordEmbeddingDelta');
    delta = batch.wordEmbeddingDelta.to(dev).cast(bert.embeddings.word_embeddings.weight.dtype);
  }
  const x = bert.embeddings.forward(batch.ids.to(dev), positions, types, delta);
  return bert.encoder.forward(x, layout);
}

export class BertForMaskedLM extends Module {
  readonly config: BertConfig;
  readonly bert: BertModel;
  readonly cls: BertOnlyMLMHead;
  private readonly slopes: Tensor | null;

  constructor(config: BertConfigInput, opts: BertModelOptions = {}) {
    super();
    this.config = bertConfig(config);
    const seed = opts.seed ?? 0;
    checkInt(seed, 'seed', 0, 2 ** 32 - 1);
    const dtype = opts.dtype ?? 'float32';
    const init: InitOptions = { rng: new Rng(seed), std: this.config.initializerRange, dtype };
    // Each dropout site gets its own Philox key, derived from the model seed.
    const seedRng = new Rng(seed + 2 ** 32);
    const seeds = (): number => seedRng.nextU32();
    this.bert = this.registerModule('bert', new BertModel(this.config, init, seeds));
    this.cls = this.registerModule('cls', new BertOnlyMLMHead(this.config, init));
    this.slopes = this.config.positionEmbedding === 'alibi' ? keep(tensor(alibiSlopes(this.config.heads), [this.config.heads], dtype)) : null;
  }

  get dtype(): DType {
    return this.bert.embeddings.word_embeddings.weight.dtype as DType;
  }

  protected override moveFixed(move: (t: Tensor) => void): void {
    if (this.slopes) move(this.slopes);
  }

  /** Final hidden states: [B, L, D] for a padded batch, [nnz, D] for a packed one. */
  encode(batch: EncoderBatch): Tensor {
    return encodeBatch(this.bert, this.config, this.slopes, batch);
  }

  /** The head's input at the masked rows: [M, D] after dense → GELU → LayerNorm. */
  private maskedHidden(batch: MlmBatch): Tensor {
    checkTensor(batch.rows, 'rows');
    checkDtype(batch.rows, 'int32', 'rows');
    checkTensor(batch.targets, 'targets');
    checkDtype(batch.targets, 'int32', 'targets');
    checkShape(batch.targets, batch.rows.shape, 'targets');
    return this.headInput(batch, batch.rows);
  }

  /** The head's input at `rows` (int32 flat indices into the encoded tokens): [M, D] after dense → GELU → LayerNorm. */
  private headInput(batch: EncoderBatch, rows: Tensor): Tensor {
    const h = this.encode(batch);
    const flat = reshape(h, [-1, this.config.hidden]);
    return this.cls.predictions.transform.forward(embedding(flat, reshape(rows.to(this.device), [-1])));
  }

  /** Mean MLM cross-entropy over the masked rows (targets of −100 are skipped): a 0-d tensor. */
  loss(batch: MlmBatch): Tensor {
    const h = this.maskedHidden(batch);
    return linearCrossEntropy(h, this.bert.embeddings.word_embeddings.weight, this.cls.predictions.bias, batch.targets.to(this.device));
  }

  /**
   * MVP's label-word scores: the MLM logits of the token ids `words` (int32
   * [K]) at `rows` (int32 [M], flat indices into the batch's tokens as
   * MlmBatch.rows: b·L + l padded, the packed index unpadded): [M, K]. The
   * head runs on those rows only and scores just the K words against the tied
   * decoder and its bias (the labelWordLogits op), never the [M, V] logits.
   */
  labelWordLogits(batch: EncoderBatch, rows: Tensor, words: Tensor): Tensor {
    checkTensor(rows, 'rows');
    checkDtype(rows, 'int32', 'rows');
    if (rows.shape.length !== 1) throw expected('an int32 tensor [M]', 'rows', rows, 'E_SHAPE');
    checkTensor(words, 'words');
    const h = this.headInput(batch, rows);
    return labelWordLogits(h, this.bert.embeddings.word_embeddings.weight, this.cls.predictions.bias, words.to(this.device));
  }

  /**
   * Eval-only masked-token accuracy: materialises the [M, V] logits (no
   * vocabulary chunking) and takes the native row argmax. Records no graph.
   */
  accuracy(batch: MlmBatch): { correct: number; count: number } {
    return noGrad(() => scope(() => {
      const h = this.maskedHidden(batch);
      const logits = linear(h, this.bert.embeddings.word_embeddings.weight, this.cls.predictions.bias);
      const best = argmax(logits).toArray();
      const t = batch.targets.toArray();
      let correct = 0;
      let count = 0;
      for (let m = 0; m < t.length; m++) {
        if (t[m] === -100) continue;
        count++;
        if (best[m] === t[m]) correct++;
      }
      return { correct, count };
    }));
  }
}
