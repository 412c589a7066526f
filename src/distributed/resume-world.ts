/**
 * Resuming a data-parallel run at another world size (issue 18, item 4). Every rank reads the global
 * micro-batch k (seeded by (seed, k)) and keeps its rows, and its dropout draws sit at its rows' offset in the
 * global tensor, so what a step computes depends on the global batch, not on how it is split: N ranks × b and
 * N' ranks × b' with N·b = N'·b' train the same run (up to the order of the float sums, README's bound). A
 * checkpoint records the global batch and world size with its data position; a resume that keeps the global
 * batch is let through, any other is refused naming both.
 */
import type { JsonValue } from '../checkpoint/checkpoint.js';
import { ClozeError } from '../errors.js';
import { savedDataPosition, savedRunSettings } from '../train/run-dir.js';

/**
 * Checks a resume at `worldSize` ranks × `batchSize` against the checkpoint in `resumeDir`; returns `run` (this
 * run's settings) as the settings check should compare them: at another world size with the same global batch,
 * with the saved batchSize and worldSize, since the split alone does not change the result.
 */
export function checkResumeWorld(resumeDir: string, run: Record<string, JsonValue>, worldSize: number, batchSize: number): Record<string, JsonValue> {
  const saved = savedRunSettings(resumeDir);
  const pos = savedDataPosition(resumeDir);
  // Checkpoints from before the data position carried them: the run's settings (worldSize only when parallel).
  const savedWorld = Number(pos?.worldSize ?? saved?.worldSize ?? 1);
  const savedBatch = Number(saved?.batchSize ?? NaN);
  const savedGlobal = Number(pos?.globalBatch ?? savedWorld * savedBatch);
  if (savedWorld === worldSize) return run;
  const global = worldSize * batchSize;
  if (savedGlobal !== global) {
    const hint = Number.isInteger(savedGlobal / worldSize)
      ? `pass batch size ${savedGlobal / worldSize} at ${worldSize} rank${worldSize === 1 ? '' : 's'}`
      : `no per-rank batch size at ${worldSize} ranks gives it`;
    throw new ClozeError('E_VALUE', `Expected a global micro-batch of ${savedGlobal} sequences (world size ${savedWorld} × batch size ${savedBatch}, the run in ${resumeDir}) for resume but received ${global} (world size ${worldSize} × batch size ${batchSize}); a resume at another world size keeps the global batch: ${hint}`);
  }
  const checked: Record<string, JsonValue> = { ...run, batchSize: saved?.batchSize ?? null };
  delete checked.worldSize;
  if (saved?.worldSize !== undefined) checked.worldSize = saved.worldSize;
  return checked;
}
