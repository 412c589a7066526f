/**
 * The shapes bench:ops times its ops at: those of the models this project
 * trains on the CPU, read from their presets so that they follow the presets.
 *   - bert-tiny / bert-mini MLM: batches of 32 × 128 tokens, 15% masked.
 *   - vit-micro-fmnist MAE: batch 128 (its recipe) of 28×28 images, patch 4 →
 *     49 tokens, ratio 0.75 → 12 visible.
 *   - spark-resnet-mini / spark-convnext-mini: batch 64 (their recipe) of
 *     32×32 images, mask ratio 0.6 on the 4×4 grid of 8×8-pixel cells.
 */
import { bertPreset, sparkPreset, vitPreset } from '../../src/index.js';

export interface BertShape {
  name: 'bert-tiny' | 'bert-mini';
  /** 'bert-mini MLM 32×128' */
  label: string;
  B: number;
  L: number;
  /** B·L */
  tokens: number;
  /** round(B·L·0.15): the rows the MLM head scores. */
  masked: number;
  D: number;
  heads: number;
  Dh: number;
  I: number;
  V: number;
  layers: number;
  /** Trainable parameters of BertForMaskedLM (tied decoder): 11,201,594 for bert-mini. */
  params: number;
}

const MLM_B = 32;
const MLM_L = 128;
const MLM_RATIO = 0.15;

export function bertShape(name: BertShape['name']): BertShape {
  const c = bertPreset(name).config;
  const D = c.hidden;
  const I = c.intermediate;
  const V = c.vocabSize;
  const maxPosition = c.maxPosition ?? 512;
  const typeVocab = c.typeVocabSize ?? 2;
  // embeddings (word, position, type, LayerNorm) + layers (q, k, v, o, 2 LayerNorms, FFN) + head (dense, LayerNorm, bias)
  const params = (V + maxPosition + typeVocab) * D + 2 * D + c.layers * (4 * D * D + 4 * D + 4 * D + 2 * D * I + I + D) + D * D + 3 * D + V;
  return {
    name, label: `${name} MLM ${MLM_B}×${MLM_L}`, B: MLM_B, L: MLM_L, tokens: MLM_B * MLM_L,
    masked: Math.round(MLM_B * MLM_L * MLM_RATIO), D, heads: c.heads, Dh: D / c.heads, I, V, layers: c.layers, params,
  };
}

export interface VitShape {
  label: string;
  B: number;
  C: number;
  image: number;
  patch: number;
  /** Tokens per image: (image / patch)². */
  L: number;
  /** Visible tokens at ratio 0.75: int(L · 0.25), as MAE. */
  keep: number;
  /** Pixels per patch: patch² · C. */
  P: number;
  D: number;
  heads: number;
  Dh: number;
  mlp: number;
  decoderDim: number;
  depth: number;
}

export function vitShape(): VitShape {
  const c = vitPreset('vit-micro-fmnist').config;
  const B = 128;
  const image = c.imageSize[0];
  const L = (image / c.patch) ** 2;
  return {
    label: `vit-micro-fmnist MAE b${B}`, B, C: c.channels, image, patch: c.patch, L, keep: Math.floor(L * 0.25 + 1e-9),
    P: c.patch * c.patch * c.channels, D: c.dim, heads: c.heads, Dh: c.dim / c.heads, mlp: c.dim * c.mlpRatio,
    decoderDim: c.decoderDim, depth: c.depth,
  };
}

export interface SparkShape {
  label: string;
  B: number;
  image: number;
  widths: number[];
  /** Mask grid side: image / 2^(stages − 1). */
  grid: number;
  ratio: number;
  decoderWidth: number;
}

export function sparkShape(arch: 'resnet' | 'convnext'): SparkShape {
  const c = sparkPreset(arch === 'resnet' ? 'spark-resnet-mini' : 'spark-convnext-mini').config;
  const B = 64;
  return {
    label: `spark-${arch}-mini b${B}`, B, image: c.imageSize, widths: [...c.widths], grid: c.imageSize >> (c.widths.length - 1),
    ratio: 0.6, decoderWidth: c.decoderWidth,
  };
}
