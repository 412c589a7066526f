/**
 * AdamW over flat buffers. On construction each group's parameters are moved
 * into one contiguous buffer (the Parameters are rebound to views of it) with
 * matching flat gradient and moment buffers, so a step is one fused native
 * pass per group and clipping is one reduction.
 *
 * Mixed precision: bfloat16 parameters (a module moved with `to('cuda',
 * 'bfloat16')`) get an fp32 master copy, and fp32 moments; the fused step
 * updates the master and writes the rounded bf16 parameter. Checkpoints carry
 * the master, so a resumed run continues from the same fp32 values.
 */
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import type { AdamwNativeOptions } from '../native/types-optim.js';
import { adamwStep, clipGradNorm as clipNativeGradNorm, gradNorm } from '../ops/optim.js';
import { Tensor } from '../tensor.js';
import { expected } from '../errors.js';
import { keep } from '../autograd/mode.js';
import { profileSpan } from '../profile/state.js';
import type { Parameter } from '../nn/parameter.js';
import { checkInt, checkNumber } from '../validate.js';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

export interface ParamGroup {
  params: Parameter[];
  /** Overrides the optimizer's weight decay for this group. */
  weightDecay?: number;
  /** Whether clipGradNorm's global norm includes and clips this group (default true); false: ASA's adversary, unclipped as in its official code. */
  clip?: boolean;
  /** This group steps with lr × lrScale (default 1): MAE's layer-wise lr decay (util/lr_decay.py's lr_scale). */
  lrScale?: number;
}

interface FlatGroup {
  params: Parameter[];
  weightDecay: number;
  clip: boolean;
  lrScale: number;
  param: NativeTensor;
  grad: NativeTensor;
  m: NativeTensor;
  v: NativeTensor;
  /** fp32 master weights for bfloat16 parameters; null otherwise. */
  master: NativeTensor | null;
}

export class AdamW {
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  /** Steps taken so far (bias correction uses step + 1). */
  stepCount = 0;
  private readonly groups: FlatGroup[];

  /**
   * A plain list is split by each Parameter's `decay` flag: decayed weights
   * get `weightDecay`, norms and biases get 0.
   */
  constructor(params: Parameter[] | ParamGroup[], opts: AdamWOptions) {
    checkNumber(opts.lr, 'lr', 0);
    this.lr = opts.lr;
    [this.beta1, this.beta2] = opts.betas ?? [0.9, 0.999];
    checkNumber(this.beta1, 'betas[0]', 0, 0.999999);
    checkNumber(this.beta2, 'betas[1]', 0, 0.999999);
    this.eps = opts.eps ?? 1e-8;
    checkNumber(this.eps, 'eps', Number.MIN_VALUE);
    const wd = opts.weightDecay ?? 0.01;
    checkNumber(wd, 'weightDecay', 0);
    const isGroups = params.length > 0 && !(params[0] instanceof Tensor);
    const groups: ParamGroup[] = isGroups
      ? (params as ParamGroup[])
      : [
          { params: (params as Parameter[]).filter((p) => p.decay), weightDecay: wd },
          { params: (params as Parameter[]).filter((p) => !p.decay), weightDecay: 0 },
        ];
    const seen = new Set<Parameter>();
    for (const g of groups)
      for (const p of g.params) {
        if (seen.has(p)) throw expected('each parameter in one group only', 'params', p);
        seen.add(p);
      }
    groups.forEach((g, i) => checkNumber(g.lrScale ?? 1, `params[${i}].lrScale`, 0));
    this.groups = groups.filter((g) => g.params.length > 0).map((g) => this.flatten(g.params, g.weightDecay ?? wd, g.clip ?? true, g.lrScale ?? 1));
  }

  private flatten(params: Parameter[], weightDecay: number, clip: boolean, lrScale: number): FlatGroup {
    const dtype = params[0]!.dtype;
    const device = params[0]!.device;
    for (const p of params) if (p.dtype !== dtype) throw expected(`${dtype} parameters in one group`, 'params', p, 'E_DTYPE');
    for (const p of params) if (p.device !== device) throw expected(`${device} parameters in one group`, 'params', p, 'E_DEVICE');
    const n = params.reduce((a, p) => a + p.size, 0);
    const addon = native();
    const param = addon.empty(dtype, [n], device);
    const grad = addon.empty(dtype, [n], device);
    let off = 0;
    for (const p of params) {
      const pv = param.view(off, p.shape);
      pv.copyFrom(p.native);
      p.rebind(pv);
      p.grad?.dispose();
      p.grad = keep(new Tensor(grad.view(off, p.shape)));
      off += p.size;
    }
    const mixed = dtype === 'bfloat16';
    const stateDtype = mixed ? 'float32' : dtype;
    const master = mixed ? param.cast('float32') : null;
    return { params, weightDecay, clip, lrScale, param, grad, m: addon.empty(stateDtype, [n], device), v: addon.empty(stateDtype, [n], device), master };
  }

