/**
 * ASA, adversarial self-attention (Wu et al., "Adversarial Self-Attention for
 * Language Understanding", AAAI 2023; official code gingasan/adversarialSA,
 * modeling/bert.py and modeling/utils.py) as a fine-tuning method.
 *
 * Each encoder layer i has an adversary: Q_a, K_a = Linear(D→D) on the layer's
 * **detached** input x, scores S = Q_a·K_aᵀ/√D, and the binary mask
 * M = 1[S > 0] (padding keys never kept) with the straight-through gradient of
 * σ(S); the layer's attention gets the bias (1 − M)·(−1e4), shared by every
 * head, through the fused kernel's `bias` (no L×L tensor per head). A step:
 *
 *   logits     = f(x)                          the clean pass
 *   adv_logits = f(x; M_1 … M_n)               the pass under the adversary's masks
 *   loss       = CE(logits) + ½·SymKL(logits, adv_logits) + τ²·Σ_i ΣM_i / B
 *
 * with B the sequences of the batch (the official `aa.shape[0]`; for MVP
 * that is examples × templates) and ΣM over the real (query, key) pairs. A
 * gradient-reversal op sits between the adversary's scores and the mask, so
 * the single AdamW step descends the loss for the model and ascends
 * ½·SymKL + τ²·ΣM/B for the adversary: it looks for the masks that change the
 * prediction most while keeping as many pairs as it can. ΣM depends on the
 * adversary alone (its input is detached), so τ² only shapes the adversary.
 *
 * Where this follows the official code rather than the wording:
 * - SymKL is the official `divergence`: ½·(KL(p‖q) + KL(q‖p)), each term a
 *   KLDivLoss with reduction "batchmean" (the sum over classes, the mean over
 *   the batch). The `symKl` op computes KL(p‖q) + KL(q‖p) (batch mean) and
 *   the loss weighs it by ½, as `divergence` does.
 * - ΣM counts real query rows only (the official sum runs over padding query
 *   rows too, whose outputs nothing reads); padding keys count 0 in both.
 * The adversary exists only while training: eval, predict, attack and export
 * use the plain model (its weights are in the run's checkpoints, as
 * `asa.layer.{i}.{query,key}.{weight,bias}`, so that --resume is exact).
 */
