/**
 * Turns packed int32 batches into MLM batches for the model: select tokens by
 * the configured strategy, corrupt them 80/10/10 with the fused kernel, and
 * (for unpadded presets) pack the real tokens. Selection and corruption are
 * seeded per micro-batch, so a batch is a pure function of (seed, index).
 * Held-out evaluation builds its batches here too, at its own ratio.
 */
import type { Batch, PackedCorpus } from '../../data/packing.js';
import { ClozeError } from '../../errors.js';
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
  /** With a shard: what the rank needs of the global batch it took its rows from. */
  shard?: ShardInfo;
}

/** A data-parallel rank's part of a global micro-batch: rows [rank·B/size, (rank+1)·B/size). */
export interface BatchShard {
  rank: number;
  size: number;
}

export interface ShardInfo {
  /** Masked tokens with a target in the whole global batch: every rank divides its loss sum by it. */
  globalMasked: number;
  /**
   * The rows of the encoder's layout before this rank's (sequences padded, tokens unpadded) and this
   * rank's own, for dropout's element offset (withDropoutShard).
   */
  rowsBefore: number;
  rows: number;
  /**
   * This rank's masked positions within the global batch's list of them (ascending flat positions, so the
   * rank's are a contiguous run): `before` lie on lower ranks, `total` in all. DrBERT draws per masked position.
   */
  masked: { before: number; total: number };
  /** Real (non-padding) tokens in the whole global batch. */
  globalTokens: number;
}

/** Sequences scanned to build the n-gram lexicon (n-gram masking only). */
const LEXICON_SEQUENCES = 2000;

/**
 * The id range [low, V) of the random replacements. 'all' is BERT's (create_pretraining_data.py draws
 * from the whole vocab_words) and Hugging Face's (torch.randint(len(tokenizer))); 'non-special' leaves out
 * the five special tokens, as fairseq's MaskTokensDataset (RoBERTa) zeroes the weights of its leading
 * specials. One contiguous range is what the kernel draws from, so 'non-special' needs the specials at
 * ids 0..4 (every tokenizer cloze trains; a loaded BERT vocab.txt has [UNK] [CLS] [SEP] [MASK] at 100..103).
 */
export function randomTokenLow(tok: Pick<TextTokenizer, 'padId' | 'unkId' | 'clsId' | 'sepId' | 'maskId'>, mode: string): number {
  if (mode === 'all') return 0;
  const ids = [tok.padId, tok.unkId, tok.clsId, tok.sepId, tok.maskId];
  const K = SPECIAL_TOKENS.length;
  if (mode !== 'non-special') throw new ClozeError('E_VALUE', `Expected randomTokens 'all' or 'non-special' but received ${JSON.stringify(mode)}`);
  if (ids.some((id) => id >= K)) {
    throw new ClozeError('E_VALUE', `Expected a tokenizer with its special tokens at ids 0..${K - 1} for randomTokens 'non-special' (random replacements draw from one range [${K}, V)) but received ${SPECIAL_TOKENS.map((t, i) => `${t} ${ids[i]}`).join(', ')}; use randomTokens 'all'`);
  }
  return K;
}

export class MaskingPlan {
  private readonly special: number[];
  private readonly vocab: string[];
  private readonly randomLow: number;
  private lexicon: NgramLexicon | null = null;

