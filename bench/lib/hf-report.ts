/**
 * The verdicts of `npm run check:hf-transformers`: our numbers against what
 * the real `transformers` computes on the same export, and the keys its
 * from_pretrained reported. Kept apart from the driver so the rules are
 * tested without python (test/hf-transformers.test.ts).
 */

/**
 * |ours − theirs| ≤ 1e-4 everywhere, float32 on both sides. The logits of
 * these tiny models are O(1–10); two float32 implementations of the same
 * BERT (different matmul and softmax summation orders, erf GELU) agree to
 * ~1e-6 there, so 1e-4 leaves room for order effects and none for a
 * misplaced tensor, a wrong eps or a missing bias.
 */
export const HF_ATOL = 1e-4;

/**
 * The only keys from_pretrained may report missing, per class: the output
 * embeddings HF ties to tensors the export does carry, so they are never
 * written (HF's own save_pretrained leaves them out too).
 */
export const ALLOWED_MISSING: Readonly<Record<string, readonly string[]>> = {
  // _tied_weights_keys: the decoder is the word embeddings, its bias is cls.predictions.bias.
  BertForMaskedLM: ['cls.predictions.decoder.bias', 'cls.predictions.decoder.weight'],
  // _tied_weights_keys: the generator's output layer is the word embeddings (tie_word_embeddings).
  ElectraForMaskedLM: ['generator_lm_head.weight'],
  ElectraForPreTraining: [],
  BertForSequenceClassification: [],
};

export interface LoadInfo {
  missing: string[];
  unexpected: string[];
  mismatched: string[];
}

/** What is wrong with a from_pretrained's loading info for `arch` (empty: nothing): no unexpected or mismatched key, and no missing one but the tied ones. */
export function loadProblems(arch: string, info: LoadInfo): string[] {
  const allowed = ALLOWED_MISSING[arch];
  if (!allowed) return [`no rule for ${arch}: expected one of ${Object.keys(ALLOWED_MISSING).join(', ')}`];
  const out: string[] = [];
  const missing = info.missing.filter((k) => !allowed.includes(k));
  if (missing.length) out.push(`missing ${missing.join(', ')}`);
  if (info.unexpected.length) out.push(`unexpected ${info.unexpected.join(', ')}`);
  if (info.mismatched.length) out.push(`mismatched ${info.mismatched.join(', ')}`);
  return out;
}

export interface Comparison {
  count: number;
  maxAbsDiff: number;
  /** Values with |ours − theirs| > atol (a NaN on either side counts). */
  outside: number;
  /** The largest |theirs|, for scale. */
  maxAbsRef: number;
}

/** Element-wise comparison of two equally long float arrays; a length mismatch throws, naming both. */
export function compareValues(ours: ArrayLike<number>, theirs: ArrayLike<number>, atol = HF_ATOL): Comparison {
  if (ours.length !== theirs.length) throw new Error(`Expected as many values from transformers as ours (${ours.length}) but received ${theirs.length}`);
  let maxAbsDiff = 0;
  let outside = 0;
  let maxAbsRef = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i]! - theirs[i]!);
    if (!(d <= atol)) outside++;
    maxAbsDiff = Number.isNaN(d) ? Infinity : Math.max(maxAbsDiff, d);
    maxAbsRef = Math.max(maxAbsRef, Math.abs(theirs[i]!));
  }
  return { count: ours.length, maxAbsDiff, outside, maxAbsRef };
}

export interface CheckResult {
  name: string;
  /** The transformers class that loaded the export. */
  arch: string;
  pass: boolean;
  /** null when nothing was compared (a check that failed before it). */
  comparison: Comparison | null;
  /** Why it failed (load problems, config fields, numbers); empty on a pass. */
  problems: string[];
  /** Anything else worth reading (what was compared, the attention implementation). */
  notes: string[];
}

/** A check's verdict: it passes when every value is within `atol` and nothing else is wrong. */
export function verdict(name: string, arch: string, comparison: Comparison | null, problems: string[], notes: string[] = [], atol = HF_ATOL): CheckResult {
  const all = [...problems];
  if (comparison && comparison.outside > 0) all.push(`${comparison.outside} of ${comparison.count} values differ by more than ${atol}`);
  if (!comparison && all.length === 0) all.push('nothing was compared');
  return { name, arch, pass: all.length === 0, comparison, problems: all, notes };
}

/** One line per check: PASS/FAIL, the name, the class, the max abs diff over how many values, and why it failed. */
export function formatCheck(r: CheckResult, atol = HF_ATOL): string {
  const diff = r.comparison ? `max abs diff ${r.comparison.maxAbsDiff.toExponential(2)} over ${r.comparison.count} values (|ref| ≤ ${r.comparison.maxAbsRef.toPrecision(3)}, atol ${atol})` : 'not compared';
  return `${r.pass ? 'PASS' : 'FAIL'} ${r.name} [${r.arch}]: ${diff}${r.problems.length ? `; ${r.problems.join('; ')}` : ''}`;
}

export interface HfReport {
  transformers: string;
  torch: string;
  python: string;
  atol: number;
  checks: CheckResult[];
  /** What this run does not cover, said plainly. */
  notChecked: string[];
  pass: boolean;
}

export function buildReport(versions: { transformers: string; torch: string; python: string }, checks: CheckResult[], notChecked: string[], atol = HF_ATOL): HfReport {
  return { ...versions, atol, checks, notChecked, pass: checks.length > 0 && checks.every((c) => c.pass) };
}
