/**
 * MLM batches for BertForMaskedLM, padded or packed, and the conversion
 * between them (unpadding, as MosaicBERT does before the encoder).
 */
import { expected } from '../../errors.js';
import { fromTypedArray, type Tensor } from '../../tensor.js';
import { checkDtype, checkShape, checkTensor } from '../../validate.js';

/** Each encoder layer's additive attention bias [B, L, L] from its input [B, L, D] and key padding (layers.ts' LayerAttentionBias). */
export type LayerAttentionBiasFn = (layer: number, x: Tensor, keyPadding: Tensor | null) => Tensor;

/** A padded batch. Shape letters: B sequences of L tokens, M masked positions. */
export interface PaddedMlmBatch {
  /** int32 [B, L] (already corrupted by masking). */
  ids: Tensor;
  /** int32 or uint8 [B, L], HF convention: 1 = real token, 0 = padding. Omitted: no padding. */
  attentionMask?: Tensor;
  /** int32 [B, L]; omitted: all 0. */
  tokenTypeIds?: Tensor;
  /**
   * float [B, L, D]: added to the word embeddings (adversarial training):
   * word_embeddings(ids) + δ is what Hugging Face's `inputs_embeds` would
   * carry; position and token-type embeddings, LayerNorm and dropout follow.
   */
  wordEmbeddingDelta?: Tensor;
  /** Per-layer attention bias [B, L, L], shared by the heads (ASA's adversarial masks); padded batches only. */
  attentionBias?: LayerAttentionBiasFn;
  /** int32 [M]: flat positions b·L + l of the masked tokens. */
  rows: Tensor;
  /** int32 [M]: their original ids (−100 = ignored). */
  targets: Tensor;
}

/** A packed (unpadded) batch: the real tokens of B sequences back to back. */
export interface PackedMlmBatch {
  /** int32 [nnz]. */
  ids: Tensor;
  /** int32 [B+1] prefix sums of the sequence lengths. */
  cuSeqlens: Tensor;
  /** The longest sequence. */
  maxSeqlen: number;
  /** int32 [nnz]; omitted: all 0. */
  tokenTypeIds?: Tensor;
  /** float [nnz, D]: added to the word embeddings (adversarial training). */
  wordEmbeddingDelta?: Tensor;
  /** Not supported packed (a [B, L, L] bias needs the padded layout); present for the type's sake, rejected by the encoder. */
  attentionBias?: LayerAttentionBiasFn;
  /** int32 [M]: positions in [0, nnz) of the masked tokens. */
  rows: Tensor;
  targets: Tensor;
}

export type MlmBatch = PaddedMlmBatch | PackedMlmBatch;

type Inputs<T> = Omit<T, 'rows' | 'targets'>;
/** The encoder's input: a batch without the MLM rows and targets. */
export type EncoderBatch = Inputs<PaddedMlmBatch> | Inputs<PackedMlmBatch>;

export function isPacked(b: EncoderBatch): b is Inputs<PackedMlmBatch> {
  return (b as PackedMlmBatch).cuSeqlens !== undefined;
}

/** Position ids: l for every (b, l) of a padded batch, or the offset within its sequence for a packed one. */
export function positionIds(b: EncoderBatch): Int32Array {
  if (!isPacked(b)) {
    const [B, L] = b.ids.shape as [number, number];
    const out = new Int32Array(B * L);
    for (let i = 0; i < B; i++) for (let l = 0; l < L; l++) out[i * L + l] = l;
    return out;
  }
  const cu = b.cuSeqlens.toArray() as Int32Array;
  const out = new Int32Array(b.ids.size);
  for (let s = 0; s + 1 < cu.length; s++) for (let i = cu[s]!; i < cu[s + 1]!; i++) out[i] = i - cu[s]!;
  return out;
}

/** uint8 [B, L] key padding for the attention kernel (1 = padding) from HF's mask (1 = real token). */
export function keyPaddingFromAttentionMask(mask: Tensor, shape: readonly number[]): Tensor {
  checkTensor(mask, 'attentionMask');
  if (mask.dtype !== 'int32' && mask.dtype !== 'uint8') throw expected('an int32 or uint8 tensor', 'attentionMask', mask, 'E_DTYPE');
  checkShape(mask, shape, 'attentionMask');
  const m = mask.toArray();
  const out = new Uint8Array(m.length);
  for (let i = 0; i < m.length; i++) out[i] = m[i] === 0 ? 1 : 0;
  return fromTypedArray(out, shape);
}

/**
 * Packs a right-padded batch: keeps the real tokens, builds cuSeqlens and
 * maps the masked rows from b·L + l to packed positions. Positions are kept
 * because each sequence starts at l = 0.
 */
export function unpadBatch(b: PaddedMlmBatch): PackedMlmBatch {
  // The perturbation belongs to the layout it was drawn for (its per-example norms); draw it after unpadding.
  if (b.wordEmbeddingDelta) throw expected('a batch without wordEmbeddingDelta (unpad first, then perturb)', 'wordEmbeddingDelta', b.wordEmbeddingDelta);
  checkTensor(b.ids, 'ids');
  checkDtype(b.ids, 'int32', 'ids');
  if (b.ids.shape.length !== 2) throw expected('an int32 tensor [B, L]', 'ids', b.ids, 'E_SHAPE');
  const [B, L] = b.ids.shape as [number, number];
  const mask = b.attentionMask ? b.attentionMask.toArray() : new Int32Array(B * L).fill(1);
  if (b.attentionMask) checkShape(b.attentionMask, [B, L], 'attentionMask');
  const cu = new Int32Array(B + 1);
  for (let s = 0; s < B; s++) {
    let len = 0;
    while (len < L && mask[s * L + len] !== 0) len++;
    for (let l = len; l < L; l++) {
      if (mask[s * L + l] !== 0) throw expected('right padding (real tokens first in every row)', 'attentionMask', `a real token after padding in row ${s}`);
    }
    cu[s + 1] = cu[s]! + len;
  }
  const nnz = cu[B]!;
  const ids = b.ids.toArray() as Int32Array;
  const types = b.tokenTypeIds ? (b.tokenTypeIds.toArray() as Int32Array) : null;
  const pIds = new Int32Array(nnz);
  const pTypes = types ? new Int32Array(nnz) : null;
  let maxSeqlen = 0;
  for (let s = 0; s < B; s++) {
    const len = cu[s + 1]! - cu[s]!;
    maxSeqlen = Math.max(maxSeqlen, len);
    pIds.set(ids.subarray(s * L, s * L + len), cu[s]!);
    if (pTypes) pTypes.set(types!.subarray(s * L, s * L + len), cu[s]!);
  }
  const rows = b.rows.toArray() as Int32Array;
  const pRows = new Int32Array(rows.length);
  rows.forEach((r, i) => {
    const s = Math.floor(r / L);
    const l = r - s * L;
    if (!(r >= 0 && s < B && l < cu[s + 1]! - cu[s]!)) throw expected('masked rows at real tokens', 'rows', `${r} at position ${i}`, 'E_INDEX');
    pRows[i] = cu[s]! + l;
  });
  return {
    ids: fromTypedArray(pIds, [nnz]),
    cuSeqlens: fromTypedArray(cu, [B + 1]),
    maxSeqlen,
    ...(pTypes ? { tokenTypeIds: fromTypedArray(pTypes, [nnz]) } : {}),
    rows: fromTypedArray(pRows, [pRows.length]),
    targets: b.targets,
  };
}
