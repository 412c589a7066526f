/** softmax: forward (fully −∞ rows included) against a float64 reference, finite-difference gradients, and the CUDA kernels against the CPU. */
import { describe, expect, it } from 'vitest';
import { softmax, tensor, zeros } from '../../src/index.js';
import { describeCuda, get } from '../helpers/cuda-harness.js';
import { bf, bfSum, check, cpu64, dev, DTYPES, native, quantize, values } from '../helpers/cuda-ops.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { leaf, rand } from '../helpers/op-inputs.js';
import { softmaxRef } from '../helpers/reference.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

for (const dtype of ['float32', 'float64'] as const) {
  const tol = tolFor(dtype);
  describe(`forward ${dtype}`, () => {
    it('softmax, including a fully −∞ row that must give zeros', () => {
      const x = rand([4, 33], dtype, -8, 8);
      const raw = x.toArray();
      for (let c = 0; c < 33; c++) raw[33 + c] = -Infinity;
      raw[70] = -Infinity;
      const t = tensor(raw, [4, 33], dtype);
      const y = softmax(t).toArray();
      assertClose(y, softmaxRef(Array.from(raw), 33), tol, 'softmax');
      expect(Array.from(y.slice(33, 66)).every((v) => v === 0)).toBe(true);
    });
  });
}

describe('gradcheck: normalisation, softmax, loss, embedding', () => {
  it('softmax', () => gradcheck(([x]) => softmax(x!), [leaf(3, 6)]));
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on the device against float64 on the CPU by the tolerance rule;
// bfloat16 by the naive-bf16 rule, the naive pipeline written out below with a
// rounding at every op boundary (fp32 inside each op).

function naiveSoftmax(x: number[], R: number, C: number): number[] {
  const y: number[] = [];
  for (let r = 0; r < R; r++) {
    const row = x.slice(r * C, (r + 1) * C);
    const m = Math.max(...row);
    if (m === -Infinity) {
      y.push(...row.map(() => 0));
      continue;
    }
    const e = row.map((v) => (v === -Infinity ? 0 : bf(Math.exp(bf(v - m)))));
    const s = bfSum(e);
    y.push(...e.map((t) => bf(t / s)));
  }
  return y;
}

function naiveSoftmaxBackward(dy: number[], y: number[], R: number, C: number): number[] {
  const dx: number[] = [];
  for (let r = 0; r < R; r++) {
    const dot = bfSum(Array.from({ length: C }, (_, c) => bf(y[r * C + c]! * dy[r * C + c]!)));
    for (let c = 0; c < C; c++) dx.push(bf(y[r * C + c]! * bf(dy[r * C + c]! - dot)));
  }
  return dx;
}

describe('softmax: bad input', () => {
  it('refuses a scalar and an integer tensor, in TypeScript and in the native entries', () => {
    expect(() => softmax(zeros([]))).toThrow('Expected a 1-D to 8-D tensor for input but received float32 tensor []');
    expect(() => softmax(zeros([2, 2], 'int32'))).toThrow('Expected a float32 or float64 tensor for input but received int32 tensor [2, 2]');
    expect(() => native().softmax(zeros([]).native)).toThrow('softmax: Expected a 1 to 8-D tensor for input but received float32 tensor []');
    expect(() => native().softmaxBackward(zeros([2, 3]).native, zeros([3, 2]).native)).toThrow(
      'softmaxBackward: Expected shape [3, 2] for grad but received float32 tensor [2, 3]',
    );
  });
});

describeCuda('nn', () => {

  it('softmax and softmaxBackward match the CPU, −∞ entries and fully masked rows included', () => {
    for (const dtype of DTYPES)
      for (const [R, C] of [[3, 1], [7, 33], [5, 1025]] as const) {
        const x = quantize(values(R * C, R + C, 6), dtype);
        if (C > 1) x[1] = -Infinity;  // one masked entry in row 0
        for (let c = 0; c < C; c++) x[(R - 1) * C + c] = -Infinity;  // the last row fully masked
        const y = native().softmax(dev(x, [R, C], dtype));
        const ry = native().softmax(cpu64(x, [R, C]));
        check(`softmax [${R}, ${C}]`, dtype, y, ry, naiveSoftmax(x, R, C));
        expect(Array.from(get(y)).slice((R - 1) * C)).toEqual(new Array(C).fill(0));
        const yq = quantize(Array.from(get(ry)), dtype);
        const dy = quantize(values(R * C, 2 * R + C), dtype);
        check(`softmaxBackward [${R}, ${C}]`, dtype, native().softmaxBackward(dev(dy, [R, C], dtype), dev(yq, [R, C], dtype)),
          native().softmaxBackward(cpu64(dy, [R, C]), cpu64(yq, [R, C])), naiveSoftmaxBackward(dy, yq, R, C));
      }
  });
});
