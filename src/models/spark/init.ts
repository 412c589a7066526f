/**
 * The initialisers SparK's official code uses for densify and the light
 * decoder (keyu-tian/SparK, pretrain/decoder.py `LightDecoder.initialize` and
 * pretrain/spark.py), each drawn from a seeded Rng:
 * - decoder Conv2d weights: timm's `trunc_normal_(std=.02)`, whose bounds a=−2, b=2
 *   are absolute, so at std 0.02 (100σ) it is in effect an untruncated N(0, 0.02²);
 * - decoder ConvTranspose2d weights: `ConvTranspose2d` is not a subclass of
 *   `Conv2d` in PyTorch, so it falls to the `kaiming_normal_(mode='fan_out',
 *   nonlinearity='relu')` branch: N(0, 2/fan_out), untruncated, where torch takes
 *   fan_out = weight.size(0)·k² (the input width, for a transposed conv's [in, out, k, k]);
 * - mask tokens: `trunc_normal_(std=.02, a=−.02, b=.02)`, truncated at ±1σ;
 * - densify projections are not touched by any initialiser, so they keep
 *   torch's Conv2d default: weight and bias U(±1/√fan_in), fan_in = in·k².
 */
import { constant } from '../../nn/init.js';
import type { Parameter } from '../../nn/parameter.js';
import type { Rng } from '../../rng.js';

function fill(shape: readonly number[], decay: boolean, draw: () => number): Parameter {
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; i++) v[i] = draw();
  const p = constant(shape, 0, 'float32', decay);
  p.native.write(v);
  return p;
}

/** N(0, std²) redrawn outside the absolute bounds [lo, hi], as timm's trunc_normal_(std, a=lo, b=hi). */
export function truncNormalAbs(shape: readonly number[], std: number, lo: number, hi: number, rng: Rng, decay: boolean): Parameter {
  return fill(shape, decay, () => {
    for (;;) {
      const x = rng.normal() * std;
      if (x >= lo && x <= hi) return x;
    }
  });
}

/** N(0, std²), untruncated (torch's kaiming_normal_). */
export function normal(shape: readonly number[], std: number, rng: Rng, decay: boolean): Parameter {
  return fill(shape, decay, () => rng.normal() * std);
}

/** U(−bound, bound) (torch's Conv2d default: kaiming_uniform_(a=√5) for the weight, the same bound for the bias). */
export function uniform(shape: readonly number[], bound: number, rng: Rng, decay: boolean): Parameter {
  return fill(shape, decay, () => (2 * rng.uniform() - 1) * bound);
}
