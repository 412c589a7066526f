/**
 * Finite-difference gradient check in float64. The outputs of f are reduced
 * to a scalar with fixed random weights, so every output element's gradient
 * is exercised; each input element is then perturbed by ±eps and the central
 * difference compared with what backward() produced.
 */
import { backward, mul, noGrad, Rng, scope, sum, add, tensor, type Tensor } from '../../src/index.js';
import { assertClose, type Tol } from './tolerance.js';

export interface GradcheckOptions {
  eps?: number;
  tol?: Tol;
  seed?: number;
  /** Inputs (by index) to check; default every input that requires grad. */
  only?: number[];
}

function weighted(outs: Tensor[], weights: Tensor[]): Tensor {
  let total: Tensor | null = null;
  outs.forEach((o, i) => {
    const s = sum(mul(o, weights[i]!));
    total = total ? add(total, s) : s;
  });
  return total!;
}

export function gradcheck(f: (xs: Tensor[]) => Tensor | Tensor[], inputs: Tensor[], opts: GradcheckOptions = {}): void {
  const eps = opts.eps ?? 1e-6;
  const tol = opts.tol ?? { atol: 1e-7, rtol: 1e-5 };
  const rng = new Rng(opts.seed ?? 1234);
  for (const x of inputs) if (x.dtype !== 'float64') throw new Error('gradcheck needs float64 inputs');
  scope(() => {
    const first = f(inputs);
    const outs0 = Array.isArray(first) ? first : [first];
    const weights = outs0.map((o) => tensor(Array.from({ length: o.size }, () => rng.uniform() * 2 - 1), o.shape, 'float64'));
    for (const x of inputs) {
      x.grad?.dispose();
      x.grad = null;
    }
    backward(weighted(outs0, weights));
    const which = opts.only ?? inputs.map((x, i) => (x.requiresGrad ? i : -1)).filter((i) => i >= 0);
    const lossAt = (): number =>
      noGrad(() =>
        scope(() => {
          const o = f(inputs);
          return weighted(Array.isArray(o) ? o : [o], weights).item();
        }),
      );
    for (const i of which) {
      const x = inputs[i]!;
      if (!x.grad) throw new Error(`input ${i} received no gradient`);
      const analytic = x.grad.toArray();
      const vals = x.toArray() as Float64Array;
      const numeric = new Float64Array(vals.length);
      for (let j = 0; j < vals.length; j++) {
        const v = vals[j]!;
        vals[j] = v + eps;
        x.native.write(vals);
        const lp = lossAt();
        vals[j] = v - eps;
        x.native.write(vals);
        const lm = lossAt();
        vals[j] = v;
        x.native.write(vals);
        numeric[j] = (lp - lm) / (2 * eps);
      }
      assertClose(analytic, numeric, tol, `gradient of input ${i}`);
    }
  });
}

/** A float64 leaf with values in [-1, 1) from a seeded Rng. */
export function randLeaf(shape: number[], rng: Rng, requiresGrad = true): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const t = tensor(Array.from({ length: n }, () => rng.uniform() * 2 - 1), shape, 'float64');
  t.requiresGrad = requiresGrad;
  return t;
}