  /** The flat gradient buffers, for clipping or inspection. */
  flatGrads(): NativeTensor[] {
    return this.groups.map((g) => g.grad);
  }

  /**
   * The flat gradient buffers cut into buckets of at most `maxBytes` (a parameter larger than that is a bucket of
   * its own), each a view of consecutive parameters, last parameters first: the backward finishes with the last
   * layers first, so the first buckets are ready first (PyTorch DDP's order). Together they cover every buffer once.
   */
  gradBuckets(maxBytes: number): Array<{ view: NativeTensor; params: Parameter[] }> {
    checkNumber(maxBytes, 'maxBytes', 1);
    const out: Array<{ view: NativeTensor; params: Parameter[] }> = [];
    for (const g of this.groups) {
      const bytesPer = g.grad.nbytes / Math.max(g.grad.shape[0]!, 1);
      let end = g.grad.shape[0]!;
      let params: Parameter[] = [];
      let size = 0;
      const close = (): void => {
        if (params.length === 0) return;
        out.push({ view: g.grad.view(end - size, [size]), params });
        end -= size;
        params = [];
        size = 0;
      };
      for (let i = g.params.length - 1; i >= 0; i--) {
        const p = g.params[i]!;
        if (size > 0 && (size + p.size) * bytesPer > maxBytes) close();
        params.push(p);
        size += p.size;
      }
      close();
    }
    return out;
  }

  zeroGrad(): void {
    for (const g of this.groups) profileSpan('zero grad (fill)', g.grad.nbytes, () => g.grad.fill(0));
  }

  /**
   * Clips the global L2 norm of the gradients to maxNorm; returns the norm
   * before clipping. Groups made with `clip: false` are left out of that norm
   * and never scaled; their own norm is returned instead when it is not
   * finite, so a NaN or infinite gradient there still shows.
   */
  clipGradNorm(maxNorm: number): number {
    checkNumber(maxNorm, 'maxNorm', Number.MIN_VALUE);
    const norm = clipNativeGradNorm(this.groups.filter((g) => g.clip).map((g) => g.grad), maxNorm);
    const free = this.groups.filter((g) => !g.clip).map((g) => g.grad);
    if (free.length === 0) return norm;
    const freeNorm = clipNativeGradNorm(free, Number.MAX_VALUE);
    return Number.isFinite(freeNorm) ? norm : freeNorm;
  }

  step(): void {
    this.stepCount++;
    for (const g of this.groups) adamwStep(g.param, g.grad, g.m, g.v, this.stepOptions(g));
  }

  /**
   * clipGradNorm(maxNorm) then step(), with nothing read on the host: the norms stay where the gradients are
   * (float32 tensors of one element) and the AdamW kernels read them there, so on cuda the host queues the
   * whole step without waiting. The step is skipped, every parameter and moment untouched, when a norm or
   * any of `guards` (e.g. the step's losses, at most 6) is not finite; the step count still advances (the host
   * cannot know yet), and a caller that finds the norm or a guard non-finite calls undoSkippedStep. The norm is
   * rounded to float32, so a norm beyond float32's range (3.4e38) counts as infinite and skips the step. Clipping follows clipGradNorm: the gradient is
   * scaled by maxNorm / (norm + 1e-6) when the norm exceeds maxNorm, computed in double from the float32
   * norm. Read the result with `readNorm`; the caller disposes the tensors.
   */
  stepClipped(maxNorm: number, guards: readonly NativeTensor[] = []): ClippedStep {
    checkNumber(maxNorm, 'maxNorm', Number.MIN_VALUE);
    if (guards.length > 6) throw expected('at most 6 guard tensors', 'guards', guards.length);
    const clipped = this.groups.filter((g) => g.clip).map((g) => g.grad);
    const free = this.groups.filter((g) => !g.clip).map((g) => g.grad);
    let norm: NativeTensor | null = null;
    let freeNorm: NativeTensor | null = null;
    try {
      norm = clipped.length > 0 ? gradNorm(clipped) : null;
      freeNorm = free.length > 0 ? gradNorm(free) : null;
      this.stepCount++;
      for (const g of this.groups) {
        // Every group is guarded by both norms (a clipped group reads its own as clipNorm), so that a non-finite
        // one skips the whole step.
        const norms = (g.clip ? [freeNorm] : [norm, freeNorm]).filter((t): t is NativeTensor => t !== null);
        adamwStep(g.param, g.grad, g.m, g.v, {
          ...this.stepOptions(g),
          ...(g.clip && norm ? { clipNorm: norm, maxNorm } : {}),
          guards: [...guards, ...norms],
        });
      }
    } catch (e) {
      norm?.dispose();
      freeNorm?.dispose();
      throw e;
    }
    return { norm, freeNorm };
  }

