/**
 * `cloze attack`: word-substitution attacks (PWWS, BERT-Attack style) on a
 * fine-tuned checkpoint, over the first N examples of its test split (or of a
 * labelled file) in a fixed seeded order, with TextAttack's metrics. The same
 * command gives the same result.
 *
 * The victim is the checkpoint's own classifier (mlp-ft or mvp) in eval mode;
 * every candidate of one word is scored in one forward pass (`batchSize`
 * queries at most, each MVP query being T templated sequences). For a
 * sentence pair only the second text is attacked; a single text is first cut
 * to the words the model reads (visibleText).
 */
import { existsSync, mkdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readLabelledFile, type LabelledExample } from '../../data/labelled.js';
import { WordNetSynonyms } from '../../data/wordnet-synonyms.js';
import { ClozeError } from '../../errors.js';
import { bertAttack } from '../../eval/attack/bert-attack.js';
import { maxChangedWords, type AttackOutcome } from '../../eval/attack/greedy.js';
import { attackMetrics, type AttackMetrics } from '../../eval/attack/metrics.js';
import { pwws } from '../../eval/attack/pwws.js';
import { ExampleQueries, type Victim } from '../../eval/attack/queries.js';
import { joinWords, splitWords } from '../../eval/attack/words.js';
import { writeFileAtomic } from '../../checkpoint/fsutil.js';
import { latestCheckpoint } from '../../checkpoint/checkpoint.js';
import { Rng } from '../../rng.js';
import { checkInt } from '../../validate.js';
import { MlmCandidates } from './attack-mlm.js';
import { labelIds } from './data.js';
import { WORDNET_DIR } from './datasets.js';
import { classProbabilities } from './evaluate.js';
import { runTestSplit, savedRun } from './evaluate-checkpoint.js';
import { FinetunedClassifier } from './predict.js';
import { encodeInputs } from './mvp-inputs.js';

export const ATTACKS = ['pwws', 'bert-attack'] as const;
export type AttackName = (typeof ATTACKS)[number];

export const ATTACK_DEFAULTS = { examples: 500, maxQueries: 2000, candidates: 48, batchSize: 64 } as const;

/** --max-perturb by task: short topic texts allow 30% as MVP's attacks do; everything else 10%. */
export function defaultMaxPerturb(task: string | null): number {
  return task === 'wordnet-topics' ? 0.3 : 0.1;
}

export interface AttackOptions {
  checkpoint: string;
  attack: AttackName;
  /** The first N examples of the attack order (default 500). */
  examples?: number;
  /** Seeds the attack order: a fixed shuffle of the test split, so that its first N cover the classes (built-in splits are grouped by class). Default 0. */
  seed?: number;
  /** The largest fraction of an example's words that may change (default: by task, see defaultMaxPerturb). */
  maxPerturb?: number;
  /** Queries per example (default 2,000). */
  maxQueries?: number;
  /** BERT-Attack's MLM: a pre-trained run or checkpoint directory (default: the checkpoint's --init-from). */
  mlm?: string;
  /** BERT-Attack's top-k (default 48). */
  candidates?: number;
  /** Queries per forward pass (default 64; 1 = one query a pass). */
  batchSize?: number;
  /** A labelled file to attack instead of the run's test split. */
  taskData?: string;
  wordnetDir?: string;
  /** Writes adversarial.jsonl and metrics.json here. */
  out?: string;
  signal?: AbortSignal;
  /** Hears of each example as it finishes. */
  onExample?: (done: number, total: number, o: AttackOutcome) => void;
}

/** Where an attack's time went, in seconds. */
export interface AttackTime {
  total: number;
  tokenize: number;
  forward: number;
  /** Synonym lookups (PWWS) or the MLM's passes (BERT-Attack). */
  candidates: number;
}

export interface AttackReport {
  attack: AttackName;
  checkpoint: string;
  method: string;
  metrics: AttackMetrics;
  maxPerturb: number;
  maxQueries: number;
  batchSize: number;
  queries: number;
  forwardPasses: number;
  queriesPerSecond: number;
  time: AttackTime;
  /** True when the signal stopped it before the last example. */
  aborted: boolean;
  outcomes: AttackOutcome[];
  labels: string[];
  files: string[];
}

