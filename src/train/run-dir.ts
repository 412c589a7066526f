/**
 * The run directory's guard rails, shared by `cloze pretrain` and `cloze
 * finetune`: a new run never writes into a directory that holds another run
 * (unless told to clear it with `overwrite`), a resumed run must have the
 * settings of the run it resumes (except those that cannot change the result),
 * its metrics log is cut back to the checkpoint's step, and a run that fails
 * or is stopped before its first checkpoint leaves nothing behind.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listCheckpoints, TRAINER_STATE_FILE, type JsonValue } from '../checkpoint/checkpoint.js';
import { ClozeError } from '../errors.js';

export const METRICS_FILE = 'metrics.jsonl';
const RUN_ENTRY = /^checkpoint-\d+(?:\.(?:tmp|old)-\d+-[0-9a-f]+)?$/;

/**
 * Settings a resumed run may change: where output goes and how often it is written or evaluated, which never touch
 * the trained weights (evaluation runs in eval mode and leaves the dropout counters alone; a test checks the losses
 * bit for bit). MIM's probeEvery is not among them: unchecked, so refused. `threads` is let through too (a run must be resumable on another machine) with a note:
 * the thread count can change the order of float summations (BLAS and the pool split reductions by thread), so
 * a resume with other threads is not bit-exact. MLM's evalMaskRatio only changes what evaluation measures (each
 * eval line records its ratio), and runs saved before it existed can be resumed.
 */
// distributed and distributedTimeout: the world size is checked on its own (the run's `worldSize`).
// distributedBackend: NCCL and MPI sum the same gradients in other orders (as other thread counts do).
export const RESUME_NEUTRAL = ['out', 'resume', 'overwrite', 'logEvery', 'evalEvery', 'saveEvery', 'keepLast', 'evalMaskRatio', 'distributed', 'distributedTimeout', 'distributedBackend', 'bucketMb'] as const;
export const RESUME_NUMERICS_ONLY = ['threads'] as const;

/** What in `dir` belongs to a run: checkpoints (finished or not) and the metrics log. */
export function runEntries(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => n === METRICS_FILE || RUN_ENTRY.test(n)).sort();
}

/** Deletes the run in `dir`: its checkpoints, its metrics log and the tokenizer it trained; caches stay. */
export function clearRun(dir: string): void {
  for (const n of [...runEntries(dir), 'tokenizer.json']) fs.rmSync(path.join(dir, n), { recursive: true, force: true });
}

/** resume and overwrite exclude each other. */
export function checkRunFlags(dir: string, o: { resume: boolean; overwrite: boolean }, flag = (f: string): string => `--${f}`): void {
  if (o.resume && o.overwrite) {
    throw new ClozeError('E_VALUE', `Expected one of resume or overwrite for ${dir} but received both (${flag('resume')} continues the run there, ${flag('overwrite')} deletes it)`);
  }
}

export interface RunDir {
  dir: string;
  /** Whether this call made the directory (a run that fails before its first checkpoint then removes it). */
  created: boolean;
}

/**
 * Opens `dir` for a run. Without `resume` a directory that holds a run is refused, or cleared first with
 * `overwrite`; with `resume` it is kept as it is (the caller finds the checkpoint).
 */
export function openRunDir(dir: string, o: { resume: boolean; overwrite: boolean }, flag = (f: string): string => `--${f}`): RunDir {
  checkRunFlags(dir, o, flag);
  const created = !fs.existsSync(dir);
  if (!o.resume) {
    const held = runEntries(dir);
    if (held.length > 0) {
      if (!o.overwrite) {
        const shown = held.length > 4 ? `${held.slice(0, 4).join(', ')}, …` : held.join(', ');
        throw new ClozeError('E_STATE', `${dir} already holds a run (${shown}): pass ${flag('resume')} to continue it, ${flag('overwrite')} to delete it and start again, or choose another ${flag('out')}`);
      }
      clearRun(dir);
    }
  }
  fs.mkdirSync(dir, { recursive: true });
  return { dir, created };
}

/**
 * After a run failed or stopped before it saved anything: removes what it wrote (the metrics log, and the
 * directory itself when the run made it), so that no half-made run is left to be refused or resumed.
 */
