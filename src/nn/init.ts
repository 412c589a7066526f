/** Parameter initialisers, drawn from a seeded Rng (runs once per parameter, not per step). */
import type { Rng } from '../rng.js';
import { tensor, zeros, type DType, type Tensor } from '../tensor.js';
import { Parameter } from './parameter.js';

/** N(0, std²) truncated at ±2·std, as BERT and timm initialise. */
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