import { expected } from '../../errors.js';
import type { EncoderBatch } from '../../models/bert/batch.js';
import { asaMask, gradReverse, symKl } from '../../ops/asa.js';
import { crossEntropy } from '../../ops/cross_entropy.js';
import { add, scale, sum } from '../../ops/elementwise.js';
import { matmul } from '../../ops/linalg.js';
import { Linear, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { ModuleList } from '../../nn/module-list.js';
import { Rng } from '../../rng.js';
import type { DType, Tensor } from '../../tensor.js';
import { checkInt, checkNumber } from '../../validate.js';
import type { TextClassifier } from './classifier.js';

/** The default τ: the official `--tau`. */
export const ASA_TAU = 0.5;

/** The prefix of every adversary parameter in a checkpoint; Hugging Face BERT has no such name. */
export const ASA_PREFIX = 'asa.';

/** Whether a state-dict name belongs to the ASA adversary (dropped at inference and export). */
export function isAdversaryKey(name: string): boolean {
  return name.startsWith(ASA_PREFIX);
}

/** One layer's adversary: the query and key projections Linear(D→D) with bias. */
export class AsaAdversaryLayer extends Module {
  readonly query: Linear;
  readonly key: Linear;
  constructor(hidden: number, init: InitOptions) {
    super();
    this.query = this.registerModule('query', new Linear(hidden, hidden, init));
    this.key = this.registerModule('key', new Linear(hidden, hidden, init));
  }
}

export interface AdversaryShape {
  hidden: number;
  layers: number;
  initializerRange: number;
}

/** The adversaries of every encoder layer (`layer.{i}.query`, `layer.{i}.key`). */
export class AsaAdversary extends Module {
  readonly layer: ModuleList<AsaAdversaryLayer>;
  readonly hidden: number;
  constructor(c: AdversaryShape, opts: { seed: number; dtype?: DType }) {
    super();
    checkInt(opts.seed, 'seed', 0, 2 ** 53);
    this.hidden = c.hidden;
    // A stream of its own, so the model's initialisation does not change with or without the adversary.
    const init: InitOptions = { rng: new Rng((opts.seed + 0x0a5a) % 2 ** 52), std: c.initializerRange, dtype: opts.dtype ?? 'float32' };
    this.layer = this.registerModule('layer', new ModuleList(Array.from({ length: c.layers }, () => new AsaAdversaryLayer(c.hidden, init))));
  }

  /** Layer i's scores S = Q_a·K_aᵀ/√D [B, L, L] of its input x [B, L, D], detached from the model. */
  scores(i: number, x: Tensor): Tensor {
    const a = this.layer.items[i];
    if (!a) throw expected(`an encoder layer in [0, ${this.layer.items.length}) (one adversary each)`, 'ASA layer', i, 'E_INDEX');
    if (x.shape.length !== 3 || x.shape[2] !== this.hidden) throw expected(`a padded layer input [B, L, ${this.hidden}]`, 'ASA layer input', x, 'E_SHAPE');
    const xd = x.detach();
    return scale(matmul(a.query.forward(xd), a.key.forward(xd), { transB: true }), 1 / Math.sqrt(this.hidden));
  }

  /**
   * The encoder's per-layer attention bias under the adversary's masks (for
   * EncoderBatch.attentionBias), pushing each layer's kept counts [B, L] onto
   * `kept`. The gradient reversal sits between the scores and the mask.
   */
  biasHook(kept: Tensor[]): NonNullable<EncoderBatch['attentionBias']> {
    return (i, x, keyPadding) => {
      const r = asaMask(gradReverse(this.scores(i, x)), keyPadding);
      kept.push(r.kept);
      return r.bias;
    };
  }
}

/**
 * The module the training loop sees for an ASA run: the classifier's model
 * under its own names and the adversary under `asa.`, so that parameters(),
 * stateDict() (the checkpoint), the optimizer and train/eval cover both.
 */
export class AsaTrainModel extends Module {
  constructor(
    readonly inner: Module,
    readonly adversary: AsaAdversary,
  ) {
    super();
  }
  override namedParameters(prefix = ''): ReturnType<Module['namedParameters']> {
    return [...this.inner.namedParameters(prefix), ...this.adversary.namedParameters(`${prefix}${ASA_PREFIX}`)];
  }
  override namedBuffers(prefix = ''): ReturnType<Module['namedBuffers']> {
    return [...this.inner.namedBuffers(prefix), ...this.adversary.namedBuffers(`${prefix}${ASA_PREFIX}`)];
  }
  override namedModules(prefix = ''): ReturnType<Module['namedModules']> {
    return [...this.inner.namedModules(prefix), ...this.adversary.namedModules(`${prefix}${ASA_PREFIX}`)];
  }
  override train(on = true): this {
    this.training = on;
    this.inner.train(on);
    this.adversary.train(on);
    return this;
  }
}

export interface AsaStep {
  /** CE + ½·SymKL + τ²·ΣM/B: what the step descends (a 0-d tensor). */
  loss: Tensor;
  /** The clean logits [B, C]. */
  logits: Tensor;
  /** The logits under the adversary's masks [B, C]. */
  advLogits: Tensor;
}

/**
 * One ASA training objective on a batch built by classifier.batchOf: the
 * clean pass, the adversarial pass, and the combined loss. `labels`: int32
 * [B] on the model's device.
 */
export function asaLoss(classifier: TextClassifier, adversary: AsaAdversary, batch: EncoderBatch, maskRows: Tensor | null, labels: Tensor, tau = ASA_TAU): AsaStep {
  checkNumber(tau, 'asaTau', Number.MIN_VALUE);
  if (batch.attentionBias) throw expected('a clean batch (no attentionBias)', 'ASA batch', 'a batch with attentionBias');
  const logits = classifier.classLogits(batch, maskRows);
  const ce = crossEntropy(logits, labels);
  const kept: Tensor[] = [];
  const advLogits = classifier.classLogits({ ...batch, attentionBias: adversary.biasHook(kept) }, maskRows);
  // ½·(KL(p‖q) + KL(q‖p)), batchmean: the official `divergence`.
  let loss = add(ce, scale(symKl(logits, advLogits), 0.5));
  if (kept.length > 0) {
    const sequences = kept[0]!.shape[0]!;
    let total = sum(kept[0]!);
    for (const k of kept.slice(1)) total = add(total, sum(k));
    loss = add(loss, scale(total, (tau * tau) / sequences));
  }
  return { loss, logits, advLogits };
}