export function discardUnsavedRun(r: RunDir): void {
  if (listCheckpoints(r.dir).length > 0) return;
  try {
    if (r.created) fs.rmSync(r.dir, { recursive: true, force: true });
    else fs.rmSync(path.join(r.dir, METRICS_FILE), { force: true });
  } catch {
    // Best effort: the error that brought us here is the one to report.
  }
}

/** The run settings a checkpoint saved (trainer_state.json's extra.run), or null when it has none. */
export function savedRunSettings(checkpointDir: string): Record<string, JsonValue> | null {
  try {
    const state = JSON.parse(fs.readFileSync(path.join(checkpointDir, TRAINER_STATE_FILE), 'utf8')) as { extra?: { run?: unknown } };
    const run = state.extra?.run;
    return run !== null && typeof run === 'object' && !Array.isArray(run) ? (run as Record<string, JsonValue>) : null;
  } catch {
    return null;
  }
}

/** The data position a checkpoint saved (trainer_state.json's dataPosition), or null when it has none. */
export function savedDataPosition(checkpointDir: string): Record<string, JsonValue> | null {
  try {
    const state = JSON.parse(fs.readFileSync(path.join(checkpointDir, TRAINER_STATE_FILE), 'utf8')) as { dataPosition?: unknown };
    const d = state.dataPosition;
    return d !== null && typeof d === 'object' && !Array.isArray(d) ? (d as Record<string, JsonValue>) : null;
  } catch {
    return null;
  }
}

/**
 * Refuses a resume whose settings differ from the checkpoint's in anything that changes the run, naming each
 * field with its saved and new value; returns notes for the changes let through that change float rounding.
 */
export function checkResumeSettings(
  checkpointDir: string, now: Record<string, unknown>, flag = (f: string): string => f,
  fields: Record<string, { default: unknown; before?: unknown }> = {},
): string[] {
  const stored = savedRunSettings(checkpointDir);
  if (stored === null) return [`${checkpointDir} holds no run settings: resuming without checking them`];
  // A setting newer than the checkpoint had its default then, or the behaviour it replaced (`before`).
  const saved: Record<string, unknown> = {
    ...Object.fromEntries(Object.entries(fields).map(([k, f]) => [k, 'before' in f ? f.before : f.default])), ...stored,
  };
  const neutral = new Set<string>([...RESUME_NEUTRAL, ...RESUME_NUMERICS_ONLY]);
  const show = (v: unknown): string => (v === undefined ? '(unset)' : JSON.stringify(v));
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(now)])];
  const changed = keys.filter((k) => !neutral.has(k) && JSON.stringify(saved[k] ?? null) !== JSON.stringify(now[k] ?? null));
  if (changed.length > 0) {
    const was = changed.map((k) => `${flag(k)} ${show(saved[k])}`).join(', ');
    const is = changed.map((k) => `${changed.length > 1 ? `${flag(k)} ` : ''}${show(now[k])}`).join(', ');
    throw new ClozeError('E_VALUE', `Expected ${was} (the setting${changed.length > 1 ? 's' : ''} of the run in ${checkpointDir}) for resume but received ${is}; a resumed run keeps the settings that change its result (resume with the saved ones, or start a new run: another --out, or --overwrite)`);
  }
  const notes: string[] = [];
  for (const k of RESUME_NUMERICS_ONLY) {
    if (k in saved && k in now && JSON.stringify(saved[k]) !== JSON.stringify(now[k])) {
      notes.push(`${flag(k)} changed ${show(saved[k])} → ${show(now[k])}: allowed, but float sums may round differently, so the resumed run is not bit-exact`);
    }
  }
  return notes;
}

/**
 * Cuts the metrics log back to what the checkpoint at `step` had written: train and eval lines of later steps
 * (written after the last save of a run that crashed) go, so the resumed run does not log those steps twice.
 */
export function truncateMetrics(dir: string, step: number): number {
  const file = path.join(dir, METRICS_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return 0;
  }
  const lines = text.split('\n').filter((l) => l.length > 0);
  const kept = lines.filter((l) => {
    try {
      const r = JSON.parse(l) as { step?: unknown };
      return typeof r.step !== 'number' || r.step <= step;
    } catch {
      return false; // a line cut short by the crash
    }
  });
  if (kept.length === lines.length && text.endsWith('\n')) return 0;
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, kept.map((l) => `${l}\n`).join(''));
  fs.renameSync(tmp, file);
  return lines.length - kept.length;
}
