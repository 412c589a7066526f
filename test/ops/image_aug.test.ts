/**
 * imageBatch, the fused gather → crop → bilinear resize → flip → normalise
 * kernel: against a float64 bilinear reference, exact identity boxes and
 * flips, an empty batch, bad input at the TypeScript and the native boundary;
 * and the CUDA kernel against the CPU.
 */
import { describe, expect, it } from 'vitest';
import { fromTypedArray, tensor, type DType, type Tensor } from '../../src/index.js';
import type { ImageSet } from '../../src/data/images/index.js';
import { native } from '../../src/native/loader.js';
import { imageBatch } from '../../src/ops/image_aug.js';
import { assertBf16, describeCuda, get, put, roundBf16 } from '../helpers/cuda-harness.js';
import { close, cpu, dev, rnd, thrown } from '../helpers/cuda-mim.js';
import { imageBatchRef, randomSet } from '../helpers/image-batch.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

function runImageBatch(
  set: ImageSet, indices: number[], boxes: number[][], flip: number[], mean: number[], std: number[], OH: number, OW: number, dtype: DType,
): Tensor {
  const imgs = fromTypedArray(set.images, [set.n, set.channels, set.height, set.width]);
  return imageBatch(
    imgs, tensor(indices, [indices.length], 'int32'), tensor(boxes.flat(), [boxes.length, 4], dtype),
    tensor(flip, [flip.length], 'uint8'), tensor(mean, [mean.length], dtype), tensor(std, [std.length], dtype), OH, OW,
  );
}

