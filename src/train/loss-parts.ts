/**
 * A loss's parts for the logs (MIM's reconstruction and MTO terms, ELECTRA's generator and discriminator losses):
 * numbers, or 1-element tensors of the step's graph. The training loop reads tensor parts after the optimizer
 * step is queued, with the loss, so that on cuda logging a part does not make the host wait mid-step.
 */
import type { Tensor } from '../tensor.js';

export type LossParts = Record<string, number | Tensor>;

/** The parts as numbers (reads each tensor part: on cuda, a wait for the device). */
export function partValues(parts: LossParts): Record<string, number> {
  return Object.fromEntries(Object.entries(parts).map(([n, x]) => [n, typeof x === 'number' ? x : x.item()]));
}
