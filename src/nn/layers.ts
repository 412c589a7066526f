/** Basic layers: Linear, LayerNorm, Embedding, Dropout. Weights named as in PyTorch/HF. */
import { dropout, dropoutAdd } from '../ops/dropout.js';
import { linear } from '../ops/linalg.js';
import { maskedLinear, maskedLinearPacked } from '../ops/masked_linear.js';
import { embedding } from '../ops/embedding.js';
import { layerNorm } from '../ops/layernorm.js';
import type { Rng } from '../rng.js';
import type { DType, Tensor } from '../tensor.js';
import { checkInt, checkNumber } from '../validate.js';
import { ClozeError } from '../errors.js';
import { constant, truncNormal } from './init.js';
import { Module } from './module.js';
import type { Parameter } from './parameter.js';

export interface InitOptions {
  rng: Rng;
  /** Std of the truncated-normal weight init (BERT: 0.02). */
  std?: number;
  dtype?: DType;
}

export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  /** Weight-mask tuning's scores (see attachWeightMask); null for a plain layer. */
  weightMask: Parameter | null = null;
  maskThreshold = 0;
  /** A served task's mask: uint8 packed bits, one per weight (see attachPackedMask); null otherwise. */
  packedMask: Tensor | null = null;
  constructor(inFeatures: number, outFeatures: number, init: InitOptions & { bias?: boolean }) {
    super();
    checkInt(inFeatures, 'inFeatures', 1);
    checkInt(outFeatures, 'outFeatures', 1);
    this.weight = this.registerParameter('weight', truncNormal([outFeatures, inFeatures], init.std ?? 0.02, init.rng, init.dtype));
    this.bias = init.bias === false ? null : this.registerParameter('bias', constant([outFeatures], 0, init.dtype));
  }
  /**
   * From now on the layer computes x·(W ⊙ 1[scores > threshold])ᵀ + b, with
   * the scores a parameter named `weight_mask` (the official code's name)
   * that gets the straight-through gradient; W and b get none.
   */
  attachWeightMask(scores: Parameter, threshold: number): void {
    if (this.weightMask) throw new Error('attachWeightMask: the layer already has weight-mask scores');
    if (scores.shape.join() !== this.weight.shape.join()) throw new Error(`attachWeightMask: expected scores of shape [${this.weight.shape.join(', ')}] but received [${scores.shape.join(', ')}]`);
    this.weightMask = this.registerParameter('weight_mask', scores);
    this.maskThreshold = threshold;
  }
  /**
   * Inference over a frozen weight with a task's mask: x·(W ⊙ bits)ᵀ + b,
   * bit i of the weight's row-major order at bits[i >> 3] >> (i & 7). The
   * bits are a buffer named `weight_bits`; nothing gets a gradient.
   */
  attachPackedMask(bits: Tensor): void {
    if (this.weightMask || this.packedMask) throw new Error('attachPackedMask: the layer already has a mask');
    this.packedMask = this.registerBuffer('weight_bits', bits);
  }
  forward(x: Tensor): Tensor {
    if (this.packedMask) return maskedLinearPacked(x, this.weight, this.packedMask, this.bias);
    return this.weightMask ? maskedLinear(x, this.weight, this.weightMask, this.bias, this.maskThreshold) : linear(x, this.weight, this.bias);
  }
}

export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
    dtype: DType = 'float32',
  ) {
    super();
    checkInt(dim, 'dim', 1);
    checkNumber(eps, 'eps', Number.MIN_VALUE);
    this.weight = this.registerParameter('weight', constant([dim], 1, dtype));
    this.bias = this.registerParameter('bias', constant([dim], 0, dtype));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

export class Embedding extends Module {
  readonly weight: Parameter;
  constructor(num: number, dim: number, init: InitOptions) {
    super();
    checkInt(num, 'num', 1);
    checkInt(dim, 'dim', 1);
    this.weight = this.registerParameter('weight', truncNormal([num, dim], init.std ?? 0.02, init.rng, init.dtype));
  }
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/**
 * Dropout whose mask is a pure function of (seed, call counter). The counter
 * is state: save and restore it with the rest of a run to resume exactly. It
 * counts training calls only: an evaluation (eval mode, no mask) leaves the
 * masks of the following training steps as they were, so how often a run
 * evaluates does not change what it trains.
 */
/**
 * This process's share of a data-parallel global batch while a forward runs (withDropoutShard), or null:
 * `rows` rows of the batch (sequences, or packed tokens) preceded by `before` rows on lower ranks.
 */
let shard: { before: number; rows: number; seq?: { before: number; rows: number } } | null = null;

/**
 * Runs `fn` (a forward) with every Dropout drawing the mask that one process holding the whole global batch
 * would draw for this process's rows: a tensor of n elements covering the local `rows` rows is the slice
 * starting at element n·before/rows of the global tensor. So N ranks at batch b reproduce one rank at N·b.
 */
export function withDropoutShard<T>(before: number, rows: number, fn: () => T, seq?: { before: number; rows: number }): T {
  checkInt(before, 'before');
  checkInt(rows, 'rows', 1);
  if (seq) {
    checkInt(seq.before, 'seq.before');
    checkInt(seq.rows, 'seq.rows', 1);
  }
  const prev = shard;
  shard = { before, rows, ...(seq ? { seq: { ...seq } } : {}) };
  try {
    return fn();
  } finally {
    shard = prev;
  }
}

/**
 * Runs `fn` with the shard's rows counted in sequences instead of tokens, where the shard gave both (withDropoutShard's
 * `seq`): a packed batch's encoder dropouts cover tokens, a classification head's dropout covers one row per sequence.
 * Without a sequence shard, `fn` runs as it is.
 */
export function withSequenceRows<T>(fn: () => T): T {
  if (!shard?.seq) return fn();
  const prev = shard;
  shard = { ...prev.seq! };
  try {
    return fn();
  } finally {
    shard = prev;
  }
}

function shardOffset(x: Tensor): number {
  if (!shard || shard.before === 0) return 0;
  const off = (x.size / shard.rows) * shard.before;
  if (x.size % shard.rows !== 0 || !Number.isSafeInteger(off)) {
    throw new ClozeError('E_SHAPE', `Expected a dropout input covering the ${shard.rows} rows of this rank's batch (a multiple of ${shard.rows} elements) but received a tensor of ${x.size} elements of shape [${x.shape.join(', ')}]`);
  }
  return off;
}

export class Dropout extends Module {
  calls = 0;
  constructor(
    readonly p: number,
    readonly seed: number,
  ) {
    super();
    checkNumber(p, 'p', 0, 1);
    checkInt(seed, 'seed');
  }
  forward(x: Tensor): Tensor {
    const offset = this.training && this.p > 0 ? shardOffset(x) : 0;
    return dropout(x, { p: this.p, seed: this.seed, step: this.training ? this.calls++ : this.calls, training: this.training, offset });
  }
  /** add(residual, forward(x)) in one pass (dropoutAdd): the same draws and bits, one pass less over the activations. */
  forwardAdd(x: Tensor, residual: Tensor): Tensor {
    const offset = this.training && this.p > 0 ? shardOffset(x) : 0;
    return dropoutAdd(x, residual, { p: this.p, seed: this.seed, step: this.training ? this.calls++ : this.calls, training: this.training, offset });
  }
}
