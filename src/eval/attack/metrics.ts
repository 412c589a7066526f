/**
 * Attack metrics with TextAttack's definitions (textattack/metrics/
 * attack_metrics): an example the model already gets wrong is skipped;
 *   clean accuracy        = (N − skipped) / N
 *   accuracy under attack = failed / N           (MVP's "robust accuracy")
 *   attack success rate   = succeeded / (succeeded + failed)
 *   words perturbed (%)   = mean over successful attacks of changed / words
 *   queries               = mean over non-skipped examples.
 * A ratio with nothing to average over is null, not 0.
 */
import type { AttackOutcome } from './greedy.js';

export interface AttackMetrics {
  examples: number;
  skipped: number;
  succeeded: number;
  failed: number;
  cleanAccuracy: number | null;
  accuracyUnderAttack: number | null;
  attackSuccessRate: number | null;
  /** Percent, 0–100. */
  avgWordsPerturbedPercent: number | null;
  avgQueries: number | null;
  /** Mean words of the attacked texts. */
  avgWords: number | null;
}

export function attackMetrics(outcomes: ReadonlyArray<Pick<AttackOutcome, 'status' | 'queries' | 'words' | 'changed'>>): AttackMetrics {
  const N = outcomes.length;
  const count = (s: AttackOutcome['status']): number => outcomes.filter((o) => o.status === s).length;
  const skippedN = count('skipped');
  const succeeded = count('succeeded');
  const failed = count('failed');
  const mean = (xs: number[]): number | null => (xs.length === 0 ? null : xs.reduce((a, b) => a + b, 0) / xs.length);
  const wins = outcomes.filter((o) => o.status === 'succeeded');
  const attacked = outcomes.filter((o) => o.status !== 'skipped');
  return {
    examples: N, skipped: skippedN, succeeded, failed,
    cleanAccuracy: N === 0 ? null : (N - skippedN) / N,
    accuracyUnderAttack: N === 0 ? null : failed / N,
    attackSuccessRate: succeeded + failed === 0 ? null : succeeded / (succeeded + failed),
    avgWordsPerturbedPercent: mean(wins.map((o) => (100 * o.changed.length) / Math.max(1, o.words))),
    avgQueries: mean(attacked.map((o) => o.queries)),
    avgWords: mean(outcomes.map((o) => o.words)),
  };
}
