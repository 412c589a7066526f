/**
 * BERT encoder configuration, with HF `BertConfig`'s meaning for every shared
 * field, plus the MosaicBERT switches (ALiBi, GeGLU) and pre-LN.
 */
import { expected } from '../../errors.js';
import { checkInt, checkNumber } from '../../validate.js';

export type PositionEmbedding = 'absolute' | 'alibi';
export type FfnKind = 'gelu' | 'geglu';
export type NormPlacement = 'post' | 'pre';

export interface BertConfig {
  vocabSize: number;
  /** Width D. */
  hidden: number;
  layers: number;
  heads: number;
  /** FFN width I (GeGLU: the gated width; its input projection is D → 2I). */
  intermediate: number;
  /** Rows of the position table ('absolute'); the longest sequence ('alibi' has no table). */
  maxPosition: number;
  /** Rows of the token-type table; 0 for none. */
  typeVocabSize: number;
  layerNormEps: number;
  hiddenDropout: number;
  /** Must be 0: the fused attention kernel has no attention-probability dropout. */
  attentionDropout: number;
  positionEmbedding: PositionEmbedding;
  ffn: FfnKind;
  norm: NormPlacement;
  initializerRange: number;
  /** The MLM decoder reuses the word embeddings; only true is supported. */
  tieWordEmbeddings: boolean;
}

export const BERT_DEFAULTS: Omit<BertConfig, 'vocabSize' | 'hidden' | 'layers' | 'heads' | 'intermediate'> = {
  maxPosition: 512,
  typeVocabSize: 2,
  layerNormEps: 1e-12,
  hiddenDropout: 0.1,
  attentionDropout: 0,
  positionEmbedding: 'absolute',
  ffn: 'gelu',
  norm: 'post',
  initializerRange: 0.02,
  tieWordEmbeddings: true,
};

export type BertConfigInput = Pick<BertConfig, 'vocabSize' | 'hidden' | 'layers' | 'heads' | 'intermediate'> & Partial<BertConfig>;

function oneOf<T extends string>(v: unknown, allowed: readonly T[], name: string): void {
  if (!allowed.includes(v as T)) throw expected(`one of ${allowed.map((a) => `'${a}'`).join(', ')}`, name, v);
}

/** Fills defaults and validates; every error names the offending field. */
export function bertConfig(input: BertConfigInput): BertConfig {
  if (input === null || typeof input !== 'object') throw expected('a BERT config object', 'config', input);
  const c: BertConfig = { ...BERT_DEFAULTS, ...input };
  for (const k of Object.keys(c) as Array<keyof BertConfig>) {
    if (c[k] === undefined) throw expected('a value', k, undefined);
  }
  checkInt(c.vocabSize, 'vocabSize', 1, 2 ** 31 - 1);
  checkInt(c.hidden, 'hidden', 1);
  checkInt(c.layers, 'layers', 1);
  checkInt(c.heads, 'heads', 1);
  if (c.hidden % c.heads !== 0) throw expected(`a width divisible by heads (${c.heads})`, 'hidden', c.hidden);
  checkInt(c.intermediate, 'intermediate', 1);
  checkInt(c.maxPosition, 'maxPosition', 1);
  checkInt(c.typeVocabSize, 'typeVocabSize', 0);
  checkNumber(c.layerNormEps, 'layerNormEps', Number.MIN_VALUE);
  checkNumber(c.hiddenDropout, 'hiddenDropout', 0, 0.999);
  checkNumber(c.attentionDropout, 'attentionDropout');
  if (c.attentionDropout !== 0) {
    throw expected('0 (the fused attention kernel has no attention-probability dropout)', 'attentionDropout', c.attentionDropout);
  }
  oneOf(c.positionEmbedding, ['absolute', 'alibi'], 'positionEmbedding');
  oneOf(c.ffn, ['gelu', 'geglu'], 'ffn');
  oneOf(c.norm, ['post', 'pre'], 'norm');
  checkNumber(c.initializerRange, 'initializerRange', Number.MIN_VALUE);
  if (c.tieWordEmbeddings !== true) throw expected('true (untied decoders are not supported)', 'tieWordEmbeddings', c.tieWordEmbeddings);
  return c;
}
