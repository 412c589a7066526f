/**
 * One-step L2 PGD on the word embeddings, for adversarial fine-tuning
 * (`--adv`: mlp-ft's adversarial-training baseline, and MVP+Adv), as the
 * official MVP code does it (acmi-lab/mvp, src/utils/augmentations.py):
 *
 *   δ₀ = ε·u/‖u‖, u ~ U[−1, 1)            per sequence (random start on the sphere)
 *   g  = ∂loss(ids, δ₀)/∂δ₀              with the model in eval mode (no dropout)
 *   δ  = Π_ε(δ₀ + α·g/‖g‖), α = 1.5·ε   (MVP's default step for one iteration)
 *
 * and training then runs on word_embeddings(ids) + δ. Norms are per sequence
 * over its real tokens, so an MVP batch (one sequence per example and
 * template) perturbs every templated sequence on its own, as MVP's code does.
 * Where this differs from that code, on purpose: the start is uniform on
 * [−1, 1) before the scaling (MVP's `delta *= 2·delta − 1` squares a U[0, 1)
 * draw, a slip for `delta = 2·delta − 1`); padding rows stay 0 (MVP spreads
 * the start over the padding too); and the attack's backward touches no
 * weight gradient (MVP's accumulates into them).
 *
 * The start is a pure function of (seed, step), like dropout's mask, so a
 * resumed run draws the same perturbations.
 */
import { backward } from '../../autograd/backward.js';
import { scope } from '../../autograd/mode.js';
import { expected } from '../../errors.js';
import { isPacked, type EncoderBatch } from '../../models/bert/batch.js';
import type { Parameter } from '../../nn/parameter.js';
import { pgdRandomStart, pgdStep, type PgdSegments } from '../../ops/pgd.js';
import { fromTypedArray, zeros, type Device, type DType, type Tensor } from '../../tensor.js';
import { checkInt, checkNumber } from '../../validate.js';

/** What PGD needs of a model: its parameters (frozen during the attack), its train/eval switch, width, dtype and device. */
export interface PerturbableModel {
  parameters(): Parameter[];
  training: boolean;
  train(on?: boolean): unknown;
  readonly config: { hidden: number };
  readonly dtype: DType;
  readonly device: Device;
}

export interface PgdOptions {
  /** The L2 radius ε per sequence (MVP: 1). */
  eps?: number;
  /** The step size α (MVP: 1.5·ε for its one iteration). */
  alpha?: number;
  /** Philox key of the random start. */
  seed: number;
  /** A distinct counter per call (the optimizer step, times micro-batches when there are several). */
  step: number;
  /** Data parallel: rows (tokens, packed) of the global batch before this rank's, so its start is drawn there. */
  rowOffset?: number;
}

export const PGD_EPS = 1;
/** MVP's `alpha = (epsilon / num_iter) * 1.5` with num_iter = 1. */
export const PGD_ALPHA_OVER_EPS = 1.5;

/** Each sequence's rows in the flattened [R, D] embeddings: b·L and its real-token count (padded), or cuSeqlens (packed). */
export function pgdSegments(batch: EncoderBatch): PgdSegments {
  if (isPacked(batch)) {
    const cu = batch.cuSeqlens.toArray() as Int32Array;
    const B = cu.length - 1;
    const starts = cu.slice(0, B);
    const lengths = Int32Array.from({ length: B }, (_, b) => cu[b + 1]! - cu[b]!);
    return { starts: fromTypedArray(starts, [B]), lengths: fromTypedArray(lengths, [B]) };
  }
  const [B, L] = batch.ids.shape as [number, number];
  const mask = batch.attentionMask ? batch.attentionMask.toArray() : null;
  const starts = Int32Array.from({ length: B }, (_, b) => b * L);
  const lengths = new Int32Array(B).fill(L);
  if (mask) {
    for (let b = 0; b < B; b++) {
      let n = 0;
      while (n < L && mask[b * L + n] !== 0) n++;
      for (let l = n; l < L; l++) {
        if (mask[b * L + l] !== 0) throw expected('right padding (real tokens first in every row)', 'attentionMask', `a real token after padding in row ${b}`);
      }
      lengths[b] = n;
    }
  }
  return { starts: fromTypedArray(starts, [B]), lengths: fromTypedArray(lengths, [B]) };
}

/**
 * The adversarial perturbation δ for `batch` ([..., D], the shape of the word
 * embeddings; no gradient), from one L2 PGD step on `lossOf` (the training
 * loss of a batch, e.g. the classifier's cross-entropy or MVP's). Train on it
 * with `lossOf({ ...batch, wordEmbeddingDelta: δ })`. The model's weights get
 * no gradient from the attack, and its train/eval mode is restored.
 */
export function pgdPerturbation(model: PerturbableModel, batch: EncoderBatch, lossOf: (b: EncoderBatch) => Tensor, opts: PgdOptions): Tensor {
  const eps = opts.eps ?? PGD_EPS;
  checkNumber(eps, 'eps', Number.MIN_VALUE);
  const alpha = opts.alpha ?? PGD_ALPHA_OVER_EPS * eps;
  checkNumber(alpha, 'alpha', 0);
  checkInt(opts.seed, 'seed', 0, 2 ** 53);
  checkInt(opts.step, 'step', 0, 2 ** 53);
  if (batch.wordEmbeddingDelta) throw expected('a clean batch (no wordEmbeddingDelta)', 'batch', batch.wordEmbeddingDelta);
  return scope(() => {
    const seg = pgdSegments(batch);
    const like = zeros([...batch.ids.shape, model.config.hidden], model.dtype, model.device);
    const d0 = pgdRandomStart(like, seg, { eps, seed: opts.seed, step: opts.step, rowOffset: opts.rowOffset ?? 0 });
    d0.requiresGrad = true;
    // Frozen weights: the backward computes only what leads to δ, and leaves the weights' .grad alone.
    const params = model.parameters();
    const flags = params.map((p) => p.requiresGrad);
    const wasTraining = model.training;
    for (const p of params) p.requiresGrad = false;
    model.train(false);
    try {
      backward(lossOf({ ...batch, wordEmbeddingDelta: d0 }));
    } finally {
      params.forEach((p, i) => (p.requiresGrad = flags[i]!));
      model.train(wasTraining);
    }
    if (!d0.grad) throw expected('a loss that depends on the word embeddings', 'lossOf', 'no gradient for the perturbation', 'E_STATE');
    return pgdStep(d0, d0.grad, seg, { alpha, eps });
  });
}
