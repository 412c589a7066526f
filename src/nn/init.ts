/** Parameter initialisers, drawn from a seeded Rng (runs once per parameter, not per step). */
import type { Rng } from '../rng.js';
import { tensor, zeros, type DType, type Tensor } from '../tensor.js';
import { Parameter } from './parameter.js';

/**
 * N(0, std²) truncated at ±2·std: Google BERT's TF `truncated_normal_initializer` (Hugging Face draws an
 * untruncated normal instead). Not timm's `trunc_normal_`, whose bounds are absolute: truncNormalAbs.
 */
export function truncNormal(shape: readonly number[], std: number, rng: Rng, dtype: DType = 'float32', decay = true): Parameter {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let x = rng.normal();
    while (Math.abs(x) > 2) x = rng.normal();
    v[i] = x * std;
  }
  return Parameter.from(tensor(v, shape, dtype), { decay });
}

function fill(shape: readonly number[], decay: boolean, draw: () => number): Parameter {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = draw();
  const p = constant(shape, 0, 'float32', decay);
  p.native.write(v);
  return p;
}

/**
 * N(0, std²) redrawn outside the absolute bounds [lo, hi], as timm's trunc_normal_(std, a=lo, b=hi): at its
 * default a=−2, b=2 and std 0.02 the bounds are 100σ away, so it is in effect an untruncated normal.
 */
export function truncNormalAbs(shape: readonly number[], std: number, lo: number, hi: number, rng: Rng, decay: boolean): Parameter {
  return fill(shape, decay, () => {
    for (;;) {
      const x = rng.normal() * std;
      if (x >= lo && x <= hi) return x;
    }
  });
}

/** N(0, std²), untruncated (torch's normal_ and kaiming_normal_). */
export function normal(shape: readonly number[], std: number, rng: Rng, decay: boolean): Parameter {
  return fill(shape, decay, () => rng.normal() * std);
}

/** U(−bound, bound) (torch's Conv2d default: kaiming_uniform_(a=√5) for the weight, the same bound for the bias). */
export function uniform(shape: readonly number[], bound: number, rng: Rng, decay: boolean): Parameter {
  return fill(shape, decay, () => (2 * rng.uniform() - 1) * bound);
}

export function constant(shape: readonly number[], value: number, dtype: DType = 'float32', decay = false): Parameter {
  const t = zeros(shape, dtype);
  if (value !== 0) t.native.fill(value);
  return Parameter.from(t, { decay });
}

/** Overwrites a [out, in] weight with U(−a, a), a = √(6 / (in + out)): MAE's xavier_uniform_ for every Linear. */
export function xavierFill(weight: Tensor, rng: Rng): void {
  const [out, inp] = weight.shape as [number, number];
  const a = Math.sqrt(6 / (inp + out));
  const v = weight.dtype === 'float64' ? new Float64Array(out * inp) : new Float32Array(out * inp);
  for (let i = 0; i < v.length; i++) v[i] = (2 * rng.uniform() - 1) * a;
  weight.native.write(v);
}
