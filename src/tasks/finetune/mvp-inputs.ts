/**
 * Tokenised inputs for fine-tuning: MVP's templated sequences (one per
 * example and template, with the row of its [MASK]), the verbalizer's label
 * word ids, and the plain [CLS] a [SEP] (b [SEP]) sequences of mlp-ft.
 *
 * Placement follows the official MVP code (acmi-lab/mvp,
 * src/utils/model_utils.py): a template whose first word is `[SEP]` goes after
 * the input, right before the closing [SEP], the `[SEP]` word itself being a
 * marker, not a token; any other template goes right after [CLS]. Sentence
 * pairs are [CLS] a [SEP] b [SEP] with token types 0 for [CLS] a [SEP] and 1
 * for b [SEP], as BERT's tokenizer makes them; a template after the input is
 * part of the second segment. Truncation cuts the input from the right
 * (the longer of a pair first, as HF's 'longest_first'), never the template.
 */
import { ClozeError } from '../../errors.js';
import type { EncoderBatch } from '../../models/bert/batch.js';
import type { TextTokenizer } from '../../data/tokenizer.js';
import { fromTypedArray, type Tensor } from '../../tensor.js';
import { checkInt } from '../../validate.js';

export const MASK_WORD = '[MASK]';
const SEP_MARKER = '[SEP]';

/** A text input: one text, or a sentence pair. */
export interface TextInput {
  text: string;
  textPair?: string;
}

/** A tokenised template: its ids (the [MASK] included), where its [MASK] is, and which side of the input it goes. */
export interface MvpTemplate {
  source: string;
  ids: Int32Array;
  maskOffset: number;
  after: boolean;
}

/** One sequence: ids and token types, and the position of its [MASK] (−1 without a template). */
export interface EncodedSequence {
  ids: Int32Array;
  types: Int32Array;
  maskPos: number;
}

/** The special ids a sequence needs. */
type Specials = Pick<TextTokenizer, 'clsId' | 'sepId' | 'padId' | 'maskId'>;

/**
 * Tokenises templates; each must hold `[MASK]` exactly once (a template
 * without one is an error naming it). The text around [MASK] is tokenised
 * without special tokens, so the template's own words never become [SEP].
 */
export async function tokenizeTemplates(tok: TextTokenizer, templates: readonly string[]): Promise<MvpTemplate[]> {
  if (templates.length === 0) throw new ClozeError('E_VALUE', 'Expected at least one template for templates but received none');
  const out: MvpTemplate[] = [];
  for (const [i, source] of templates.entries()) {
    if (typeof source !== 'string') throw new ClozeError('E_VALUE', `Expected a string for templates[${i}] but received ${JSON.stringify(source)}`);
    const words = source.trim().split(/\s+/);
    const after = words[0] === SEP_MARKER;
    const body = (after ? words.slice(1) : words).join(' ');
    const parts = body.split(MASK_WORD);
    if (parts.length !== 2) {
      const what = parts.length < 2 ? `no ${MASK_WORD}` : `${parts.length - 1} ${MASK_WORD}s`;
      throw new ClozeError('E_VALUE', `Expected one ${MASK_WORD} in templates[${i}] but received "${source}" with ${what}`);
    }
    const [left, right] = await tok.encodeBatch([parts[0]!, parts[1]!]);
    const ids = Int32Array.from([...left!, tok.maskId, ...right!]);
    out.push({ source, ids, maskOffset: left!.length, after });
  }
  return out;
}

/** The verbalizer as op inputs: label word ids [K] and each word's class [K]. */
export interface VerbalizerIds {
  words: Int32Array;
  classOf: Int32Array;
  /** The words kept, per class. */
  kept: string[][];
}

/**
 * Label word ids for `labels` (class c = labels[c]) from `verbalizer` ({label:
 * [word, …]}). A word that is not one token is dropped through `warn`; a label
 * without words left, a label the verbalizer lacks, or a verbalizer label that
 * is not a class, is an error.
 */