describe('imageBatch', () => {
  // Fractional boxes, boxes reaching past every edge, a one-pixel box, repeated indices.
  const boxes = [[0.5, 1.25, 3.5, 4.75], [-1, -2, 7, 10], [2, 3, 1, 1], [0, 0, 5, 7], [1.7, 0.2, 2.9, 6.3], [3.5, 5.5, 4, 4]];
  const indices = [3, 0, 2, 3, 1, 0];
  const flip = [0, 1, 0, 1, 1, 0];
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const C of [1, 3])
      for (const [OH, OW] of [[3, 4], [11, 13], [1, 1]])
        it(`matches the bilinear reference: ${dtype}, C = ${C}, 5×7 → ${OH}×${OW}`, () => {
          const set = randomSet(4, C, 5, 7, 2, 100 + C);
          const mean = [0.3, 0.5, 0.45].slice(0, C);
          const std = [0.25, 0.2, 0.3].slice(0, C);
          const out = runImageBatch(set, indices, boxes, flip, mean, std, OH, OW, dtype);
          expect(out.shape).toEqual([6, C, OH, OW]);
          expect(out.dtype).toBe(dtype);
          // The reference sees the same float32-rounded parameters the kernel does.
          const r = dtype === 'float32' ? Math.fround : (v: number) => v;
          const ref = imageBatchRef(set, indices, boxes.map((b) => b.map(r)), flip, mean.map(r), std.map(r), OH, OW);
          assertClose(out.toArray(), ref, tolFor(dtype));
        });

  it('reproduces the normalised image exactly for an identity box', () => {
    const set = randomSet(2, 3, 5, 7, 2, 7);
    const mean = [0.31, 0.5, 0.42];
    const std = [0.27, 0.21, 0.33];
    const out = runImageBatch(set, [1, 0], [[0, 0, 5, 7], [0, 0, 5, 7]], [0, 0], mean, std, 5, 7, 'float32');
    const f = Math.fround;
    const want = [1, 0].flatMap((n) =>
      Array.from({ length: 3 * 35 }, (_, k) => {
        const c = Math.floor(k / 35);
        return f(f(f(set.images[n * 105 + k]! / 255) - f(mean[c]!)) / f(std[c]!));
      }),
    );
    expect([...out.toArray()]).toEqual(want);
  });

  it('flips the output rows exactly', () => {
    const set = randomSet(1, 3, 5, 7, 1, 11);
    const box = [0.3, 0.9, 4.1, 5.3];
    const plain = runImageBatch(set, [0], [box], [0], [0, 0, 0], [1, 1, 1], 4, 6, 'float32').toArray();
    const flipped = runImageBatch(set, [0], [box], [1], [0, 0, 0], [1, 1, 1], 4, 6, 'float32').toArray();
    for (let row = 0; row < 3 * 4; row++)
      expect([...flipped.subarray(row * 6, row * 6 + 6)]).toEqual([...plain.subarray(row * 6, row * 6 + 6)].reverse());
  });

  it('handles an empty batch', () => {
    const set = randomSet(2, 1, 3, 3, 1, 3);
    expect(runImageBatch(set, [], [], [], [0], [1], 2, 2, 'float32').shape).toEqual([0, 1, 2, 2]);
  });

  describe('rejects bad input, naming the argument', () => {
    const set = randomSet(3, 2, 5, 7, 1, 4);
    const ok = { indices: [0, 2], boxes: [[0, 0, 5, 7], [1, 1, 2, 2]], flip: [0, 1], mean: [0, 0], std: [1, 1] };
    const call = (patch: Partial<typeof ok>, OH = 3, OW = 4) => {
      const a = { ...ok, ...patch };
      return () => runImageBatch(set, a.indices, a.boxes, a.flip, a.mean, a.std, OH, OW, 'float32');
    };
    const cases: Array<[string, () => unknown, RegExp]> = [
      ['an index past N', call({ indices: [0, 3] }), /Expected image indices in \[0, 3\) for indices but received 3 at position 1/],
      ['a negative index', call({ indices: [-1, 0] }), /for indices but received -1 at position 0/],
      ['a zero-height box', call({ boxes: [[0, 0, 5, 7], [1, 1, 0, 2]] }), /for boxes but received \[1, 1, 0, 2\] at row 1/],
      ['a negative-width box', call({ boxes: [[0, 0, 5, -7], [1, 1, 2, 2]] }), /h > 0 and w > 0 for boxes .* at row 0/],
      ['a NaN box', call({ boxes: [[NaN, 0, 5, 7], [1, 1, 2, 2]] }), /finite boxes .* for boxes but received \[nan, 0, 5, 7\] at row 0/i],
      ['an infinite box', call({ boxes: [[0, 0, Infinity, 7], [1, 1, 2, 2]] }), /for boxes but received \[0, 0, inf, 7\]/i],
      ['a flip of 2', call({ flip: [0, 2] }), /Expected values 0 or 1 for flip but received 2 at position 1/],
      ['a zero std', call({ std: [1, 0] }), /Expected finite positive values for std but received 0 at channel 1/],
      ['a NaN mean', call({ mean: [NaN, 0] }), /Expected finite values for mean but received nan at channel 0/i],
      ['a zero outH', call({}, 0, 4), /for outH/],
      ['a huge outW', call({}, 3, 1e6), /for outW/],
      ['boxes of the wrong shape', call({ boxes: [[0, 0, 5, 7]] }), /Expected shape \[2, 4\] for boxes/],
      ['a mean per wrong channel count', call({ mean: [0, 0, 0] }), /Expected shape \[2\] for mean/],
    ];
    for (const [what, fn, message] of cases)
      it(what, () => {
        expect(fn).toThrow(message);
      });

    it('the wrong dtypes and ranks', () => {
      const idx = tensor([0], [1], 'int32');
      const bx = tensor([0, 0, 1, 1], [1, 4]);
      const fl = tensor([0], [1], 'uint8');
      const m = tensor([0, 0], [2]);
      const s = tensor([1, 1], [2]);
      const imgs = fromTypedArray(set.images, [3, 2, 5, 7]);
      expect(() => imageBatch(tensor([0], [1, 1, 1, 1]), idx, bx, fl, m, s, 2, 2)).toThrow(/Expected a uint8 tensor for images/);
      expect(() => imageBatch(fromTypedArray(set.images, [6, 5, 7]), idx, bx, fl, m, s, 2, 2)).toThrow(/Expected a 4-D tensor for images/);
      expect(() => imageBatch(imgs, tensor([0], [1]), bx, fl, m, s, 2, 2)).toThrow(/Expected an int32 tensor for indices/);
      expect(() => imageBatch(imgs, idx, bx, fl, tensor([0, 0], [2], 'float64'), s, 2, 2)).toThrow(/Expected a float32 tensor for mean/);
      expect(() => imageBatch(imgs, idx, bx, tensor([0], [1], 'int32'), m, s, 2, 2)).toThrow(/Expected a uint8 tensor for flip/);
    });

    it('in the native binding too, without the TypeScript checks', () => {
      const nat = native();
      const imgs = fromTypedArray(set.images, [3, 2, 5, 7]).native;
      const bx = tensor([0, 0, 1, 1], [1, 4]).native;
      const fl = tensor([0], [1], 'uint8').native;
      const m = tensor([0, 0], [2]).native;
      const s = tensor([1, 1], [2]).native;
      expect(() => nat.imageBatch(imgs, tensor([5], [1], 'int32').native, bx, fl, m, s, 2, 2)).toThrow(/imageBatch: .*for indices/);
      expect(() => nat.imageBatch(imgs, tensor([0, 1], [2], 'int32').native, bx, fl, m, s, 2, 2)).toThrow(/Expected shape \[2, 4\] for boxes/);
      expect(() => nat.imageBatch(imgs, tensor([0], [1], 'int32').native, bx, fl, m, s, 2.5, 2)).toThrow(/for outH/);
      expect(() => nat.imageBatch(tensor([], [1, 1, 1, 0], 'uint8').native, tensor([0], [1], 'int32').native, bx, fl, tensor([0], [1]).native, tensor([1], [1]).native, 2, 2))
        .toThrow(/C, H, W >= 1 for images/);
      expect(() => nat.imageBatch(imgs, tensor([0], [1], 'int32').native, bx, fl, m, s, 2, 2)).not.toThrow();
    });
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on cuda against float64 on the CPU by the tolerance rule, bfloat16 by
// the bf16 rule against a naive bf16 version (inputs rounded to bf16, the
// float64 CPU op, its output rounded to bf16), exact ops bit for bit, odd sizes,
// nothing and everything masked, the backwards, and the CPU's error messages.

describeCuda('imageBatch', () => {
  const N = 3, C = 3, H = 10, W = 13, B = 5;
  const images = Array.from({ length: N * C * H * W }, () => Math.floor(rnd() * 256));
  const indices = [2, 0, 1, 2, 0];
  // Identity, a zoom, a box reaching outside the image, the identity again (flipped), a
  // sub-pixel box; every value exact in bfloat16, so only the kernels' rounding is measured.
  const boxes = [0, 0, 10, 13, 2.5, 3.25, 4, 5.5, -3, -2, 14, 18, 0, 0, 10, 13, 4.125, 6.75, 0.3125, 0.875];
  const flip = [0, 1, 0, 1, 1];
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];

  it('gathers, crops, resizes, flips and normalises as the CPU, float32 and bfloat16', () => {
    for (const [OH, OW] of [[10, 13], [7, 5], [16, 16], [1, 1]]) {
      const ref = native().imageBatch(
        cpu(images, [N, C, H, W], 'uint8'), cpu(indices, [B], 'int32'), cpu(boxes, [B, 4]), cpu(flip, [B], 'uint8'),
        cpu(mean, [C]), cpu(std, [C]), OH, OW,
      );
      const run = (dt: DType) =>
        native().imageBatch(
          dev(images, [N, C, H, W], 'uint8'), dev(indices, [B], 'int32'), dev(boxes, [B, 4], dt), dev(flip, [B], 'uint8'),
          dev(mean, [C], dt), dev(std, [C], dt), OH, OW,
        );
      close(`imageBatch ${OH}x${OW}`, run('float32'), ref);
      // bf16: boxes, mean and std are rounded; the naive version also rounds its output.
      const nv = native().imageBatch(
        cpu(images, [N, C, H, W], 'uint8'), cpu(indices, [B], 'int32'), cpu(roundBf16(boxes), [B, 4]), cpu(flip, [B], 'uint8'),
        cpu(roundBf16(mean), [C]), cpu(roundBf16(std), [C]), OH, OW,
      );
      const hb = run('bfloat16');
      expect(hb.dtype).toBe('bfloat16');
      expect(hb.shape).toEqual([B, C, OH, OW]);
      assertBf16(`imageBatch bf16 ${OH}x${OW}`, get(hb), get(ref), roundBf16(get(nv)));
    }
  });

  it('checks indices, boxes, flip and statistics with the CPU messages', () => {
    const call = (d: 'cpu' | 'cuda', idx: number[], bx: number[], fl: number[], sd: number[]) => () =>
      native().imageBatch(
        put(images, [N, C, H, W], 'uint8', d), put(idx, [B], 'int32', d), put(bx, [B, 4], 'float32', d),
        put(fl, [B], 'uint8', d), put(mean, [C], 'float32', d), put(sd, [C], 'float32', d), 4, 4,
      );
    const badBox = boxes.slice();
    badBox[6] = 0;
    const cases: [number[], number[], number[], number[]][] = [
      [[0, 1, 3, 0, 0], boxes, flip, std],
      [indices, badBox, flip, std],
      [indices, boxes, [0, 0, 2, 0, 0], std],
      [indices, boxes, flip, [0.2, 0, 0.2]],
    ];
    for (const [i, b, f, s] of cases) {
      const m = thrown(call('cuda', i, b, f, s));
      expect(m).not.toBe('(no error)');
      expect(m).toBe(thrown(call('cpu', i, b, f, s)));
    }
  });
});
