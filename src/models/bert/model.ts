/**
 * BertForMaskedLM with Hugging Face's parameter names. Stages:
 *   embed   ids → [B, L, D] (or packed [nnz, D])
 *   encode  L layers of attention + FFN on the fused attention kernel
 *   head    gather the M masked rows → dense → GELU → LN → tied decoder + bias
 *           → cross-entropy, in vocabulary chunks (linearCrossEntropy)
 *   or, for MVP, the same head at the [MASK] rows → only the label words'
 *           logits (labelWordLogits)
 * With a pre-training decoder (`decoder`: DeBERTa's EMD or DrBERT's blocks,
 * see MlmDecoder) loss() runs it between the encoder and the head.
 */
import { keep, noGrad, scope } from '../../autograd/mode.js';
import { expected } from '../../errors.js';
import { alibiSlopes } from '../../ops/attention.js';
import { add, gelu, mul, reshape } from '../../ops/elementwise.js';
import { linear } from '../../ops/linalg.js';
import { linearCrossEntropy } from '../../ops/linear_ce.js';
import { labelWordLogits } from '../../ops/label_words.js';
import { argmax } from '../../ops/cross_entropy.js';
import { embedding } from '../../ops/embedding.js';
import { Dropout, Embedding, LayerNorm, Linear, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { profileLabel } from '../../profile/state.js';
import type { Parameter } from '../../nn/parameter.js';
import type { Device } from '../../native/types.js';
import { constant } from '../../nn/init.js';
import { Rng } from '../../rng.js';
import { fromTypedArray, tensor, type DType, type Tensor } from '../../tensor.js';
import { checkDtype, checkFloat, checkInt, checkNumber, checkShape, checkTensor } from '../../validate.js';
import { isPacked, keyPaddingFromAttentionMask, positionIds, type EncoderBatch, type MlmBatch } from './batch.js';
import { bertConfig, type BertConfig, type BertConfigInput } from './config.js';
import { BertLayer, ModuleList, type AttentionLayout } from './layers.js';

export interface BertModelOptions {
  /** Seeds the weight init and, through it, every dropout site. Default 0. */
  seed?: number;
  dtype?: DType;
  /** BertForMaskedLM: an enhanced MLM decoder before the head (pre-training only). */
  decoder?: MlmDecoder | null;
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
  /** Layers [0, n) only, without the final pre-LN LayerNorm (the enhanced mask decoder's H). */
  forwardFirst(x: Tensor, layout: AttentionLayout, n: number): Tensor {
    this.layer.items.slice(0, n).forEach((l, i) => {
      const bias = layout.layerBias ? layout.layerBias(i, x, layout.keyPadding ?? null) : undefined;
      x = l.forward(x, layout, bias);
    });
    return x;
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
    return this.LayerNorm.forward(gelu(profileLabel('head dense', () => this.dense.forward(x))));
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
  /** DrBERT's decoder blocks (cls.drbert.layer.N.…), pre-training only; null otherwise. */
  drbert: DrBertDecoder | null = null;
  constructor(c: BertConfig, init: InitOptions) {
    super();
    this.predictions = this.registerModule('predictions', new BertLMPredictionHead(c, init));
  }
  attachDrBert(d: DrBertDecoder): DrBertDecoder {
    this.drbert = this.registerModule('drbert', d);
    return d;
  }
}

/**
 * An enhanced MLM decoder between the encoder and the head (pre-training only):
 *   emd     DeBERTa's enhanced mask decoder: H = the second-to-last layer's output, q = H + the position
 *           embeddings; the last encoder layer runs twice more with shared weights, q ← layer(q; keys and
 *           values from H). No parameters of its own.
 *   drbert  `layers` extra blocks (cls.drbert.*) with gradual unmasking attention: each masked row draws
 *           u ~ U[0,1) once; in block i of n it is attendable as a key iff u < t_i, t_i = f + (1 − f)·i/(n − 1)
 *           (f = unmaskFraction; n = 1: t = f), so with the defaults block 1 sees half the masked rows and
 *           block 2 all of them. Each masked row then takes the decoder's output with probability mixProb,
 *           else the encoder's. Padded batches only (the [B, L, L] mask).
 */
export type MlmDecoder = { kind: 'emd' } | { kind: 'drbert'; layers: number; unmaskFraction: number; mixProb: number };

/** The names of the parameters only a DrBERT pre-training run has: dropped on export, ignored when fine-tuning. */
export const isDecoderKey = (k: string): boolean => k.startsWith('cls.drbert.');

export class DrBertDecoder extends Module {
  readonly layer: ModuleList<BertLayer>;
  constructor(c: BertConfig, init: InitOptions, seeds: () => number, n: number) {
    super();
    this.layer = this.registerModule('layer', new ModuleList(Array.from({ length: n }, () => new BertLayer(c, init, [seeds(), seeds()]))));
  }
}

/** DrBERT's draws for one batch, a pure function of `seed`: per masked row, its unmask draw and whether it takes the decoder's output. */
export function drbertDraws(seed: number, m: number, mixProb: number): { unmask: Float64Array; fromDecoder: Uint8Array } {
  const rng = new Rng(seed);
  const unmask = new Float64Array(m);
  for (let i = 0; i < m; i++) unmask[i] = rng.uniform();
  const fromDecoder = new Uint8Array(m);
  for (let i = 0; i < m; i++) fromDecoder[i] = rng.uniform() < mixProb ? 1 : 0;
  return { unmask, fromDecoder };
}

/**
 * A data-parallel rank's masked rows within the global batch's: `before` on lower ranks, `total` in all; DrBERT's
 * per-row draws are made for all of them and this rank takes its run.
 */
export interface DrawRows {
  before: number;
  total: number;
}

/** The unmask threshold of DrBERT block i of n. */
export function drbertThreshold(i: number, n: number, fraction: number): number {
  return n === 1 ? fraction : fraction + ((1 - fraction) * i) / (n - 1);
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
  const { x, layout } = embedBatch(bert, c, slopes, batch);
  return bert.encoder.forward(x, layout);
}

/** The embeddings' output and the attention layout of a batch (encodeBatch's first half); `positions` are the absolute position ids on the model's device, or null. */
export function embedBatch(bert: Pick<BertTrunk, 'embeddings' | 'device'>, c: BertConfig, slopes: Tensor | null, batch: EncoderBatch): { x: Tensor; layout: AttentionLayout; positions: Tensor | null } {
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
    // Left on the host: attention validates it there and uploads it itself, where a device copy would be read
    // back for validation (a wait for the device) in every layer's forward and backward.
    layout.cuSeqlens = batch.cuSeqlens;
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
  return { x, layout, positions };
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
    const d = opts.decoder ?? null;
    if (d?.kind === 'emd' && this.config.positionEmbedding !== 'absolute') {
      throw expected('a model with a position table (positionEmbedding absolute) for decoder emd', 'positionEmbedding', this.config.positionEmbedding);
    }
    if (d?.kind === 'drbert') {
      checkInt(d.layers, 'decoderLayers', 1);
      checkNumber(d.unmaskFraction, 'unmaskFraction', 0, 1);
      checkNumber(d.mixProb, 'decoderMix', 0, 1);
      // After the encoder and head: their init and dropout seeds are those of a model without a decoder.
      this.cls.attachDrBert(new DrBertDecoder(this.config, init, seeds, d.layers));
    }
    this.decoder = d;
  }

  /** The enhanced MLM decoder of loss() (pre-training only), or null. */
  readonly decoder: MlmDecoder | null;

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

  /** The head's input at the masked rows: [M, D] after dense → GELU → LayerNorm (through the decoder, if any). */
  private maskedHidden(batch: MlmBatch, drawSeed: number, drawRows?: DrawRows): Tensor {
    checkTensor(batch.rows, 'rows');
    checkDtype(batch.rows, 'int32', 'rows');
    checkTensor(batch.targets, 'targets');
    checkDtype(batch.targets, 'int32', 'targets');
    checkShape(batch.targets, batch.rows.shape, 'targets');
    if (!this.decoder) return this.headInput(batch, batch.rows);
    return this.cls.predictions.transform.forward(this.decoded(batch, batch.rows, drawSeed, drawRows));
  }

  /** The decoder's output at `rows` (before the head's transform): [M, D]. */
  decoded(batch: EncoderBatch, rows: Tensor, drawSeed = 0, drawRows?: DrawRows): Tensor {
    const d = this.decoder;
    if (!d) throw expected('a model with a decoder', 'decoder', null);
    checkInt(drawSeed, 'drawSeed', 0);
    if (drawRows) {
      checkInt(drawRows.total, 'drawRows.total', rows.size);
      checkInt(drawRows.before, 'drawRows.before', 0, drawRows.total - rows.size);
    }
    if (batch.attentionBias) throw expected('no attentionBias with an MLM decoder', 'attentionBias', 'a bias');
    const D = this.config.hidden;
    const idx = reshape(rows.to(this.device), [-1]);
    const enc = this.bert.encoder;
    if (d.kind === 'emd') {
      const { x, layout, positions } = embedBatch(this.bert, this.config, this.slopes, batch);
      const n = enc.layer.items.length;
      // The last layer's plain output feeds nothing in the MLM loss, so only layers 0..n−2 run first.
      const h = enc.forwardFirst(x, layout, n - 1);
      const last = enc.layer.items[n - 1]!;
      let q = add(h, this.bert.embeddings.position_embeddings!.forward(positions!));
      for (let pass = 0; pass < 2; pass++) q = last.forward(q, layout, undefined, { kv: h });
      if (enc.LayerNorm) q = enc.LayerNorm.forward(q);
      return embedding(reshape(q, [-1, D]), idx);
    }
    if (isPacked(batch)) throw expected('a padded batch for decoder drbert (its [B, L, L] key mask needs the padded layout)', 'cuSeqlens', 'a packed batch');
    const [B, L] = batch.ids.shape as [number, number];
    const { x, layout } = embedBatch(this.bert, this.config, this.slopes, batch);
    const e = enc.forward(x, layout);
    const r = rows.toArray() as Int32Array;
    // Data parallel: the global batch's draws, this rank's run of them.
    const all = drbertDraws(drawSeed, drawRows?.total ?? r.length, d.mixProb);
    const at = drawRows?.before ?? 0;
    const draws = { unmask: all.unmask.subarray(at, at + r.length), fromDecoder: all.fromDecoder.subarray(at, at + r.length) };
    const blocks = this.cls.drbert!.layer.items;
    let h = e;
    // A hidden masked position is hidden from every query alike: a key mask [B, L] (padding or hidden) through the
    // fused kernel's key-padding path, not a [B, L, L] pair mask.
    const padding = layout.keyPadding ? (layout.keyPadding.toArray() as Uint8Array) : new Uint8Array(B * L);
    blocks.forEach((blk, i) => {
      const t = drbertThreshold(i, blocks.length, d.unmaskFraction);
      const keys = Uint8Array.from(padding);
      r.forEach((row, m) => {
        if (draws.unmask[m]! >= t) keys[row] = 1;
      });
      h = blk.forward(h, { ...layout, keyPadding: fromTypedArray(keys, [B, L]).to(this.device) });
    });
    const eRows = embedding(reshape(e, [-1, D]), idx);
    const dRows = embedding(reshape(h, [-1, D]), idx);
    const pick = new Float32Array(r.length * D);
    const keepEnc = new Float32Array(r.length * D);
    draws.fromDecoder.forEach((f, m) => { (f ? pick : keepEnc).fill(1, m * D, (m + 1) * D); });
    const dt = this.dtype;
    const toDev = (a: Float32Array): Tensor => fromTypedArray(a, [r.length, D]).to(this.device).cast(dt);
    return add(mul(dRows, toDev(pick)), mul(eRows, toDev(keepEnc)));
  }

  /** The head's input at `rows` (int32 flat indices into the encoded tokens): [M, D] after dense → GELU → LayerNorm. */
  private headInput(batch: EncoderBatch, rows: Tensor): Tensor {
    const h = this.encode(batch);
    const flat = reshape(h, [-1, this.config.hidden]);
    return this.cls.predictions.transform.forward(embedding(flat, reshape(rows.to(this.device), [-1])));
  }

  /**
   * Mean MLM cross-entropy over the masked rows (targets of −100 are skipped): a 0-d tensor. `normalizer`:
   * divide the sum by it instead of the masked count (a data-parallel rank: the global batch's count).
   */
  loss(batch: MlmBatch, opts: { drawSeed?: number; normalizer?: number; drawRows?: DrawRows } = {}): Tensor {
    const h = this.maskedHidden(batch, opts.drawSeed ?? 0, opts.drawRows);
    // Host targets go to the head as they are: it counts and checks them there before uploading them (no sync).
    const targets = batch.targets.device === 'cpu' ? batch.targets : batch.targets.to(this.device);
    return linearCrossEntropy(h, this.bert.embeddings.word_embeddings.weight, this.cls.predictions.bias, targets,
      opts.normalizer === undefined ? {} : { normalizer: opts.normalizer });
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
    // Host word ids stay there: the op checks them on the host and uploads them, with no wait for the device.
    return labelWordLogits(h, this.bert.embeddings.word_embeddings.weight, this.cls.predictions.bias, words.device === 'cpu' ? words : words.to(this.device));
  }

  /**
   * Eval-only masked-token accuracy: materialises the [M, V] logits (no
   * vocabulary chunking) and takes the native row argmax. Records no graph.
   */
  accuracy(batch: MlmBatch): { correct: number; count: number } {
    return noGrad(() => scope(() => {
      const h = this.maskedHidden(batch, 0);
      const logits = profileLabel('tied decoder', () => linear(h, this.bert.embeddings.word_embeddings.weight, this.cls.predictions.bias));
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
