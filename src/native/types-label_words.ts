import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** MVP's label-word scoring (native/src/binding/bind_label_words.cc). */
export interface LabelWordsNative {
  /** [M, K] = h [M, D] · w[words]ᵀ + bias[words]; words int32 [K] in [0, V). */
  labelWordLogits(h: N, w: N, bias: Maybe, words: N): N;
  /** [dh [M, D], dw [V, D] (zero off the word rows), dbias [V] (likewise)], each null when not asked for. */
  labelWordLogitsBackward(grad: N, h: N, w: N, words: N, needInput: boolean, needWeight: boolean, needBias: boolean): [Maybe, Maybe, Maybe];
  /** [B, C]: per class the max over its words (classOf int32 [K] in [0, C)), then the mean over the T templates. */
  verbalizerPool(scores: N, classOf: N, numClasses: number): N;
  /** dscores [B, T, K]: grad[b, c]/T at each max's word, 0 elsewhere. */
  verbalizerPoolBackward(grad: N, scores: N, classOf: N, numClasses: number): N;
}
