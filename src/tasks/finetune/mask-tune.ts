/**
 * Weight-mask tuning ("Masking as an Efficient Alternative to Finetuning",
 * Zhao et al. 2020): the pre-trained weights stay frozen and each masked
 * linear layer learns real-valued scores of its weight's shape; the layer
 * uses W ⊙ 1[score > τ] (the fused masked_linear op, straight-through to the
 * scores). Masked, as in the paper: Q, K, V, attention output, FFN in and out
 * of every encoder layer, the pooler and the classifier; embeddings, biases
 * and LayerNorms are frozen and unmasked (the official code's mask_biases
 * defaults to False).
 */
import { ClozeError } from '../../errors.js';
import type { BertForSequenceClassification } from '../../models/bert/classification.js';
import { Linear } from '../../nn/layers.js';
import { Parameter } from '../../nn/parameter.js';
import { Rng } from '../../rng.js';
import { tensor, type Tensor } from '../../tensor.js';
import { packBits, packedBytes, type MaskFile } from '../../checkpoint/mask-file.js';
import { maskedFraction } from '../../ops/masked_linear.js';

export interface MaskTuneOptions {
  /** τ: a weight is kept where its score is above it. */
  threshold: number;
  /** The fraction p masked out at the start. */
  initSparsity: number;
  /** α: scores start uniform in [−α, s], s = (α + τ)/p − α, so that a fraction p starts at or below τ. */
  initScale: number;
  seed: number;
}

/** The official code's defaults (threshold, init_scale) and the paper's 5% initial sparsity. */
export const MASK_TUNE_DEFAULTS = { threshold: 0.01, initSparsity: 0.05, initScale: 0.02 } as const;

/** Scores get their own Philox-free JS stream, apart from the model's init draws. */
const SCORE_SEED_OFFSET = 0x6d61_736b;

const MASKED = /^bert\.encoder\.layer\.\d+\.(attention\.self\.(query|key|value)|attention\.output\.dense|intermediate\.dense|output\.dense)$|^bert\.pooler\.dense$|^classifier$/;

/** Names under the model of the frozen tensors that are not in a pre-trained MLM base: the mask file carries them whole. */
export const HEAD_TENSOR = /^(bert\.pooler\.|classifier\.)/;

/** The masked linear layers, by module name, in model order. */
export function maskedLayers(model: BertForSequenceClassification): Array<[string, Linear]> {
  return model.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear && MASKED.test(e[0]));
}

/** [lo, hi] of the initial scores; P(score ≤ τ) = (τ + α)/(hi + α) = p. */
export function initScoreRange(o: Pick<MaskTuneOptions, 'threshold' | 'initSparsity' | 'initScale'>): [number, number] {
  return [-o.initScale, (o.initScale + o.threshold) / o.initSparsity - o.initScale];
}

/**
 * Gives every masked layer its scores and freezes everything else
 * (requiresGrad off: no gradient is computed for the frozen tensors, and the
 * optimizer gets only the scores).
 */
export function attachWeightMasks(model: BertForSequenceClassification, o: MaskTuneOptions, opts: { init?: boolean } = {}): void {
  const init = opts.init ?? true;
  if (!Number.isFinite(o.threshold)) throw new ClozeError('E_VALUE', `Expected a finite maskThreshold for weight-mask tuning but received ${o.threshold}`);
  if (init && !(o.threshold > -o.initScale && o.initSparsity > 0 && o.initSparsity < 1 && o.initScale > 0)) {
    throw new ClozeError('E_VALUE', `Expected maskInitSparsity in (0, 1), maskInitScale > 0 and maskThreshold > −maskInitScale for weight-mask tuning but received ${o.initSparsity}, ${o.initScale} and ${o.threshold}`);
  }
  const [lo, hi] = initScoreRange(o);
  const rng = new Rng((o.seed + SCORE_SEED_OFFSET) % 2 ** 52);
  for (const p of model.parameters()) p.requiresGrad = false;
  for (const [, lin] of maskedLayers(model)) {
    // Scores a checkpoint is about to overwrite need no draw (85 M of them for BERT-base).
    const v = new Float32Array(lin.weight.size);
    if (init) for (let i = 0; i < v.length; i++) v[i] = lo + (hi - lo) * rng.uniform();
    // Scores are not weights: no decay pulls them towards the threshold (the paper's Adam has none).
    lin.attachWeightMask(Parameter.from(tensor(v, lin.weight.shape, 'float32'), { decay: false }), o.threshold);
  }
}

/** The fraction of masked weights at or below the threshold (masked out). */
export function maskedOutFraction(model: BertForSequenceClassification): number {
  let out = 0;
  let all = 0;
  for (const [, l] of maskedLayers(model)) {
    if (!l.weightMask) continue;
    out += maskedFraction(l.weightMask, l.maskThreshold) * l.weightMask.size;
    all += l.weightMask.size;
  }
  return all === 0 ? 0 : out / all;
}

/** Packed bits of 1[scores > τ] (the mask file's layout). */
export function keptBits(scores: ArrayLike<number>, threshold: number): Uint8Array {
  const keep = new Uint8Array(scores.length);
  for (let i = 0; i < scores.length; i++) keep[i] = scores[i]! > threshold ? 1 : 0;
  return packBits(keep);
}

