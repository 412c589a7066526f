/** Learning-rate schedules: linear warmup, then linear or cosine decay to a floor. */
import { expected } from '../errors.js';

export interface ScheduleOptions {
  /** Peak learning rate. */
  lr: number;
  totalSteps: number;
  warmupSteps: number;
  decay: 'linear' | 'cosine' | 'constant';
  /** The final lr as a fraction of the peak (MosaicBERT decays to 0.02×). */
  minLrRatio: number;
}

/** The lr for optimizer step `step` (0-based): warmup reaches the peak at step warmupSteps. */
export function learningRate(step: number, o: ScheduleOptions): number {
  if (!Number.isInteger(step) || step < 0) throw expected('a non-negative integer', 'step', step);
  if (o.warmupSteps > 0 && step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
  if (o.decay === 'constant') return o.lr;
  const span = Math.max(1, o.totalSteps - o.warmupSteps);
  const t = Math.min(1, (step - o.warmupSteps) / span);
  const floor = o.lr * o.minLrRatio;
  const shape = o.decay === 'linear' ? 1 - t : 0.5 * (1 + Math.cos(Math.PI * t));
  return floor + (o.lr - floor) * shape;
}
