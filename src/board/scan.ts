/**
 * What `cloze board` lists under its root: runs (directories with metrics.jsonl) and suite outputs (directories
 * with summary.md, from `cloze bench mim|robust|text`). Directories are walked without following symbolic links,
 * checkpoint directories and dot-directories skipped, and a file that is a symbolic link is never read.
 */
import { lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative, sep } from 'node:path';
import { METRICS_FILE } from '../train/run-dir.js';
import { describeRun, STATUS_FILE, type RunStatus } from '../train/run-status.js';
import { readMetrics, type MetricRecord, type SkippedLine } from './metrics-reader.js';

export type BoardStatus = 'running' | 'done' | 'stopped' | 'failed' | 'unknown';

export interface RunEntry {
  /** The run directory relative to the root, with '/' separators ('.' for the root itself). */
  id: string;
  task: string | null;
  preset: string | null;
  method: string | null;
  status: BoardStatus;
  /** Why the status is what it is, where that is not plain (a process gone without saying, an error). */
  statusNote: string | null;
  step: number | null;
  totalSteps: number | null;
  lastLoss: number | null;
  /** The best evaluation figure: the highest accuracy, or else the lowest loss. */
  best: { metric: string; value: number; step: number } | null;
  examplesPerStep: number | null;
  updated: string | null;
  skipped: number;
}

export interface SuiteEntry {
  id: string;
  /** summary.md's first heading, or the directory name. */
  title: string;
  /** SVG charts in the directory, relative to the root. */
  charts: string[];
}

const MAX_DEPTH = 6;

function walk(dir: string, depth: number, found: string[]): void {
  if (depth > MAX_DEPTH) return;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  found.push(dir);
  for (const n of names.sort()) {
    if (n.startsWith('.') || n.startsWith('checkpoint-') || n === 'node_modules') continue;
    const p = join(dir, n);
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isDirectory()) walk(p, depth + 1, found);
  }
}

const idOf = (root: string, dir: string): string => relative(root, dir).split(sep).join('/') || '.';

/** A regular file itself, not a symbolic link (a link could point out of the board's directory). */
export function plainFile(path: string): boolean {
  try {
    return lstatSync(path).isFile();
  } catch {
    return false;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readStatus(dir: string): RunStatus | null {
  if (!plainFile(join(dir, STATUS_FILE))) return null;
  try {
    return JSON.parse(readFileSync(join(dir, STATUS_FILE), 'utf8')) as RunStatus;
  } catch {
    return null;
  }
}

/** A run without run-status.json (written before it existed): its settings from the latest checkpoint, if any. */
function settingsFromCheckpoint(dir: string): ReturnType<typeof describeRun> {
  const cks = readdirSync(dir).filter((n) => /^checkpoint-\d+$/.test(n)).sort((a, b) => Number(b.slice(11)) - Number(a.slice(11)));
  for (const c of cks) {
    if (!plainFile(join(dir, c, 'trainer_state.json'))) continue;
    try {
      const st = JSON.parse(readFileSync(join(dir, c, 'trainer_state.json'), 'utf8')) as { extra?: { run?: Record<string, unknown> } };
      const run = st.extra?.run;
      if (run) return describeRun(run, typeof run.worldSize === 'number' ? run.worldSize : 1);
    } catch {
      // an incomplete checkpoint: try the one before
    }
  }
  return {};
}

/** The best evaluation figure of a run's eval records. */
export function bestEval(records: readonly MetricRecord[]): RunEntry['best'] {
  const evals = records.filter((r) => r.kind === 'eval');
  for (const [metric, better] of [['accuracy', (a: number, b: number) => a > b], ['loss', (a: number, b: number) => a < b]] as const) {
    let best: RunEntry['best'] = null;
    for (const r of evals) {
      const v = r[metric];
      if (typeof v === 'number' && Number.isFinite(v) && (!best || better(v, best.value))) best = { metric, value: v, step: r.step };
    }
    if (best) return best;
  }
  return null;
}

export function describeRunDir(root: string, dir: string): RunEntry & { records: MetricRecord[]; skippedLines: SkippedLine[] } {
  const s = readStatus(dir);
  let status: BoardStatus = s?.status ?? 'unknown';
  let statusNote: string | null = s?.status === 'failed' ? (s.error ?? null) : null;
  if (s?.status === 'running' && s.host === hostname() && !alive(s.pid)) {
    status = 'failed';
    statusNote = `process ${s.pid} ended without saying why (killed?)`;
  }
  const m = readMetrics(join(dir, METRICS_FILE), 0, 0, status !== 'running');
  const train = m.records.filter((r) => r.kind === 'train');
  const last = train[train.length - 1];
  const about = s ?? settingsFromCheckpoint(dir);
  return {
    id: idOf(root, dir),
    task: about.task ?? null,
    preset: about.preset ?? null,
    method: about.method ?? null,
    status,
    statusNote,
    step: last?.step ?? s?.step ?? null,
    totalSteps: s?.totalSteps ?? null,
    lastLoss: typeof last?.loss === 'number' ? last.loss : null,
    best: bestEval(m.records),
    examplesPerStep: about.examplesPerStep ?? null,
    updated: s?.updated ?? (plainFile(join(dir, METRICS_FILE)) ? statSync(join(dir, METRICS_FILE)).mtime.toISOString() : null),
    skipped: m.skipped.length,
    records: m.records,
    skippedLines: m.skipped,
  };
}

export function scanBoard(root: string): { runs: RunEntry[]; suites: SuiteEntry[] } {
  const dirs: string[] = [];
  walk(root, 0, dirs);
  const runs: RunEntry[] = [];
  const suites: SuiteEntry[] = [];
  for (const d of dirs) {
    if (plainFile(join(d, METRICS_FILE))) {
      const { records: _r, skippedLines: _s, ...entry } = describeRunDir(root, d);
      runs.push(entry);
    }
    if (plainFile(join(d, 'summary.md'))) {
      const md = readFileSync(join(d, 'summary.md'), 'utf8');
      const title = /^#\s+(.+)$/m.exec(md)?.[1] ?? idOf(root, d);
      const charts = readdirSync(d).filter((n) => n.endsWith('.svg') && plainFile(join(d, n))).sort().map((n) => idOf(root, join(d, n)));
      suites.push({ id: idOf(root, d), title, charts });
    }
  }
  return { runs, suites };
}
