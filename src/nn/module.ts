/** Module base: named parameters and submodules, a state dict, train/eval. */
import { expected } from '../errors.js';
import type { Tensor } from '../tensor.js';
import type { Device, DType } from '../native/types.js';
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
      // A float32 checkpoint loads into a bfloat16 (mixed-precision) module, and back.
      const castable = (a: DType, b: DType): boolean => a === b || (a !== 'int32' && a !== 'uint8' && b !== 'int32' && b !== 'uint8' && (a === 'bfloat16' || b === 'bfloat16'));
      if (!castable(t.dtype, p.dtype) || t.shape.join() !== p.shape.join()) {
        throw expected(`a ${p.dtype} tensor of shape [${p.shape.join(', ')}]`, `state dict entry '${name}'`, t, 'E_SHAPE');
      }
      if (t.dtype === p.dtype) {
        p.native.copyFrom(t.native);
      } else {
        const c = t.native.cast(p.dtype);
        p.native.copyFrom(c);
        c.dispose();
      }
      mine.delete(name);
    }
    if (strict && mine.size > 0) {
      throw expected(`entries for every parameter`, 'state dict', `none for ${[...mine.keys()].join(', ')}`);
    }
  }

  /**
   * Moves every parameter and buffer to `device` in place, and casts the
   * floating ones to `dtype` when given ('bfloat16' for mixed precision; the
   * optimizer then keeps fp32 master weights). Integer buffers keep their
   * dtype. Build the optimizer after moving: it flattens the parameters where
   * they are.
   */
  to(device: Device, dtype?: DType): this {
    if (device !== 'cpu' && device !== 'cuda') throw expected("'cpu' or 'cuda'", 'device', device, 'E_DEVICE');
    const move = (t: Tensor): void => {
      const floating = t.dtype === 'float32' || t.dtype === 'float64' || t.dtype === 'bfloat16';
      const want = dtype && floating ? dtype : t.dtype;
      if (t.device === device && t.dtype === want) return;
      const onDev = t.device === device ? null : t.native.to(device);
      const h = want === t.dtype ? onDev! : (onDev ?? t.native).cast(want);
      if (onDev && h !== onDev) onDev.dispose();
      t.moveHandle(h);
      if (t.grad) {
        t.grad.dispose();
        t.grad = null;
      }
    };
    for (const [, p] of this.namedParameters()) move(p);
    for (const [, b] of this.namedBuffers()) move(b);
    for (const [, m] of this.namedModules()) m.moveFixed(move);
    return this;
  }

  /** The device of the first parameter ('cpu' for a module without parameters). */
  get device(): Device {
    const p = this.parameters()[0];
    return p ? p.device : 'cpu';
  }

  /** Moves fixed, non-parameter tensors the module owns (position tables) along with to(); see releaseBuffers. */
  protected moveFixed(move: (t: Tensor) => void): void {
    void move;
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
