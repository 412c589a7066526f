/**
 * Packs a token shard into fixed-length BERT sequences, holds out an eval
 * split and batches them as int32 arrays.
 *
 * Packing: the documents are joined into one stream with a [SEP] between
 * consecutive documents (RoBERTa's "full sentences" packing, sequences cross
 * document boundaries). The stream is cut into chunks of maxLength - 2 tokens
 * and every chunk becomes [CLS] chunk [SEP]. Only the final chunk can be short;
 * it is padded with [PAD] after its [SEP], and attentionMask marks the padding
 * with 0. Sequences are read from the shard on demand, so nothing but the
 * sequence order is held in memory.
 *
 * Split and order: a permutation of all sequences from Rng(seed); its first
 * round(n * evalFraction) entries (at least 1 when evalFraction > 0, at most
 * n - 1) are the eval split, kept in ascending order; the rest are training
 * sequences, reshuffled every epoch with Rng(seed + 1 + epoch).
 */
import { ClozeError } from '../errors.js';
import { Rng } from '../rng.js';
import { checkInt, checkNumber } from '../validate.js';
import type { Shard } from './shard.js';

export interface PackOptions {
  /** Sequence length including [CLS] and [SEP]; at least 3. */
  maxLength: number;
  /** Fraction of sequences held out for evaluation; default 0.05. */
  evalFraction?: number;
  /** Seed of the split and of the training order; default 0. */
  seed?: number;
}

export interface SpecialIds {
  clsId: number;
  sepId: number;
  padId: number;
}

/** One batch, ready to become int32 tensors of shape [B, L]. */
export interface Batch {
  ids: Int32Array;
  /** 1 for real tokens (including [CLS]/[SEP]), 0 for [PAD]. */
  attentionMask: Int32Array;
  shape: [number, number];
  /** Sequence indices in this batch. */
  indices: Uint32Array;
}

export interface BatchOptions {
  /** Training order of this epoch; ignored for 'eval'. Default 0. */
  epoch?: number;
  /** Skip a final batch smaller than batchSize; default false. */
  dropLast?: boolean;
}

export class PackedCorpus {
  readonly shard: Shard;
  readonly maxLength: number;
  readonly numSequences: number;
  readonly seed: number;
  /** Eval sequence indices, ascending. */
  readonly evalIndices: Uint32Array;
  /** Training sequence indices, sorted; see trainOrder() for an epoch's order. */
  readonly trainIndices: Uint32Array;
  private readonly special: SpecialIds;
  private readonly chunk: number;
  private readonly streamLength: number;

  constructor(shard: Shard, special: SpecialIds, opts: PackOptions) {
    const { maxLength, evalFraction = 0.05, seed = 0 } = opts;
    checkInt(maxLength, 'maxLength', 3, 2 ** 31 - 1);
    checkNumber(evalFraction, 'evalFraction', 0, 0.5);
    checkInt(seed, 'seed', 0, 2 ** 52);
    const { tokenCount, docCount } = shard.header;
    if (tokenCount === 0) throw new ClozeError('E_VALUE', `Expected at least one token for shard '${shard.path}' but received an empty shard`);
    this.shard = shard;
    this.special = special;
    this.maxLength = maxLength;
    this.seed = seed;
    this.chunk = maxLength - 2;
    this.streamLength = tokenCount + docCount - 1;
    const n = Math.ceil(this.streamLength / this.chunk);
    this.numSequences = n;

    const perm = shuffled(n, new Rng(seed));
    const nEval = evalFraction > 0 ? Math.min(Math.max(1, Math.round(n * evalFraction)), n - 1) : 0;
    this.evalIndices = perm.slice(0, nEval).sort();
    this.trainIndices = perm.slice(nEval).sort();
  }

  /** Training sequence indices in the order of `epoch`; the same seed and epoch give the same order. */
  trainOrder(epoch = 0): Uint32Array {
    checkInt(epoch, 'epoch', 0, 2 ** 32);
    const order = this.trainIndices.slice();
    const rng = new Rng(this.seed + 1 + epoch);
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
    }
    return order;
  }

  /**
   * Writes sequence `i` ([CLS] tokens [SEP] [PAD]…, maxLength ids) into `out`
   * at `offset`; returns how many are not padding.
   */
  sequence(i: number, out: Int32Array = new Int32Array(this.maxLength), offset = 0): number {
    checkInt(i, 'sequence', 0, this.numSequences - 1);
    const { clsId, sepId, padId } = this.special;
    const starts = this.shard.docStarts;
    const a = i * this.chunk;
    const n = Math.min(this.chunk, this.streamLength - a);
    out[offset] = clsId;
    // Document d occupies stream positions [starts[d] + d, starts[d + 1] + d); a [SEP] follows it.
    let d = upperBound(starts, a) - 1;
    let p = a;
    let w = offset + 1;
    while (p < a + n) {
      const docEnd = starts[d + 1]! + d;
      if (p < docEnd) {
        const k = Math.min(docEnd - p, a + n - p);
        this.shard.read(p - d, k, out, w);
        w += k;
        p += k;
      } else {
        out[w++] = sepId;
        p++;
        d++;
      }
    }
    out[w++] = sepId;
    out.fill(padId, w, offset + this.maxLength);
    return w - offset;
  }

  /** Batches of a split, in training order (train) or ascending order (eval). */
  *batches(split: 'train' | 'eval', batchSize: number, opts: BatchOptions = {}): Generator<Batch> {
    if (split !== 'train' && split !== 'eval') {
      throw new ClozeError('E_VALUE', `Expected 'train' or 'eval' for split but received '${String(split)}'`);
    }
    checkInt(batchSize, 'batchSize', 1);
    const order = split === 'train' ? this.trainOrder(opts.epoch ?? 0) : this.evalIndices;
    for (let s = 0; s < order.length; s += batchSize) {
      const indices = order.slice(s, s + batchSize);
      if (indices.length < batchSize && opts.dropLast) break;
      yield this.batchOf(indices);
    }
  }

  /** The batch of the given sequence indices, in that order. */
  batchOf(indices: Uint32Array): Batch {
    const L = this.maxLength;
    const B = indices.length;
    const ids = new Int32Array(B * L);
    const attentionMask = new Int32Array(B * L);
    for (let b = 0; b < B; b++) {
      const len = this.sequence(indices[b]!, ids, b * L);
      attentionMask.fill(1, b * L, b * L + len);
    }
    return { ids, attentionMask, shape: [B, L], indices: indices.slice() };
  }
}

function shuffled(n: number, rng: Rng): Uint32Array {
  const a = new Uint32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = a[i]!;
    a[i] = a[j]!;
    a[j] = t;
  }
  return a;
}

/** First index with starts[k] + k > x, searching stream positions of document starts. */
function upperBound(starts: Float64Array, x: number): number {
  let lo = 0;
  let hi = starts.length - 1; // the last entry is the end marker, not a document
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (starts[mid]! + mid > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}
