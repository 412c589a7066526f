/**
 * config.json for a checkpoint directory, in Hugging Face's BertConfig keys so
 * that `BertForMaskedLM.from_pretrained(dir)` reads it. Variants HF's BERT
 * does not have (ALiBi, GeGLU, pre-LN) are recorded under `cloze_*` keys, and
 * such a directory is not loadable by stock `transformers`.
 */
import { ClozeError } from '../../errors.js';
import { bertConfig, type BertConfig } from './config.js';

export function hfBertConfig(c: BertConfig): { [key: string]: string | number | boolean | string[] } {
  return {
    architectures: ['BertForMaskedLM'],
    model_type: 'bert',
    vocab_size: c.vocabSize,
    hidden_size: c.hidden,
    num_hidden_layers: c.layers,
    num_attention_heads: c.heads,
    intermediate_size: c.intermediate,
    hidden_act: 'gelu',
    hidden_dropout_prob: c.hiddenDropout,
    attention_probs_dropout_prob: c.attentionDropout,
    max_position_embeddings: c.maxPosition,
    type_vocab_size: c.typeVocabSize,
    initializer_range: c.initializerRange,
    layer_norm_eps: c.layerNormEps,
    pad_token_id: 0,
    position_embedding_type: 'absolute',
    tie_word_embeddings: true,
    cloze_position_embedding: c.positionEmbedding,
    cloze_ffn: c.ffn,
    cloze_norm: c.norm,
  };
}

type Json = { [key: string]: unknown };

/** A BertConfig from a config.json written by us or by Hugging Face (`BertConfig`). */
export function bertConfigFromHf(j: Json, where: string): BertConfig {
  const num = (k: string, dflt?: number): number => {
    const v = j[k] ?? dflt;
    if (typeof v !== 'number') throw new ClozeError('E_VALUE', `Expected a number for ${k} in ${where} but received ${JSON.stringify(v)}`);
    return v;
  };
  const act = j.hidden_act ?? 'gelu';
  if (act !== 'gelu') throw new ClozeError('E_VALUE', `Expected hidden_act "gelu" in ${where} but received ${JSON.stringify(act)}`);
  if ((j.position_embedding_type ?? 'absolute') !== 'absolute') {
    throw new ClozeError('E_VALUE', `Expected position_embedding_type "absolute" in ${where} but received ${JSON.stringify(j.position_embedding_type)}`);
  }
  return bertConfig({
    vocabSize: num('vocab_size'),
    hidden: num('hidden_size'),
    layers: num('num_hidden_layers'),
    heads: num('num_attention_heads'),
    intermediate: num('intermediate_size'),
    maxPosition: num('max_position_embeddings', 512),
    typeVocabSize: num('type_vocab_size', 2),
    layerNormEps: num('layer_norm_eps', 1e-12),
    hiddenDropout: num('hidden_dropout_prob', 0.1),
    // Our kernel has no attention-probability dropout; HF's default 0.1 is dropped (said in the README).
    attentionDropout: 0,
    initializerRange: num('initializer_range', 0.02),
    positionEmbedding: (j.cloze_position_embedding as 'absolute' | 'alibi' | undefined) ?? 'absolute',
    ffn: (j.cloze_ffn as 'gelu' | 'geglu' | undefined) ?? 'gelu',
    norm: (j.cloze_norm as 'post' | 'pre' | undefined) ?? 'post',
  });
}

/** Weights of an HF checkpoint that our model does not hold as parameters (buffers and tied copies). */
export const HF_EXTRA_KEYS = new Set(['bert.embeddings.position_ids', 'cls.predictions.decoder.weight', 'cls.predictions.decoder.bias']);