/** W ⊙ 1[scores > τ] as plain float32 weights (exports of a mask-tune run). */
export function maskedWeight(w: ArrayLike<number>, scores: ArrayLike<number>, threshold: number): Float32Array {
  const v = new Float32Array(w.length);
  for (let i = 0; i < v.length; i++) v[i] = scores[i]! > threshold ? w[i]! : 0;
  return v;
}

/** The layer's kept bits: 1 where score > τ. */
export function layerBits(l: Linear): Uint8Array {
  if (!l.weightMask) throw new ClozeError('E_STATE', 'Expected a layer with weight-mask scores but received a plain linear layer');
  return keptBits(l.weightMask.toArray(), l.maskThreshold);
}

/**
 * The state dict with every masked weight replaced by W ⊙ mask and no scores:
 * what a plain BertForSequenceClassification loads (`cloze export`). The new
 * tensors are the caller's to dispose; the others are the model's own.
 */
export function effectiveStateDict(model: BertForSequenceClassification): { tensors: Record<string, Tensor>; made: Tensor[] } {
  const tensors: Record<string, Tensor> = {};
  const made: Tensor[] = [];
  const masked = new Map(maskedLayers(model).filter(([, l]) => l.weightMask).map(([n, l]) => [`${n}.weight`, l]));
  for (const [name, t] of Object.entries(model.stateDict())) {
    if (name.endsWith('.weight_mask')) continue;
    const l = masked.get(name);
    if (!l) {
      tensors[name] = t;
      continue;
    }
    const e = tensor(maskedWeight(l.weight.toArray(), l.weightMask!.toArray(), l.maskThreshold), l.weight.shape, 'float32');
    made.push(e);
    tensors[name] = e;
  }
  return { tensors, made };
}

/**
 * Puts a mask file's task onto a model built from its base: the stored head
 * tensors load, and each layer's bits become either scores (kept at the middle
 * of (τ, hi], dropped at the middle of [lo, τ]: a mask-tune run continues from
 * the mask) or, for a plain model, W ⊙ mask in place. Layers and shapes must
 * match the model's exactly; `file` names the mask in errors.
 */
export function applyMaskFile(model: BertForSequenceClassification, mf: MaskFile, file: string, o?: MaskTuneOptions): void {
  const layers = new Map(maskedLayers(model));
  const listed = new Set(mf.header.layers.map((l) => l.name));
  const missing = [...layers.keys()].filter((n) => !listed.has(n));
  if (missing.length) throw new ClozeError('E_VALUE', `${file}: Expected a mask for every masked layer of the model but received none for ${missing.join(', ')}`);
  const params = new Map(model.namedParameters());
  checkHeadTensors(model, mf, file);
  for (const { name, shape } of mf.header.tensors) {
    const p = params.get(name);
    if (!p || !HEAD_TENSOR.test(name)) throw new ClozeError('E_VALUE', `${file}: Expected only pooler and classifier tensors of this model but received tensor ${name}`);
    if (p.shape.join() !== shape.join()) throw new ClozeError('E_SHAPE', `${file}: Expected shape [${p.shape.join(', ')}] for tensor ${name} (the model's) but received [${shape.join(', ')}]`);
    p.native.write(mf.tensors.get(name)!);
  }
  const [lo, hi] = o ? initScoreRange(o) : [0, 0];
  for (const { name, shape } of mf.header.layers) {
    const l = layers.get(name);
    if (!l) throw new ClozeError('E_VALUE', `${file}: Expected only masked layers of this model but received layer ${name}`);
    if (l.weight.shape.join() !== shape.join()) throw new ClozeError('E_SHAPE', `${file}: Expected shape [${l.weight.shape.join(', ')}] for layer ${name} (the model's weight) but received [${shape.join(', ')}]`);
    const bits = mf.bits.get(name)!;
    const n = l.weight.size;
    if (bits.length !== packedBytes(shape)) throw new ClozeError('E_VALUE', `${file}: Expected ${packedBytes(shape)} bytes of bits for layer ${name} but received ${bits.length}`);
    const kept = (i: number): boolean => ((bits[i >> 3]! >> (i & 7)) & 1) === 1;
    if (o) {
      // Around the run's own τ (the layer's threshold), not the file's: the bits already hold the decision.
      const t = o.threshold;
      const v = new Float32Array(n);
      for (let i = 0; i < n; i++) v[i] = kept(i) ? (t + hi) / 2 : (lo + t) / 2;
      if (l.weightMask) l.weightMask.native.write(v);
      else l.attachWeightMask(Parameter.from(tensor(v, shape, 'float32'), { decay: false }), t);
    } else {
      const w = Float32Array.from(l.weight.toArray());
      for (let i = 0; i < n; i++) if (!kept(i)) w[i] = 0;
      l.weight.native.write(w);
    }
  }
}

/** A mask file must carry every frozen tensor outside the base's trunk (pooler, classifier): else they would stay random. */
export function checkHeadTensors(model: BertForSequenceClassification, mf: MaskFile, file: string): void {
  const listed = new Set(mf.header.tensors.map((t) => t.name));
  const missing = model.namedParameters().map(([n]) => n).filter((n) => HEAD_TENSOR.test(n) && !n.endsWith('.weight_mask') && !listed.has(n));
  if (missing.length) throw new ClozeError('E_VALUE', `${file}: Expected the head tensors the base lacks but received none for ${missing.join(', ')}`);
}