  constructor(
    private readonly cfg: Pick<MlmRunConfig, 'maskRatio' | 'masking'> & Partial<Pick<MlmRunConfig, 'randomTokens'>>,
    private readonly tok: TextTokenizer,
    private readonly corpus: PackedCorpus,
    private readonly unpadded: boolean,
    /** The corruption of the selected tokens; default BERT's 80/10/10 (ELECTRA: 85% [MASK], no random tokens). */
    private readonly corruption: { maskProb: number; randomProb: number } | null = null,
  ) {
    this.special = [tok.padId, tok.clsId, tok.sepId, tok.maskId];
    this.randomLow = randomTokenLow(tok, cfg.randomTokens ?? 'all');
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

  private select(ids: Tensor, seed: number, ratio: number): MaskSelection {
    const o = { ratio, special: this.special, seed };
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

  /**
   * The MLM batch for micro-batch `index` of the stream seeded `seed`, masking `ratio` of the tokens
   * (default the training maskRatio; evaluation passes its own). With `shard`, `b` is the global micro-batch
   * and the result is that rank's rows of it, masked exactly as in one process. Call inside a scope.
   */
  build(b: Batch, seed: number, index: number, ratio = this.cfg.maskRatio, shard?: BatchShard): BuiltBatch {
    const ids = fromTypedArray(b.ids, b.shape);
    const attentionMask = fromTypedArray(b.attentionMask, b.shape);
    const selectionSeed = (seed * 2_654_435_761 + index) % 2 ** 52;
    const sel = this.select(ids, selectionSeed, ratio);
    const m = applyMlmMasking(ids, sel, {
      vocabSize: this.tok.vocabSize,
      maskId: this.tok.maskId,
      // The draw's range only, not its stream: the Philox counters are (seed, index, position) either way.
      randomLow: this.randomLow,
      seed,
      step: index,
      ...(this.corruption ?? {}),
    });
    if (shard) return this.shardOf(b, m, shard);
    let real = 0;
    for (let i = 0; i < b.attentionMask.length; i++) real += b.attentionMask[i]!;
    const padded = { ids: m.ids, attentionMask, rows: m.rows, targets: m.targets };
    return { batch: this.unpadded ? unpadBatch(padded) : padded, maskedCount: m.rows.size, realTokens: real };
  }

  /**
   * Rank `rank`'s rows of the masked global batch: its sequences, and the masked positions among them
   * (renumbered from its first row). The global batch was selected and corrupted whole, so the ranks'
   * parts are exactly the single process's batch, split.
   */
  private shardOf(b: Batch, m: { ids: Tensor; rows: Tensor; targets: Tensor }, { rank, size }: BatchShard): BuiltBatch {
    const [B, L] = b.shape;
    if (B % size !== 0) throw new ClozeError('E_SHAPE', `Expected a global batch divisible by the world size ${size} but received ${B} sequences`);
    const per = B / size;
    const lo = rank * per * L;
    const hi = lo + per * L;
    const ids = (m.ids.toArray() as Int32Array).slice(lo, hi);
    const mask = b.attentionMask.slice(lo, hi);
    const rows = m.rows.toArray() as Int32Array;
    const targets = m.targets.toArray() as Int32Array;
    const myRows: number[] = [];
    const myTargets: number[] = [];
    let globalMasked = 0;
    let maskedBefore = 0;
    for (let i = 0; i < rows.length; i++) {
      if (targets[i] !== -100) globalMasked++;
      if (i > 0 && rows[i]! <= rows[i - 1]!) throw new ClozeError('E_VALUE', `Expected the masked positions in ascending order for a data-parallel shard but received ${rows[i - 1]} then ${rows[i]}`);
      if (rows[i]! < lo) maskedBefore++;
      if (rows[i]! >= lo && rows[i]! < hi) {
        myRows.push(rows[i]! - lo);
        myTargets.push(targets[i]!);
      }
    }
    let real = 0;
    for (let i = 0; i < mask.length; i++) real += mask[i]!;
    let before = 0;
    for (let i = 0; i < lo; i++) before += b.attentionMask[i]!;
    let globalTokens = 0;
    for (let i = 0; i < b.attentionMask.length; i++) globalTokens += b.attentionMask[i]!;
    const padded = {
      ids: fromTypedArray(ids, [per, L]),
      attentionMask: fromTypedArray(mask, [per, L]),
      rows: fromTypedArray(Int32Array.from(myRows), [myRows.length]),
      targets: fromTypedArray(Int32Array.from(myTargets), [myTargets.length]),
    };
    return {
      batch: this.unpadded ? unpadBatch(padded) : padded,
      maskedCount: myRows.length,
      realTokens: real,
      // Unpadded, the encoder's rows are tokens: this rank's come after the real tokens of the lower ranks' sequences.
      shard: { globalMasked, rowsBefore: this.unpadded ? before : rank * per, rows: this.unpadded ? real : per, masked: { before: maskedBefore, total: rows.length }, globalTokens },
    };
  }

  dispose(): void {
    this.lexicon = null;
  }
}
