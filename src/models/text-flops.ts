/**
 * Training FLOPs of the text pre-training objectives, by one formula (the
 * `cloze bench text` budget). Per optimizer step of B sequences of S tokens
 * (T = B·S tokens; packed corpus, so every position is a real token) with
 * M = maskRatio·T masked tokens:
 *
 *   FLOPs = 6·T·Σ_a P_a + 12·T·S·Σ_a D_a + 6·M·P_head + 6·T·P_token
 *
 * - a runs over the transformer-layer applications of one forward pass (an
 *   encoder of L layers: L; DeBERTa's EMD runs the last layer twice more on
 *   top of the first L − 1: L + 1; DrBERT's n decoder blocks: L + n; ELECTRA:
 *   the discriminator's L layers and the generator's L narrower ones).
 * - P_a: the layer's matmul weights, 4·D² (Q, K, V, output) + 2·D·I (GELU
 *   FFN) or 3·D·I (GeGLU: D → 2I, I → D). Biases, norms and embedding
 *   lookups are not counted.
 * - 12·S·D per token and layer: attention's scores (QKᵀ) and weighted sum
 *   (AV), 2·S·D multiply-adds each forward, ×3 for training (PaLM's
 *   6N + 12·L·H·Q·T, with H·Q = D).
 * - P_head: weights applied only at masked rows: BERT's MLM head (dense D×D
 *   and the tied decoder D×V); ELECTRA's generator head (G×E and E×V).
 * - P_token: other weights applied at every row: ELECTRA's projection of the
 *   shared embeddings into the generator (E×G) and its discriminator head
 *   (D×D + D×1).
 *
 * The 6 is 2 FLOPs per multiply-add × (1 forward + 2 backward). One formula
 * for every objective, so equal FLOPs means equal counted work, not equal
 * wall-clock (the suite records seconds too).
 */
import { checkInt, checkNumber } from '../validate.js';

export type FfnKind = 'gelu' | 'geglu';

/** The shape of a stack of transformer layers. */
export interface LayerStack {
  layers: number;
  hidden: number;
  intermediate: number;
  ffn?: FfnKind;
}

export interface TextFlopsInput {
  /** The encoder (ELECTRA: the discriminator). */
  encoder: LayerStack;
  vocabSize: number;
  seqLength: number;
  batchSize: number;
  /** Share of tokens the head predicts (the masking ratio). */
  maskRatio: number;
  /** Extra applications of encoder-sized layers by a pre-training decoder (EMD: 1; DrBERT: its blocks). */
  extraLayers?: number;
  /** ELECTRA: the generator's layers (its width G); the embeddings are the encoder's width E = D. */
  generator?: LayerStack;
}

/** Matmul weights of one transformer layer: 4·D² + 2·D·I (GELU) or 3·D·I (GeGLU). */
export function layerMatmulParams(s: Pick<LayerStack, 'hidden' | 'intermediate' | 'ffn'>): number {
  return 4 * s.hidden * s.hidden + ((s.ffn ?? 'gelu') === 'geglu' ? 3 : 2) * s.hidden * s.intermediate;
}

export interface TextFlops {
  /** Training FLOPs of one optimizer step. */
  perStep: number;
  /** The terms of perStep. */
  layers: number;
  attention: number;
  head: number;
  perToken: number;
}

/** Training FLOPs of one step (see the module's formula). */
export function textTrainingFlops(x: TextFlopsInput): TextFlops {
  const e = x.encoder;
  for (const [k, v] of [['layers', e.layers], ['hidden', e.hidden], ['intermediate', e.intermediate]] as const) checkInt(v, `encoder.${k}`, 1);
  checkInt(x.vocabSize, 'vocabSize', 1);
  checkInt(x.seqLength, 'seqLength', 1);
  checkInt(x.batchSize, 'batchSize', 1);
  checkNumber(x.maskRatio, 'maskRatio', 0, 1);
  const extra = x.extraLayers ?? 0;
  checkInt(extra, 'extraLayers', 0);
  const T = x.batchSize * x.seqLength;
  const S = x.seqLength;
  const M = x.maskRatio * T;
  const D = e.hidden;
  const apps = e.layers + extra;
  let layers = 6 * T * apps * layerMatmulParams(e);
  let attention = 12 * T * S * apps * D;
  let head: number;
  let perToken = 0;
  const g = x.generator;
  if (g) {
    const G = g.hidden;
    layers += 6 * T * g.layers * layerMatmulParams(g);
    attention += 12 * T * S * g.layers * G;
    head = 6 * M * (G * D + D * x.vocabSize);
    perToken = 6 * T * (D * G + D * D + D);
  } else {
    head = 6 * M * (D * D + D * x.vocabSize);
  }
  return { perStep: layers + attention + head + perToken, layers, attention, head, perToken };
}

/** Steps that spend `budget` FLOPs at `perStep` each: the nearest whole number, at least 1 (so within half a step of the budget). */
export function stepsForBudget(budget: number, perStep: number): number {
  checkNumber(budget, 'budget', 0);
  checkNumber(perStep, 'perStep', Number.MIN_VALUE);
  return Math.max(1, Math.round(budget / perStep));
}

/** A FLOP count for people: 1.23e12. */
export function fmtFlops(f: number): string {
  return Number.isFinite(f) ? f.toExponential(2) : '–';
}