export async function verbalizerWordIds(
  tok: TextTokenizer, verbalizer: Readonly<Record<string, readonly string[]>>, labels: readonly string[], warn: (message: string) => void,
  where = 'verbalizer',
): Promise<VerbalizerIds> {
  for (const k of Object.keys(verbalizer)) {
    if (!labels.includes(k)) throw new ClozeError('E_VALUE', `Expected only the labels ${labels.join(', ')} in ${where} but received "${k}"`);
  }
  const words: number[] = [];
  const classOf: number[] = [];
  const kept: string[][] = [];
  for (const [c, label] of labels.entries()) {
    const list = verbalizer[label];
    if (!Array.isArray(list) || list.length === 0) throw new ClozeError('E_VALUE', `Expected a list of words for label "${label}" in ${where} but received ${JSON.stringify(list)}`);
    const enc = await tok.encodeBatch(list.map(String));
    const mine: string[] = [];
    enc.forEach((ids, i) => {
      if (ids.length === 1) {
        words.push(ids[0]!);
        classOf.push(c);
        mine.push(list[i]!);
      } else {
        warn(`verbalizer word "${list[i]}" of label "${label}" is ${ids.length} tokens, not one: dropped`);
      }
    });
    if (mine.length === 0) throw new ClozeError('E_VALUE', `Expected a single-token word for label "${label}" in ${where} but received none (${list.join(', ')})`);
    kept.push(mine);
  }
  return { words: Int32Array.from(words), classOf: Int32Array.from(classOf), kept };
}

/** Cuts a (and b) from the right to at most `budget` tokens together, the longer first. */
function truncate(a: Int32Array, b: Int32Array | null, budget: number): [Int32Array, Int32Array | null] {
  let na = a.length;
  let nb = b ? b.length : 0;
  while (na + nb > budget) {
    if (b && nb >= na) nb--;
    else na--;
  }
  return [a.subarray(0, na), b ? b.subarray(0, nb) : null];
}

/**
 * One sequence of at most maxLength tokens: [CLS] (tmpl) a (tmpl) [SEP], or
 * for a pair [CLS] (tmpl) a [SEP] b (tmpl) [SEP]; the template, when given,
 * is never cut.
 */
export function buildSequence(sp: Specials, a: Int32Array, b: Int32Array | null, template: MvpTemplate | null, maxLength: number): EncodedSequence {
  const t = template ? template.ids.length : 0;
  const specials = b ? 3 : 2;
  const budget = maxLength - specials - t;
  if (budget < (b ? 2 : 1)) {
    throw new ClozeError('E_VALUE', `Expected a maxLength that leaves room for the input for maxLength but received ${maxLength} (template "${template?.source ?? ''}" takes ${t} tokens, specials ${specials})`);
  }
  const [ta, tb] = truncate(a, b, budget);
  const ids: number[] = [sp.clsId];
  const types: number[] = [0];
  let maskPos = -1;
  const push = (xs: ArrayLike<number>, type: number): void => {
    for (let i = 0; i < xs.length; i++) {
      ids.push(xs[i]!);
      types.push(type);
    }
  };
  const pushTemplate = (type: number): void => {
    maskPos = ids.length + template!.maskOffset;
    push(template!.ids, type);
  };
  if (template && !template.after) pushTemplate(0);
  push(ta, 0);
  if (tb) {
    push([sp.sepId], 0);
    push(tb, 1);
  }
  if (template && template.after) pushTemplate(tb ? 1 : 0);
  push([sp.sepId], tb ? 1 : 0);
  return { ids: Int32Array.from(ids), types: Int32Array.from(types), maskPos };
}

/** Right-pads sequences into a batch; `maskRows` are the flat rows b·L + maskPos (templated sequences only). */
export function padSequences(seqs: readonly EncodedSequence[], padId: number, padTo = 1): { batch: EncoderBatch; maskRows: Tensor | null } {
  const B = seqs.length;
  // padTo: a data-parallel rank pads to the global batch's longest sequence, so its rows are those of one process.
  const L = Math.max(1, padTo, ...seqs.map((s) => s.ids.length));
  const ids = new Int32Array(B * L).fill(padId);
  const mask = new Int32Array(B * L);
  const types = new Int32Array(B * L);
  const rows = new Int32Array(B);
  seqs.forEach((s, b) => {
    ids.set(s.ids, b * L);
    types.set(s.types, b * L);
    mask.fill(1, b * L, b * L + s.ids.length);
    rows[b] = b * L + s.maskPos;
  });
  const templated = seqs.every((s) => s.maskPos >= 0);
  return {
    batch: { ids: fromTypedArray(ids, [B, L]), attentionMask: fromTypedArray(mask, [B, L]), tokenTypeIds: fromTypedArray(types, [B, L]) },
    maskRows: templated && B > 0 ? fromTypedArray(rows, [B]) : null,
  };
}

