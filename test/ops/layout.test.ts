/** toChannelsLast / toChannelsFirst: against index arithmetic, inverse of each other, gradients; the CUDA kernels against the CPU. */
import { describe, expect, it } from 'vitest';
import { Rng, tensor } from '../../src/index.js';
import { toChannelsFirst, toChannelsLast } from '../../src/ops/layout.js';
import { describeCuda, get } from '../helpers/cuda-harness.js';
import { cpu64, dev, DTYPES, native, quantize, values } from '../helpers/cuda-ops.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';

describe('layout', () => {
  for (const [B, C, H, W] of [[2, 3, 5, 7], [1, 40, 33, 35], [3, 1, 1, 1]] as const) {
    it(`permutes [${B}, ${C}, ${H}, ${W}] exactly and back`, () => {
      const rng = new Rng(B * 100 + C);
      const v = Float32Array.from({ length: B * C * H * W }, () => rng.normal());
      const last = toChannelsLast(tensor(v, [B, C, H, W]));
      expect(last.shape).toEqual([B, H, W, C]);
      const got = last.toArray();
      for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
        expect(got[((b * H + y) * W + x) * C + c]).toBe(v[((b * C + c) * H + y) * W + x]);
      }
      expect(toChannelsFirst(last).toArray()).toEqual(v);
    });
  }
  it('has finite-difference gradients in float64', () => {
    const rng = new Rng(4);
    gradcheck(([x]) => toChannelsLast(x!), [randLeaf([2, 3, 4, 5], rng)]);
    gradcheck(([x]) => toChannelsFirst(x!), [randLeaf([2, 4, 5, 3], rng)]);
  });
  it('rejects a tensor that is not 4-D, naming it', () => {
    expect(() => toChannelsLast(tensor([1, 2, 3], [3]))).toThrow(/for input/);
    expect(() => toChannelsFirst(tensor(new Array(24).fill(0), [2, 3, 4]))).toThrow(
      'Expected a 4-D tensor for input but received float32 tensor [2, 3, 4]',
    );
    expect(() => toChannelsFirst(tensor([1, 2], [1, 1, 1, 2], 'int32'))).toThrow(/Expected a float32 or float64 tensor for input/);
    expect(() => native().toChannelsFirst(tensor(new Array(24).fill(0), [2, 3, 4]).native)).toThrow(
      'toChannelsFirst: Expected a 4-D tensor for input but received float32 tensor [2, 3, 4]',
    );
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// Permutations are exact.

describeCuda('elementwise', () => {

  it('toChannelsLast and toChannelsFirst permute exactly', () => {
    for (const dtype of DTYPES)
      for (const [B, C, H, W] of [[2, 3, 5, 7], [1, 33, 4, 9], [3, 64, 1, 1], [1, 1, 40, 37]] as const) {
        const x = quantize(values(B * C * H * W, B + C + H + W), dtype);
        const last = native().toChannelsLast(dev(x, [B, C, H, W], dtype));
        expect(last.shape).toEqual([B, H, W, C]);
        expect(Array.from(get(last))).toEqual(Array.from(get(native().toChannelsLast(cpu64(x, [B, C, H, W])))));
        expect(Array.from(get(native().toChannelsFirst(last)))).toEqual(x);
      }
  });
});
