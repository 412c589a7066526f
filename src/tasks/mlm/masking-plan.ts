/**
 * Turns packed int32 batches into MLM batches for the model: select tokens by
 * the configured strategy, corrupt them 80/10/10 with the fused kernel, and
 * (for unpadded presets) pack the real tokens. Selection and corruption are
 * seeded per micro-batch, so a batch is a pure function of (seed, index).
 */
import type { Batch, PackedCorpus } from '../../data/packing.js';
import { SPECIAL_TOKENS, type TextTokenizer } from '../../data/tokenizer.js';
import { applyMlmMasking } from '../../masking/apply.js';
import { buildNgramLexicon, selectNgrams, type NgramLexicon } from '../../masking/ngram.js';
import type { MaskSelection } from '../../masking/select.js';
import { selectSpans } from '../../masking/span.js';
import { selectTokens } from '../../masking/token.js';
import { selectWholeWords } from '../../masking/whole-word.js';
import { unpadBatch, type MlmBatch } from '../../models/bert/batch.js';
import { fromTypedArray, type Tensor } from '../../tensor.js';
import type { MlmRunConfig } from './config.js';

export interface BuiltBatch {
  batch: MlmBatch;
  /** Selected (masked) tokens. */
  maskedCount: number;
  /** Non-padding tokens. */
  realTokens: number;
}

/** Sequences scanned to build the n-gram lexicon (n-gram masking only). */
const LEXICON_SEQUENCES = 2000;

export class MaskingPlan {
  private readonly special: number[];
  private readonly vocab: string[];
  private lexicon: NgramLexicon | null = null;

  constructor(
    private readonly cfg: Pick<MlmRunConfig, 'maskRatio' | 'masking'>,
    private readonly tok: TextTokenizer,
    private readonly corpus: PackedCorpus,
    private readonly unpadded: boolean,
    /** The corruption of the selected tokens; default BERT's 80/10/10 (ELECTRA: 85% [MASK], no random tokens). */
    private readonly corruption: { maskProb: number; randomProb: number } | null = null,
  ) {
    this.special = [tok.padId, tok.clsId, tok.sepId, tok.maskId];
    const v = tok.hf.getVocab(true) as Record<string, number>;
    this.vocab = [];
    for (const [t, id] of Object.entries(v)) this.vocab[id] = t;
  }

  private ngramLexicon(): NgramLexicon {
    if (!this.lexicon) {
      const n = Math.min(LEXICON_SEQUENCES, this.corpus.trainIndices.length);
      const seqs: Int32Array[] = [];
      for (let i = 0; i < n; i++) {
        const s = new Int32Array(this.corpus.maxLength);
        this.corpus.sequence(this.corpus.trainIndices[i]!, s);
        seqs.push(s);
      }
      this.lexicon = buildNgramLexicon(seqs, { maxN: 3, minCount: 2, special: this.special });
    }
    return this.lexicon;
  }

  private select(ids: Tensor, seed: number): MaskSelection {
    const o = { ratio: this.cfg.maskRatio, special: this.special, seed };
    switch (this.cfg.masking) {
      case 'whole-word':
        return selectWholeWords(ids, { ...o, vocab: this.vocab });
      case 'span':
        return selectSpans(ids, { ...o, vocab: this.vocab });
      case 'ngram':
        return selectNgrams(ids, { ...o, lexicon: this.ngramLexicon() });
      default:
        return selectTokens(ids, o);
    }
  }

  /** The MLM batch for micro-batch `index` of the stream seeded `seed`. Call inside a scope. */
  build(b: Batch, seed: number, index: number): BuiltBatch {
    const ids = fromTypedArray(b.ids, b.shape);
    const attentionMask = fromTypedArray(b.attentionMask, b.shape);
    const selectionSeed = (seed * 2_654_435_761 + index) % 2 ** 52;
    const sel = this.select(ids, selectionSeed);
    const m = applyMlmMasking(ids, sel, {
      vocabSize: this.tok.vocabSize,
      maskId: this.tok.maskId,
      // Random replacements never draw a special token (ids 0..4).
      randomLow: SPECIAL_TOKENS.length,
      seed,
      step: index,
      ...(this.corruption ?? {}),
    });
    let real = 0;
    for (let i = 0; i < b.attentionMask.length; i++) real += b.attentionMask[i]!;
    const padded = { ids: m.ids, attentionMask, rows: m.rows, targets: m.targets };
    return { batch: this.unpadded ? unpadBatch(padded) : padded, maskedCount: m.rows.size, realTokens: real };
  }

  dispose(): void {
    this.lexicon = null;
  }
}