export async function attack(o: AttackOptions): Promise<AttackReport> {
  if (!(ATTACKS as readonly string[]).includes(o.attack)) throw new ClozeError('E_VALUE', `Expected one of ${ATTACKS.join(', ')} for attack but received ${JSON.stringify(o.attack)}`);
  const n = o.examples ?? ATTACK_DEFAULTS.examples;
  checkInt(n, 'examples', 1);
  const maxQueries = o.maxQueries ?? ATTACK_DEFAULTS.maxQueries;
  checkInt(maxQueries, 'maxQueries', 1);
  const batchSize = o.batchSize ?? ATTACK_DEFAULTS.batchSize;
  checkInt(batchSize, 'batchSize', 1);
  const k = o.candidates ?? ATTACK_DEFAULTS.candidates;
  checkInt(k, 'candidates', 1);
  const c = await FinetunedClassifier.load(o.checkpoint);
  const time: AttackTime = { total: 0, tokenize: 0, forward: 0, candidates: 0 };
  let mlm: MlmCandidates | null = null;
  try {
    const { run } = savedRun(c.dir);
    const task = (run.task as string | null | undefined) ?? null;
    const maxPerturb = o.maxPerturb ?? defaultMaxPerturb(o.taskData !== undefined ? null : task);
    if (!(maxPerturb > 0 && maxPerturb <= 1)) throw new ClozeError('E_VALUE', `Expected a fraction in (0, 1] for maxPerturb but received ${maxPerturb}`);
    const all: LabelledExample[] = o.taskData !== undefined ? readLabelledFile(o.taskData, { minPerClass: 1 }).examples : runTestSplit(c.dir, run);
    const examples = attackOrder(all.length, o.seed ?? 0).slice(0, n).map((i) => all[i]!);
    const labels = labelIds(examples, c.labels, o.taskData ?? 'test');
    if (c.record.pair && examples.some((e) => typeof e.textPair !== 'string')) {
      throw new ClozeError('E_VALUE', `Expected sentence pairs (text_pair) in ${o.taskData ?? 'the test split'} for a pair model but received single texts`);
    }
    const unkText = '[UNK]';
    if ((await c.tokenizer.encode(unkText)).join() !== String(c.tokenizer.unkId)) {
      throw new ClozeError('E_VALUE', `Expected a tokenizer that reads "${unkText}" as its unknown token in ${c.dir} for PWWS's saliency but received one that splits it`);
    }
    let synonyms: WordNetSynonyms | null = null;
    if (o.attack === 'pwws') synonyms = WordNetSynonyms.open(o.wordnetDir ?? WORDNET_DIR);
    else {
      const from = o.mlm ?? (run.initFrom as string | null | undefined) ?? 'runs/bert-tiny';
      mlm = await MlmCandidates.open(mlmCheckpoint(from), k, c.record.max_length);
    }
    const outcomes: AttackOutcome[] = [];
    let queries = 0;
    let passes = 0;
    const t0 = performance.now();
    for (const [e, ex] of examples.entries()) {
      if (o.signal?.aborted) break;
      const context = c.record.pair ? ex.text : null;
      const w = splitWords(c.record.pair ? ex.textPair! : await visibleText(c, ex.text));
      const q = new ExampleQueries(victimOf(c, context, time), c.labels.length, maxQueries, batchSize);
      const maxChanged = maxChangedWords(w.words.length, maxPerturb);
      const label = labels[e]!;
      let outcome: AttackOutcome;
      if (synonyms) {
        const syn = synonyms;
        outcome = await pwws(w, q, {
          label, maxChanged, unkText,
          synonyms: (word) => timed(time, () => syn.synonyms(word)),
        });
      } else {
        const m = mlm!;
        outcome = await bertAttack(w, q, {
          label, maxChanged,
          candidates: async (indices) => {
            const s = performance.now();
            try {
              return await m.candidates(w, indices, context);
            } finally {
              time.candidates += (performance.now() - s) / 1000;
            }
          },
        });
      }
      queries += q.queries;
      passes += q.passes;
      outcomes.push(outcome);
      o.onExample?.(outcomes.length, examples.length, outcome);
    }
    time.total = (performance.now() - t0) / 1000;
    const files = o.out !== undefined ? [writeAdversarial(o.out, outcomes, c.labels)] : [];
    const report: AttackReport = {
      attack: o.attack, checkpoint: c.dir, method: c.record.method, metrics: attackMetrics(outcomes), maxPerturb, maxQueries, batchSize,
      queries, forwardPasses: passes, queriesPerSecond: time.total > 0 ? queries / time.total : 0, time,
      aborted: outcomes.length < examples.length, outcomes, labels: c.labels, files,
    };
    if (o.out !== undefined) files.push(writeText(join(o.out, 'metrics.json'), JSON.stringify(attackSummary(report), null, 2) + '\n'));
    return report;
  } finally {
    mlm?.dispose();
    c.dispose();
  }
}

/**
 * A single text cut to the words the model reads: what fits in max_length
 * with [CLS], [SEP] and the longest template. Words past the truncation point
 * cannot change a prediction, yet would count towards the share of words an
 * attack may change (a 500-word email would allow 50 changes in its first 60
 * words). Sentence pairs are attacked whole.
 */
async function visibleText(c: FinetunedClassifier, text: string): Promise<string> {
  const m = c.classifier.m;
  const template = m.method === 'mvp' ? Math.max(...m.prompts.templates.map((t) => t.ids.length)) : 0;
  const budget = c.record.max_length - 2 - template;
  const fits = async (k: number): Promise<boolean> => (await c.tokenizer.encode(joinWords(w, w.words.slice(0, k)))).length <= budget;
  const w = splitWords(text);
  if (await fits(w.words.length)) return text;
  let lo = 0;
  let hi = w.words.length;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (await fits(mid)) lo = mid;
    else hi = mid;
  }
  return joinWords({ words: w.words.slice(0, lo), seps: [...w.seps.slice(0, lo), ''] });
}

