/**
 * Grad mode and tensor scopes. Both take synchronous callbacks only, so their
 * state can never leak across interleaved async work; that is why this small
 * module state is safe in a library that has no other global state.
 */
import type { Tensor } from '../tensor.js';

let gradEnabled = true;
const scopeStack: Array<Set<Tensor>> = [];

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn with gradient recording off (evaluation, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    const r = fn();
    if (r instanceof Promise) throw new Error('noGrad takes a synchronous function');
    return r;
  } finally {
    gradEnabled = prev;
  }
}

/** Called by the Tensor constructor: the innermost open scope owns the tensor. */
export function trackTensor(t: Tensor): void {
  const top = scopeStack[scopeStack.length - 1];
  if (top) top.add(t);
}

/** Removes t from every open scope so it survives them. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopeStack) s.delete(t);
  return t;
}

function collect(value: unknown, out: Set<unknown>): void {
  if (value === null || typeof value !== 'object') return;
  if (out.has(value)) return;
  out.add(value);
  if (Array.isArray(value)) for (const v of value) collect(v, out);
  else if (value.constructor === Object) for (const v of Object.values(value)) collect(v, out);
}

/**
 * Runs fn and disposes every tensor created inside it, except those reachable
 * from its return value (a tensor, or arrays and plain objects of them) and
 * those passed to keep(). Kept and returned tensors move to the enclosing scope.
 */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Tensor>();
  scopeStack.push(mine);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('scope takes a synchronous function');
  } catch (e) {
    scopeStack.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  scopeStack.pop();
  const returned = new Set<unknown>();
  collect(result, returned);
  const parent = scopeStack[scopeStack.length - 1];
  for (const t of mine) {
    if (returned.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}