  /**
   * Takes back the step count of a step that stepClipped skipped on the device (a non-finite norm or guard): the
   * parameters and moments were left as they were, so the next step's bias correction must be the skipped one's.
   */
  undoSkippedStep(): void {
    if (this.stepCount > 0) this.stepCount--;
  }

  private stepOptions(g: FlatGroup): AdamwNativeOptions {
    return {
      lr: this.lr * g.lrScale,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay: g.weightDecay,
      step: this.stepCount,
      ...(g.master ? { master: g.master } : {}),
    };
  }

  /** Moment buffers and step count, for checkpoints. */
  state(): {
    step: number;
    groups: Array<{ m: NativeTensor; v: NativeTensor; master?: NativeTensor; weightDecay: number; size: number }>;
  } {
    return {
      step: this.stepCount,
      groups: this.groups.map((g) => ({
        m: g.m,
        v: g.v,
        ...(g.master ? { master: g.master } : {}),
        weightDecay: g.weightDecay,
        size: g.param.shape[0]!,
      })),
    };
  }

  /**
   * Restores what state() returned (from a checkpoint): the step count and each
   * group's moments, copied in. Groups must match in number, size and dtype.
   */
  loadState(state: {
    step: number;
    groups: ReadonlyArray<{ m: Tensor | NativeTensor; v: Tensor | NativeTensor; master?: Tensor | NativeTensor }>;
  }): void {
    checkInt(state.step, 'state.step');
    if (state.groups.length !== this.groups.length) {
      throw expected(`${this.groups.length} parameter groups`, 'state.groups', state.groups.length, 'E_SHAPE');
    }
    this.groups.forEach((g, i) => {
      for (const key of ['m', 'v'] as const) {
        const src = state.groups[i]![key];
        const t = src instanceof Tensor ? src.native : src;
        if (t.dtype !== g.m.dtype || t.shape.length !== 1 || t.shape[0] !== g.m.shape[0]) {
          throw expected(`a ${g.m.dtype} tensor of shape [${g.m.shape[0]}]`, `state.groups[${i}].${key}`, t, 'E_SHAPE');
        }
      }
    });
    this.groups.forEach((g, i) => {
      const s = state.groups[i]!;
      g.m.copyFrom(s.m instanceof Tensor ? s.m.native : s.m);
      g.v.copyFrom(s.v instanceof Tensor ? s.v.native : s.v);
      if (g.master) {
        // Without a saved master (a checkpoint from an fp32 run) the master is the loaded parameter itself.
        const src = s.master ? (s.master instanceof Tensor ? s.master.native : s.master) : null;
        if (src && (src.shape.length !== 1 || src.shape[0] !== g.master.shape[0])) {
          throw expected(`a tensor of shape [${g.master.shape[0]}]`, `state.groups[${i}].master`, src, 'E_SHAPE');
        }
        if (src && src.dtype === 'float32') g.master.copyFrom(src);
        else {
          const c = (src ?? g.param).cast('float32');
          g.master.copyFrom(c);
          c.dispose();
        }
        const rounded = g.master.cast('bfloat16');
        g.param.copyFrom(rounded);
        rounded.dispose();
      }
    });
    this.stepCount = state.step;
  }

  dispose(): void {
    for (const g of this.groups) {
      g.m.dispose();
      g.v.dispose();
      g.grad.dispose();
      g.param.dispose();
      g.master?.dispose();
    }
  }
}

/** The norms stepClipped leaves on the device: of the clipped groups, and of the groups made with `clip: false`. */
export interface ClippedStep {
  norm: NativeTensor | null;
  freeNorm: NativeTensor | null;
}

/**
 * What clipGradNorm would have returned, read from a ClippedStep (this is the host read, once per step), and
 * the tensors disposed: the clipped groups' norm, or the free groups' when that one is not finite.
 */
export function readNorm(r: ClippedStep): number {
  const value = (t: NativeTensor | null): number => (t ? (t.read()[0] as number) : 0);
  try {
    // On cuda this read is where a deferred device error (a bad token id) is thrown.
    const n = value(r.norm);
    const f = value(r.freeNorm);
    return r.freeNorm && !Number.isFinite(f) ? f : n;
  } finally {
    r.norm?.dispose();
    r.freeNorm?.dispose();
  }
}
