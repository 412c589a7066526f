/**
 * BERT-Attack's candidates: a pre-trained masked language model's top-k
 * predictions at a word, the word replaced by one [MASK] in the original
 * text (every attackable word of an example in one batched pass). Only
 * whole-word tokens count (letters only, no "##" piece, no special token), so
 * a candidate is always one token: the subword combinations that make
 * TextAttack's BERT-Attack hang never arise.
 */
import { noGrad, scope, keep } from '../../autograd/mode.js';
import { loadCheckpoint } from '../../checkpoint/checkpoint.js';
import { ClozeError } from '../../errors.js';
import { BertForMaskedLM } from '../../models/bert/model.js';
import { fromTypedArray, type Tensor } from '../../tensor.js';
import type { TextTokenizer } from '../../data/tokenizer.js';
import { withWord, type Words } from '../../eval/attack/words.js';
import { buildSequence, padSequences } from './mvp-inputs.js';
import { checkpointTokenizer, maskedLMOf } from './model.js';

const WHOLE_WORD = /^\p{L}+$/u;

export class MlmCandidates {
  private readonly allWords: Tensor;
  /** Token text of each id when it can stand as a word, else null. */
  private readonly wordOf: Array<string | null>;

  private constructor(readonly dir: string, private readonly model: BertForMaskedLM, private readonly tok: TextTokenizer, readonly k: number, readonly maxLength: number) {
    const V = model.config.vocabSize;
    this.allWords = keep(fromTypedArray(Int32Array.from({ length: V }, (_, i) => i), [V]));
    this.wordOf = Array.from({ length: V }, (_, i) => {
      const t = tok.hf.idToToken(i);
      return t !== null && t !== undefined && WHOLE_WORD.test(t) ? t.toLowerCase() : null;
    });
  }

  /** The MLM of a pre-trained checkpoint directory (ours or a Hugging Face BERT with its MLM head). */
  static async open(dir: string, k: number, maxLength: number): Promise<MlmCandidates> {
    if (!Number.isInteger(k) || k < 1) throw new ClozeError('E_VALUE', `Expected an integer ≥ 1 for candidates (top-k) but received ${k}`);
    const tok = await checkpointTokenizer(dir);
    if ((await tok.encode('[MASK]')).join() !== String(tok.maskId)) {
      throw new ClozeError('E_VALUE', `Expected a tokenizer that reads "[MASK]" as its mask token in ${dir} for the attack's MLM but received one that splits it`);
    }
    const ck = loadCheckpoint(dir);
    try {
      const model = maskedLMOf(ck, dir, 0);
      model.eval();
      return new MlmCandidates(dir, model, tok, k, maxLength);
    } finally {
      ck.dispose();
    }
  }

  /**
   * Up to k candidate words (lower case) at each of `indices` of the attacked
   * text; `context` is the first text of a pair (the attacked text is then
   * its second), else null.
   */
  async candidates(w: Words, indices: readonly number[], context: string | null): Promise<string[][]> {
    if (indices.length === 0) return [];
    const texts = indices.map((i) => withWord(w, w.words, i, '[MASK]'));
    const enc = await this.tok.encodeBatch(texts);
    const ctx = context === null ? null : await this.tok.encode(context);
    const seqs = enc.map((ids) => (ctx ? buildSequence(this.tok, ctx, ids, null, this.maxLength) : buildSequence(this.tok, ids, null, null, this.maxLength)));
    // The [MASK] may be truncated away for a word far into a long text: no candidates there.
    const maskPos = seqs.map((s) => s.ids.indexOf(this.tok.maskId));
    const live = seqs.flatMap((s, k) => (maskPos[k]! >= 0 ? [k] : []));
    const out: string[][] = indices.map(() => []);
    if (live.length === 0) return out;
    const { batch } = padSequences(live.map((k) => seqs[k]!), this.tok.padId);
    const L = batch.ids.shape[1]!;
    const rows = Int32Array.from(live, (k, b) => b * L + maskPos[k]!);
    const V = this.wordOf.length;
    const logits = noGrad(() => scope(() => this.model.labelWordLogits(batch, fromTypedArray(rows, [rows.length]), this.allWords).to('cpu').toArray() as Float32Array));
    live.forEach((k, b) => {
      out[k] = this.topWords(logits.subarray(b * V, (b + 1) * V));
    });
    return out;
  }

  /** The k highest-scoring ids, best first, kept when they are whole words. */
  private topWords(row: Float32Array): string[] {
    const top: number[] = [];
    for (let i = 0; i < row.length; i++) {
      if (top.length < this.k) {
        top.push(i);
        if (top.length === this.k) top.sort((a, b) => row[b]! - row[a]! || a - b);
      } else if (row[i]! > row[top[this.k - 1]!]!) {
        let j = this.k - 1;
        while (j > 0 && row[i]! > row[top[j - 1]!]!) j--;
        top.splice(j, 0, i);
        top.pop();
      }
    }
    if (top.length < this.k) top.sort((a, b) => row[b]! - row[a]! || a - b);
    return top.flatMap((id) => (this.wordOf[id] ? [this.wordOf[id]!] : []));
  }

  dispose(): void {
    this.allWords.dispose();
    this.model.dispose();
  }
}