/**
 * Packs sequences back to back (the encoder's unpadded layout: ids [nnz],
 * cuSeqlens [B+1]); `maskRows` are the packed rows cu[b] + maskPos (templated
 * sequences only). Every linear and norm then runs on real tokens only: the
 * built-in WordNet tasks' batches are about 60% padding when padded.
 */
export function packSequences(seqs: readonly EncodedSequence[]): { batch: EncoderBatch; maskRows: Tensor | null } {
  const B = seqs.length;
  const cu = new Int32Array(B + 1);
  seqs.forEach((s, b) => (cu[b + 1] = cu[b]! + s.ids.length));
  const nnz = cu[B]!;
  const ids = new Int32Array(nnz);
  const types = new Int32Array(nnz);
  const rows = new Int32Array(B);
  let maxSeqlen = 0;
  seqs.forEach((s, b) => {
    ids.set(s.ids, cu[b]!);
    types.set(s.types, cu[b]!);
    rows[b] = cu[b]! + s.maskPos;
    maxSeqlen = Math.max(maxSeqlen, s.ids.length);
  });
  const templated = seqs.every((s) => s.maskPos >= 0);
  return {
    batch: { ids: fromTypedArray(ids, [nnz]), cuSeqlens: fromTypedArray(cu, [B + 1]), maxSeqlen, tokenTypeIds: fromTypedArray(types, [nnz]) },
    maskRows: templated && B > 0 ? fromTypedArray(rows, [B]) : null,
  };
}

/**
 * The batch of tokenised examples: with templates, sequence e·T + t for
 * example e and template t, and each sequence's [MASK] row; without, one
 * plain sequence an example. Right-padded [B, L] by default; `packed`, the
 * unpadded layout (same results up to float rounding, less work).
 */
export function batchOfExamples(
  sp: Specials, examples: ReadonlyArray<readonly [Int32Array, Int32Array | null]>, templates: readonly MvpTemplate[] | null, maxLength: number,
  packed = false,
  padTo = 1,
): { batch: EncoderBatch; maskRows: Tensor | null } {
  const seqs: EncodedSequence[] = [];
  for (const [a, b] of examples) {
    if (templates) for (const t of templates) seqs.push(buildSequence(sp, a, b, t, maxLength));
    else seqs.push(buildSequence(sp, a, b, null, maxLength));
  }
  return packed ? packSequences(seqs) : padSequences(seqs, sp.padId, padTo);
}

/** Token ids of each example (and its pair), without special tokens: tokenised once, turned into sequences per batch. */
export async function encodeInputs(tok: TextTokenizer, examples: readonly TextInput[]): Promise<Array<[Int32Array, Int32Array | null]>> {
  const pair = examples.some((e) => e.textPair !== undefined);
  if (pair && !examples.every((e) => typeof e.textPair === 'string')) {
    const i = examples.findIndex((e) => typeof e.textPair !== 'string');
    throw new ClozeError('E_VALUE', `Expected text_pair on every example of a pair batch for examples[${i}] but received none`);
  }
  const a = await tok.encodeBatch(examples.map((e) => e.text));
  const b = pair ? await tok.encodeBatch(examples.map((e) => e.textPair!)) : null;
  return a.map((x, i) => [x, b ? b[i]! : null]);
}

/**
 * MVP's batch: for example e and template t, sequence e·T + t (every template
 * for every example, as MVP trains and tests), and `maskRows` [N·T], each
 * sequence's [MASK] row in the flattened [N·T·L] hidden states.
 */
export async function mvpInputs(
  tok: TextTokenizer, examples: readonly TextInput[], templates: readonly MvpTemplate[], maxLength: number,
): Promise<{ batch: EncoderBatch; maskRows: Tensor }> {
  checkInt(maxLength, 'maxLength', 4);
  if (templates.length === 0) throw new ClozeError('E_VALUE', 'Expected at least one template for templates but received none');
  const { batch, maskRows } = batchOfExamples(tok, await encodeInputs(tok, examples), templates, maxLength);
  if (!maskRows) throw new ClozeError('E_VALUE', 'Expected at least one example for examples but received none');
  return { batch, maskRows };
}

/** mlp-ft's batch: [CLS] a [SEP] (b [SEP]) per example, truncated to maxLength. */
export async function plainInputs(tok: TextTokenizer, examples: readonly TextInput[], maxLength: number): Promise<EncoderBatch> {
  checkInt(maxLength, 'maxLength', 3);
  return batchOfExamples(tok, await encodeInputs(tok, examples), null, maxLength).batch;
}
