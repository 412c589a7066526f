/** MLM masking: selection strategies (TypeScript) and the fused native corruption. */
export type { MaskSelection, SpecialTokens, SelectionOptions, WordBoundaries } from './select.js';
export { selectTokens } from './token.js';
export { selectWholeWords, type WholeWordOptions } from './whole-word.js';
export { selectSpans, sampleSpanLength, type SpanOptions } from './span.js';
export { buildNgramLexicon, selectNgrams, type NgramLexicon, type NgramOptions, type LexiconOptions } from './ngram.js';
export { applyMlmMasking, type MlmMaskingOptions, type MlmMaskingResult } from './apply.js';