/** A seeded permutation of 0..n−1 (Fisher–Yates): the order examples are attacked in. */
export function attackOrder(n: number, seed: number): number[] {
  checkInt(seed, 'seed', 0);
  const order = Array.from({ length: n }, (_, i) => i);
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** The victim of one example: its class probabilities for attacked texts, one forward pass a call. */
function victimOf(c: FinetunedClassifier, context: string | null, time: AttackTime): Victim {
  return async (texts) => {
    let t = performance.now();
    const enc = await encodeInputs(c.tokenizer, texts.map((x) => (context === null ? { text: x } : { text: context, textPair: x })));
    time.tokenize += (performance.now() - t) / 1000;
    t = performance.now();
    const { probs } = classProbabilities(c.classifier, enc, texts.length);
    time.forward += (performance.now() - t) / 1000;
    return probs;
  };
}

function timed<T>(time: AttackTime, f: () => T): T {
  const s = performance.now();
  try {
    return f();
  } finally {
    time.candidates += (performance.now() - s) / 1000;
  }
}

/** A pre-trained checkpoint directory, or a run directory's latest checkpoint. */
function mlmCheckpoint(path: string): string {
  const dir = existsSync(join(path, 'model.safetensors')) ? path : latestCheckpoint(path);
  if (!dir) throw new ClozeError('E_IO', `Expected a pre-trained checkpoint or run directory for mlm (BERT-Attack's candidates) but received ${path}`);
  return dir;
}

function writeText(file: string, text: string): string {
  writeFileAtomic(file, (fd) => {
    writeSync(fd, text);
  });
  return file;
}

/** adversarial.jsonl: one line an example, labels by name. */
function writeAdversarial(dir: string, outcomes: readonly AttackOutcome[], labels: readonly string[]): string {
  mkdirSync(dir, { recursive: true });
  const lines = outcomes.map((x) => JSON.stringify({
    status: x.status, original: x.original, perturbed: x.perturbed, label: labels[x.label], before: labels[x.before], after: labels[x.after],
    queries: x.queries, words: x.words, changed: x.changed,
  }));
  return writeText(join(dir, 'adversarial.jsonl'), lines.join('\n') + (lines.length > 0 ? '\n' : ''));
}

/** Every metric and setting of a report, without the per-example outcomes: what --json prints and metrics.json holds. */
export function attackSummary(r: AttackReport): Record<string, unknown> {
  return {
    attack: r.attack, method: r.method, checkpoint: r.checkpoint, ...r.metrics, maxPerturb: r.maxPerturb, maxQueries: r.maxQueries,
    batchSize: r.batchSize, queries: r.queries, forwardPasses: r.forwardPasses, queriesPerSecond: r.queriesPerSecond, seconds: r.time, aborted: r.aborted,
  };
}

const pct = (x: number | null): string => (x === null ? '–' : `${(100 * x).toFixed(2)}%`);
const num = (x: number | null, d = 1): string => (x === null ? '–' : x.toFixed(d));

/** The table `cloze attack` prints. */
export function formatAttackReport(r: AttackReport): string {
  const m = r.metrics;
  const rows: Array<[string, string]> = [
    ['attack', `${r.attack} on ${r.method} (${r.checkpoint})`],
    ['examples', `${m.examples} (succeeded ${m.succeeded}, failed ${m.failed}, skipped ${m.skipped})${r.aborted ? ', stopped early' : ''}`],
    ['clean accuracy', pct(m.cleanAccuracy)],
    ['accuracy under attack', pct(m.accuracyUnderAttack)],
    ['attack success rate', pct(m.attackSuccessRate)],
    ['words perturbed (successes)', m.avgWordsPerturbedPercent === null ? '–' : `${m.avgWordsPerturbedPercent.toFixed(2)}%`],
    ['words per input', num(m.avgWords)],
    ['queries per example', num(m.avgQueries)],
    ['limits', `≤ ${(100 * r.maxPerturb).toFixed(0)}% of words, ≤ ${r.maxQueries} queries, ≤ ${r.batchSize} queries a pass`],
    ['throughput', `${r.queriesPerSecond.toFixed(1)} queries/s (${r.queries} queries in ${r.forwardPasses} passes, ${r.time.total.toFixed(1)} s)`],
    ['time', `forward ${r.time.forward.toFixed(1)} s, tokenization ${r.time.tokenize.toFixed(1)} s, candidates ${r.time.candidates.toFixed(1)} s, other ${Math.max(0, r.time.total - r.time.forward - r.time.tokenize - r.time.candidates).toFixed(1)} s`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n');
}
