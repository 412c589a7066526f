/** Module base: named parameters and submodules, a state dict, train/eval. */
import { expected } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { Parameter } from './parameter.js';
import { keep } from '../autograd/mode.js';

export abstract class Module {
  training = true;
  private readonly ownParams = new Map<string, Parameter>();
  private readonly children = new Map<string, Module>();
  private readonly ownBuffers = new Map<string, Tensor>();

  /** Non-trained state that checkpoints carry (BatchNorm's running statistics): in stateDict, not in parameters(). */
  protected registerBuffer<T extends Tensor>(name: string, t: T): T {
    if (this.ownParams.has(name) || this.children.has(name) || this.ownBuffers.has(name)) throw new Error(`duplicate member name '${name}'`);
    keep(t);
    this.ownBuffers.set(name, t);
    return t;
  }

  /** Buffers with dotted names, in registration order. */
  namedBuffers(prefix = ''): Array<[string, Tensor]> {
    const out: Array<[string, Tensor]> = [];
    for (const [n, b] of this.ownBuffers) out.push([prefix + n, b]);
    for (const [n, m] of this.children) out.push(...m.namedBuffers(`${prefix}${n}.`));
    return out;
  }

  protected registerParameter<P extends Parameter>(name: string, p: P): P {
    if (this.ownParams.has(name) || this.children.has(name)) throw new Error(`duplicate member name '${name}'`);
    this.ownParams.set(name, p);
    return p;
  }

  protected registerModule<M extends Module>(name: string, m: M): M {
    if (this.ownParams.has(name) || this.children.has(name)) throw new Error(`duplicate member name '${name}'`);
    this.children.set(name, m);
    return m;
  }

  /** Parameters with dotted names ("layer.0.weight"), in registration order. */
  namedParameters(prefix = ''): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = [];
    for (const [n, p] of this.ownParams) out.push([prefix + n, p]);
    for (const [n, m] of this.children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** This module and every submodule, with dotted names ('' for this one). */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix.replace(/\.$/, ''), this]];
    for (const [n, m] of this.children) out.push(...m.namedModules(`${prefix}${n}.`));
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((a, p) => a + p.size, 0);
  }

  /** The parameters and buffers by name (references, not copies). */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /** Copies values in by name; shapes and dtypes must match. */
  loadStateDict(sd: Record<string, Tensor>, opts: { strict?: boolean } = {}): void {
    const strict = opts.strict ?? true;
    const mine = new Map<string, Tensor>([...this.namedParameters(), ...this.namedBuffers()]);
    for (const [name, t] of Object.entries(sd)) {
      const p = mine.get(name);
      if (!p) {
        if (strict) throw expected('a parameter name of this module', 'state dict key', name);
        continue;
      }
      if (t.dtype !== p.dtype || t.shape.join() !== p.shape.join()) {
        throw expected(`a ${p.dtype} tensor of shape [${p.shape.join(', ')}]`, `state dict entry '${name}'`, t, 'E_SHAPE');
      }
      p.native.copyFrom(t.native);
      mine.delete(name);
    }
    if (strict && mine.size > 0) {
      throw expected(`entries for every parameter`, 'state dict', `none for ${[...mine.keys()].join(', ')}`);
    }
  }

  train(on = true): this {
    this.training = on;
    for (const m of this.children.values()) m.train(on);
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  zeroGrad(): void {
    for (const p of this.parameters()) p.grad?.native.fill(0);
  }

  /** Frees fixed, non-parameter tensors a module owns (position tables); dispose() calls it on every submodule. */
  protected releaseBuffers(): void {}

  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const [, b] of this.namedBuffers()) b.dispose();
    for (const [, m] of this.namedModules()) m.releaseBuffers();
  }
}
