/** Dropout call counters: the state that makes dropout masks resume exactly. */
import { ClozeError } from '../errors.js';
import { Dropout } from '../nn/layers.js';
import type { Module } from '../nn/module.js';

export function dropoutCounters(model: Module): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, m] of model.namedModules()) if (m instanceof Dropout) out[name] = m.calls;
  return out;
}

export function restoreDropout(model: Module, counters: Record<string, number>): void {
  for (const [name, m] of model.namedModules()) {
    if (m instanceof Dropout) {
      const v = counters[name];
      if (v === undefined) throw new ClozeError('E_VALUE', `Expected a dropout counter for ${name} in the checkpoint but received none`);
      m.calls = v;
    }
  }
}
