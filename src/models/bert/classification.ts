/**
 * BertForSequenceClassification with Hugging Face's parameter names
 * (`bert.embeddings…`, `bert.encoder…`, `bert.pooler.dense`, `classifier`):
 * the [CLS] row of the last layer → pooler (dense + tanh) → dropout → linear
 * head. The MLP-FT baseline of fine-tuning; its trunk loads from one of our
 * MLM checkpoints or a Hugging Face BERT directory, and the pooler and head,
 * which an MLM checkpoint lacks, start as HF initialises them.
 */
import { keep } from '../../autograd/mode.js';
import { loadCheckpoint, type LoadedCheckpoint } from '../../checkpoint/checkpoint.js';
import { ClozeError, expected } from '../../errors.js';
import { alibiSlopes } from '../../ops/attention.js';
import { crossEntropy } from '../../ops/cross_entropy.js';
import { reshape, tanh } from '../../ops/elementwise.js';
import { embedding } from '../../ops/embedding.js';
import { Dropout, Linear, withSequenceRows, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { Rng } from '../../rng.js';
import { fromTypedArray, tensor, type DType, type Tensor } from '../../tensor.js';
import { checkDtype, checkInt, checkNumber, checkShape, checkTensor } from '../../validate.js';
import { isPacked, type EncoderBatch } from './batch.js';
import { bertConfig, type BertConfig, type BertConfigInput } from './config.js';
import { bertConfigFromHf, HF_EXTRA_KEYS } from './hf-config.js';
import { BertModel, encodeBatch, type BertModelOptions } from './model.js';

export interface SequenceClassificationOptions extends BertModelOptions {
  /** C, the number of classes. */
  numLabels: number;
  /** Dropout before the head; default the config's hidden dropout (HF: classifier_dropout ?? hidden_dropout_prob). */
  classifierDropout?: number;
}

/**
 * Overwrites a Linear as HF's BertPreTrainedModel._init_weights does: weight
 * ~ N(0, std²) (not truncated), bias 0. Runs once, at construction.
 */
function hfLinearInit(l: Linear, std: number, rng: Rng): void {
  const v = new Float64Array(l.weight.size);
  for (let i = 0; i < v.length; i++) v[i] = rng.normal() * std;
  const t = tensor(v, l.weight.shape, l.weight.dtype);
  l.weight.native.copyFrom(t.native);
  t.dispose();
  l.bias?.native.fill(0);
}

/** bert.pooler: the first token's hidden state → dense → tanh. */
export class BertPooler extends Module {
  readonly dense: Linear;
  constructor(hidden: number, init: InitOptions) {
    super();
    this.dense = this.registerModule('dense', new Linear(hidden, hidden, init));
  }
  /** first [B, D] → [B, D]. */
  forward(first: Tensor): Tensor {
    return tanh(this.dense.forward(first));
  }
}

/** BertModel with the pooler (HF's add_pooling_layer=True), so its names are bert.embeddings, bert.encoder, bert.pooler. */
export class BertPooledModel extends BertModel {
  readonly pooler: BertPooler;
  constructor(c: BertConfig, init: InitOptions, seeds: () => number) {
    super(c, init, seeds);
    this.pooler = this.registerModule('pooler', new BertPooler(c.hidden, init));
  }
}

/** What loadPretrained did: the parameters it left at their initial values (the pooler and head from an MLM checkpoint). */
export interface PretrainedLoad {
  initialised: string[];
}

export class BertForSequenceClassification extends Module {
  readonly config: BertConfig;
  readonly numLabels: number;
  readonly bert: BertPooledModel;
  readonly dropout: Dropout;
  readonly classifier: Linear;
  private readonly slopes: Tensor | null;

  constructor(config: BertConfigInput, opts: SequenceClassificationOptions) {
    super();
    this.config = bertConfig(config);
    if (opts === null || typeof opts !== 'object') throw expected('options with numLabels', 'options', opts);
    checkInt(opts.numLabels, 'numLabels', 2);
    this.numLabels = opts.numLabels;
    const seed = opts.seed ?? 0;
    checkInt(seed, 'seed', 0, 2 ** 32 - 1);
    const p = opts.classifierDropout ?? this.config.hiddenDropout;
    checkNumber(p, 'classifierDropout', 0, 0.999);
    const dtype = opts.dtype ?? 'float32';
    const rng = new Rng(seed);
    const init: InitOptions = { rng, std: this.config.initializerRange, dtype };
    // The trunk draws its weights and dropout keys in BertForMaskedLM's order, so one seed gives the same trunk in both.
    const seedRng = new Rng(seed + 2 ** 32);
    const seeds = (): number => seedRng.nextU32();
    this.bert = this.registerModule('bert', new BertPooledModel(this.config, init, seeds));
    this.dropout = this.registerModule('dropout', new Dropout(p, seeds()));
    this.classifier = this.registerModule('classifier', new Linear(this.config.hidden, this.numLabels, init));
    hfLinearInit(this.bert.pooler.dense, this.config.initializerRange, rng);
    hfLinearInit(this.classifier, this.config.initializerRange, rng);
    this.slopes = this.config.positionEmbedding === 'alibi' ? keep(tensor(alibiSlopes(this.config.heads), [this.config.heads], dtype)) : null;
  }

  get dtype(): DType {
    return this.bert.embeddings.word_embeddings.weight.dtype as DType;
  }

  protected override moveFixed(move: (t: Tensor) => void): void {
    if (this.slopes) move(this.slopes);
  }

  /** Final hidden states: [B, L, D] padded, [nnz, D] packed. */
  encode(batch: EncoderBatch): Tensor {
    return encodeBatch(this.bert, this.config, this.slopes, batch);
  }

  /** The pooled [CLS] representation [B, D]: the first token of each sequence → dense → tanh (before dropout). */
  pooled(batch: EncoderBatch): Tensor {
    const h = this.encode(batch);
    let first: Int32Array;
    if (isPacked(batch)) {
      first = (batch.cuSeqlens.toArray() as Int32Array).slice(0, -1);
    } else {
      const [B, L] = batch.ids.shape as [number, number];
      first = Int32Array.from({ length: B }, (_, b) => b * L);
    }
    const rows = fromTypedArray(first, [first.length]).to(this.device);
    return this.bert.pooler.forward(embedding(reshape(h, [-1, this.config.hidden]), rows));
  }

  /** Class logits [B, C]. */
  logits(batch: EncoderBatch): Tensor {
    const pooled = this.pooled(batch);
    // One row per sequence: a data-parallel rank's pooled rows follow the sequences of the ranks before it.
    return this.classifier.forward(withSequenceRows(() => this.dropout.forward(pooled)));
  }

  /** Mean cross-entropy of the logits against int32 labels [B] in [0, C). */
  loss(batch: EncoderBatch, labels: Tensor): Tensor {
    checkTensor(labels, 'labels');
    checkDtype(labels, 'int32', 'labels');
    const logits = this.logits(batch);
    checkShape(labels, [logits.shape[0]!], 'labels');
    const l = labels.toArray();
    for (let i = 0; i < l.length; i++) {
      if (!(l[i]! >= 0 && l[i]! < this.numLabels)) throw expected(`class ids in [0, ${this.numLabels})`, 'labels', `${l[i]} at position ${i}`, 'E_INDEX');
    }
    // Host labels stay on the host: crossEntropy counts and uploads them there, with no wait for the device.
    return crossEntropy(logits, labels.device === 'cpu' ? labels : labels.to(this.device));
  }

  /**
   * Loads pre-trained weights by name: every `bert.embeddings.*` and
   * `bert.encoder.*` parameter must be there; `bert.pooler.*` and
   * `classifier.*` load when present (an HF BertForPreTraining directory has a
   * pooler; a fine-tuned one both) and otherwise keep their HF-style
   * initialisation. The MLM head (`cls.*`), an ASA run's adversary (`asa.*`)
   * and HF's buffers are skipped. A
   * bare BertModel's names (`embeddings.…` without `bert.`) are accepted, and
   * so is an ELECTRA checkpoint: its discriminator (`electra.…`) is the
   * encoder, its heads and generator are skipped.
   */
  loadPretrained(sd: Record<string, Tensor>, where = 'state dict'): PretrainedLoad {
    const keys = Object.keys(sd);
    const bare = !keys.some((k) => k.startsWith('bert.')) && keys.some((k) => k.startsWith('embeddings.'));
    // An ELECTRA checkpoint (ElectraForPreTraining names): its discriminator is the encoder, electra.* read as bert.*.
    const electra = !keys.some((k) => k.startsWith('bert.')) && keys.some((k) => k.startsWith('electra.embeddings.'));
    const mine = new Set(Object.keys(this.stateDict()));
    const take: Record<string, Tensor> = {};
    for (const [k0, t] of Object.entries(sd)) {
      const k = electra && k0.startsWith('electra.') ? `bert.${k0.slice('electra.'.length)}` : bare && !k0.startsWith('classifier.') ? `bert.${k0}` : k0;
      // asa.*: the adversary of an ASA fine-tuning run, which only its training uses; ELECTRA's heads and generator.
      if (HF_EXTRA_KEYS.has(k) || k.startsWith('cls.') || k.startsWith('asa.')) continue;
      if (electra && (k.startsWith('discriminator_predictions.') || k.startsWith('generator.') || k.startsWith('generator_'))) continue;
      if (!mine.has(k)) throw new ClozeError('E_VALUE', `Expected only BERT parameter names in ${where} but received '${k0}'`);
      take[k] = t;
    }
    const missing = [...mine].filter((k) => !(k in take) && (k.startsWith('bert.embeddings.') || k.startsWith('bert.encoder.')));
    if (missing.length) throw new ClozeError('E_VALUE', `Expected every encoder weight in ${where} but received none for ${missing.join(', ')}`);
    this.loadStateDict(take, { strict: false });
    return { initialised: [...mine].filter((k) => !(k in take)) };
  }

  /**
   * A classifier whose trunk is the weights of `source`: a directory (one of
   * our checkpoints, or an HF BERT directory with model.safetensors and
   * config.json) or an already loaded checkpoint. The config comes from its
   * config.json.
   */
  static fromPretrained(source: string | LoadedCheckpoint, opts: SequenceClassificationOptions): { model: BertForSequenceClassification } & PretrainedLoad {
    const ck = typeof source === 'string' ? loadCheckpoint(source) : source;
    try {
      const where = `${ck.dir}/config.json`;
      const model = new BertForSequenceClassification(bertConfigFromHf(ck.config, where), opts);
      try {
        return { model, ...model.loadPretrained(ck.model, `${ck.dir}/model.safetensors`) };
      } catch (e) {
        model.dispose();
        throw e;
      }
    } finally {
      if (typeof source === 'string') ck.dispose();
    }
  }
}
