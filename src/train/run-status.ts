/**
 * run-status.json in a run directory: whether the run is running, done, stopped or failed, with what `cloze board`
 * lists (task, preset, method, the examples a step sees). Written by rank 0 when the loop starts, ends or throws,
 * atomically (a temporary file renamed over it), so a reader never sees half of one. A run killed outright leaves
 * "running" behind: its pid and host let a reader on the same machine tell that it is gone.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { renameSync, writeFileSync } from 'node:fs';

export const STATUS_FILE = 'run-status.json';

export type RunState = 'running' | 'done' | 'stopped' | 'failed';

export interface RunStatus {
  status: RunState;
  pid: number;
  host: string;
  started: string;
  updated: string;
  totalSteps: number;
  /** The step reached when the run ended (absent while it runs: metrics.jsonl has the latest). */
  step?: number;
  /** Examples (sequences or images) one optimizer step sees over all ranks, to plot against examples seen. */
  examplesPerStep?: number;
  task?: string;
  preset?: string;
  method?: string;
  /** failed: the error's message. */
  error?: string;
}

export function writeRunStatus(dir: string, s: RunStatus): void {
  const path = join(dir, STATUS_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(s, null, 2)}\n`);
  renameSync(tmp, path);
}

/** The fields of a run's settings the board shows (task, preset, method or objective), and its examples per step. */
export function describeRun(run: unknown, worldSize: number): Pick<RunStatus, 'task' | 'preset' | 'method' | 'examplesPerStep'> {
  const r = (run && typeof run === 'object' ? run : {}) as Record<string, unknown>;
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  const task = str(r.task) ?? (str(r.method) && r.labelField !== undefined ? 'finetune' : undefined);
  const method = task === 'mim' ? `${str(r.method) ?? ''}${r.mto ? '+mto' : ''}` : task === 'mlm' ? [str(r.objective), r.decoder !== 'none' ? str(r.decoder) : undefined].filter(Boolean).join('+') : str(r.method);
  const batch = typeof r.batchSize === 'number' ? r.batchSize * (typeof r.gradAccum === 'number' ? r.gradAccum : 1) * worldSize : undefined;
  return { task, preset: str(r.preset), method: method || undefined, examplesPerStep: batch };
}

export function nowStatus(base: Omit<RunStatus, 'updated' | 'pid' | 'host'>): RunStatus {
  return { ...base, pid: process.pid, host: hostname(), updated: new Date().toISOString() };
}
