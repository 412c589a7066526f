/** Epoch bookkeeping of a task that evaluates per epoch: steps from epochs, the epoch of a step, and when an evaluation (the image tasks' probe) is due. */
import type { ImageRunConfig } from './image-setup.js';

export interface EpochPlan {
  totalSteps: number;
  totalEpochs: number;
  /** Epochs completed after optimizer step `step` (fractional). */
  epochAt(step: number): number;
  /** A probe at the step that completes each multiple of probeEvery epochs, and at the end. */
  shouldProbe(step: number, last: boolean): boolean;
}

export function epochPlan(cfg: Pick<ImageRunConfig, 'epochs' | 'maxSteps' | 'gradAccum' | 'probeEvery'>, perEpoch: number): EpochPlan {
  const totalSteps = cfg.epochs > 0 ? Math.ceil((cfg.epochs * perEpoch) / cfg.gradAccum) : cfg.maxSteps;
  const epochAt = (step: number): number => (step * cfg.gradAccum) / perEpoch;
  return {
    totalSteps,
    totalEpochs: epochAt(totalSteps),
    epochAt,
    shouldProbe(step, last) {
      if (last) return true;
      if (cfg.probeEvery <= 0) return false;
      // Compares probe periods, so a step that jumps over an epoch boundary still probes.
      return Math.floor(epochAt(step) / cfg.probeEvery) > Math.floor(epochAt(step - 1) / cfg.probeEvery);
    },
  };
}
