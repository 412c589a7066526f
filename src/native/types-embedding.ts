import type { NativeTensor as N } from './types.js';

/** Embedding lookup (native/src/binding/bind_embedding.cc). */
export interface EmbeddingNative {
  embedding(table: N, ids: N): N;
  embeddingBackward(g: N, ids: N, vocabSize: number): N;
}
