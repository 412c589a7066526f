/**
 * The asa family (asaMask, symKl): forward values against plain float64
 * TypeScript, padding keys never kept and padding queries counting nothing,
 * bad input as errors naming the op's argument; and the CUDA kernels against
 * the CPU. The straight-through gradient against finite differences of the
 * sigmoid surrogate, symKl's gradient and the gradient reversal are checked
 * in test/asa.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { asaMask, fromTypedArray, gradReverse, symKl, tensor } from '../../src/index.js';
import { describeCuda, get, put } from '../helpers/cuda-harness.js';
import { check, cpu64, dev, DTYPES, native, quantize, values } from '../helpers/cuda-ops.js';
import { assertClose } from '../helpers/tolerance.js';
import { maskRef, symKlRef } from '../helpers/asa-ref.js';

const B = 2;
const L = 5;
// Row 0: 5 real tokens; row 1: 3 real tokens, then 2 padding.
const padding = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
const kp = () => fromTypedArray(Uint8Array.from(padding), [B, L]);

for (const dtype of ['float32', 'float64'] as const) {
  describe(`asaMask ${dtype}`, () => {
    const s = values(B * L * L, 1);
    it('keeps S > 0 on real keys, masks padding keys, counts kept pairs of real queries', () => {
      const r = asaMask(tensor(s, [B, L, L], dtype), kp());
      const ref = maskRef(quantize(s, 'float32'), padding, B, L);
      expect(Array.from(r.bias.toArray())).toEqual(ref.bias);
      expect(Array.from(r.kept.toArray())).toEqual(ref.kept);
      expect(r.kept.toArray()[8]).toBe(0);
    });
    it('without padding every key may be kept', () => {
      const r = asaMask(tensor(s, [B, L, L], dtype), null);
      const ref = maskRef(quantize(s, 'float32'), null, B, L);
      expect(Array.from(r.bias.toArray())).toEqual(ref.bias);
      expect(Array.from(r.kept.toArray())).toEqual(ref.kept);
    });
  });

  describe(`symKl ${dtype}`, () => {
    it('is KL(p‖q) + KL(q‖p), the batch mean; 0 for equal inputs', () => {
      const a = values(12, 2, 3);
      const b = values(12, 3, 3);
      const got = symKl(tensor(a, [4, 3], dtype), tensor(b, [4, 3], dtype)).item();
      const q = (v: number[]) => (dtype === 'float64' ? v : quantize(v, 'float32'));
      assertClose([got], [symKlRef(q(a), q(b), 3)], dtype === 'float64' ? { atol: 1e-12, rtol: 1e-10 } : { atol: 1e-6, rtol: 1e-5 }, 'symKl');
      expect(symKl(tensor(a, [4, 3], dtype), tensor(a, [4, 3], dtype)).item()).toBe(0);
    });
  });
}

describe('asa: bad input', () => {
  const s = tensor(new Array(B * L * L).fill(0), [B, L, L]);
  it('rejects non-square scores, a bad key padding and a bad mask value', () => {
    expect(() => asaMask(tensor(new Array(B * L * 4).fill(0), [B, L, 4]))).toThrow(/square scores/);
    expect(() => asaMask(s, fromTypedArray(new Uint8Array(B * 4), [B, 4]))).toThrow(/keyPadding/);
    expect(() => asaMask(s, tensor(new Array(B * L).fill(0), [B, L]))).toThrow(/keyPadding/);
    expect(() => asaMask(s, null, 0)).toThrow(/maskValue/);
    expect(() => native().asaMask(s.native, null, -1)).toThrow(/asaMask.*maskValue/);
    expect(() => native().asaMaskBackward(tensor([0], [1, 1, 1]).native, null, s.native, null, 1e4)).toThrow(/asaMaskBackward.*dbias/);
  });
  it('rejects logits of different shapes or dtypes', () => {
    expect(() => symKl(tensor([0, 0], [1, 2]), tensor([0, 0, 0], [1, 3]))).toThrow(/b/);
    expect(() => symKl(tensor([0, 0], [1, 2]), tensor([0, 0], [1, 2], 'float64'))).toThrow(/b/);
    expect(() => native().symKl(tensor([0, 0], [2]).native, tensor([0, 0], [2]).native)).toThrow(/symKl.*a/);
  });
  it('gradReverse refuses a negative or non-finite lambda and an integer tensor', () => {
    expect(() => gradReverse(tensor([0, 0], [2]), -1)).toThrow('Expected a number in [0, Infinity] for lambda but received -1');
    expect(() => gradReverse(tensor([0, 0], [2]), Number.NaN)).toThrow('Expected a number in [0, Infinity] for lambda but received NaN');
    expect(() => gradReverse(tensor([0, 0], [2], 'int32'))).toThrow('Expected a float32 or float64 tensor for input but received int32 tensor [2]');
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// A row longer than a block's 256 threads.

describeCuda('asa', () => {
  const Bc = 3;
  const Lc = 300;
  // Row 0 has no padding, row 1 ends in 17 padding tokens, row 2 in 34.
  const pad = Array.from({ length: Bc * Lc }, (_, i) => (i % Lc >= Lc - 17 * Math.floor(i / Lc) ? 1 : 0));
  const s = values(Bc * Lc * Lc, 5);
  const gb = values(Bc * Lc * Lc, 6, 1e-4);
  const gk = values(Bc * Lc, 7);
  const tol = { atol: 1e-5, rtol: 1e-4 };
  it('asaMask forward and backward match the CPU on the same (rounded) inputs', () => {
    const ckp = put(pad, [Bc, Lc], 'uint8', 'cpu');
    const dkp = put(pad, [Bc, Lc], 'uint8', 'cuda');
    for (const dtype of DTYPES) {
      // The float64 CPU reference reads the values the device holds.
      const [qs, qgb, qgk] = [quantize(s, dtype), quantize(gb, dtype), quantize(gk, dtype)];
      const cpuS = cpu64(qs, [Bc, Lc, Lc]);
      const ref = native().asaMask(cpuS, ckp, 1e4);
      const ds = dev(s, [Bc, Lc, Lc], dtype);
      const got = native().asaMask(ds, dkp, 1e4);
      if (dtype === 'float32') {
        expect(Array.from(get(got.bias))).toEqual(Array.from(get(ref.bias)));
        expect(Array.from(get(got.kept))).toEqual(Array.from(get(ref.kept)));
      } else {
        // bf16 holds −1e4 as −9984 and counts above 256 rounded: the mask itself must agree.
        expect(Array.from(get(got.bias), (v) => v === 0)).toEqual(Array.from(get(ref.bias), (v) => v === 0));
      }
      const refD = native().asaMaskBackward(cpu64(qgb, [Bc, Lc, Lc]), cpu64(qgk, [Bc, Lc]), cpuS, ckp, 1e4);
      const d = native().asaMaskBackward(dev(gb, [Bc, Lc, Lc], dtype), dev(gk, [Bc, Lc], dtype), ds, dkp, 1e4);
      check(`asaMaskBackward [${Bc}, ${Lc}, ${Lc}]`, dtype, d, refD, undefined, tol);
    }
  });
  it('symKl forward and backward match the CPU on the same (rounded) inputs', () => {
    const a = values(70 * 3, 8, 3);
    const b = values(70 * 3, 9, 3);
    for (const dtype of DTYPES) {
      const [qa, qb] = [cpu64(quantize(a, dtype), [70, 3]), cpu64(quantize(b, dtype), [70, 3])];
      const ref = native().symKl(qa, qb);
      const [rda, rdb] = native().symKlBackward(cpu64([1.5], []), qa, qb, true, true);
      const got = native().symKl(dev(a, [70, 3], dtype), dev(b, [70, 3], dtype));
      check('symKl [70, 3]', dtype, got, ref, undefined, tol);
      const [da, db] = native().symKlBackward(dev([1.5], [], dtype), dev(a, [70, 3], dtype), dev(b, [70, 3], dtype), true, true);
      check('symKlBackward da', dtype, da!, rda!, undefined, tol);
      check('symKlBackward db', dtype, db!, rdb!, undefined, tol);
    }
  });
});
