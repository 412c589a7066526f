/**
 * config.json for a checkpoint directory, in Hugging Face's BertConfig keys so
 * that `BertForMaskedLM.from_pretrained(dir)` reads it. Variants HF's BERT
 * does not have (ALiBi, GeGLU, pre-LN) are recorded under `cloze_*` keys, and
 * such a directory is not loadable by stock `transformers`.
 */
import type { BertConfig } from '../models/bert/config.js';

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
