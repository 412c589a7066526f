/** emaUpdate and EmaTeacher: against a float64 reference, the exact ends decay 0 and 1, and bad input. */
import { describe, expect, it } from 'vitest';
import { Parameter, Rng, tensor, type DType, type Tensor } from '../src/index.js';
import { native } from '../src/native/loader.js';
import { EmaTeacher, emaUpdate } from '../src/optim/ema.js';
import { assertClose, tolFor } from './helpers/tolerance.js';

const rng = new Rng(77);

function rand(shape: number[], dtype: DType): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(Array.from({ length: n }, () => rng.uniform() * 4 - 2), shape, dtype);
}

const emaRef = (dst: ArrayLike<number>, src: ArrayLike<number>, decay: number): Float64Array =>
  Float64Array.from(dst, (d, i) => decay * d + (1 - decay) * src[i]!);

describe('emaUpdate', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    it(`matches decay·dst + (1 − decay)·src: ${dtype}, odd sizes, one size past the threading grain`, () => {
      const shapes = [[1], [3, 7], [5, 1, 9], [70001]];
      const dst = shapes.map((s) => rand(s, dtype));
      const src = shapes.map((s) => rand(s, dtype));
      const before = dst.map((t) => t.toArray());
      emaUpdate(dst, src, 0.9993);
      dst.forEach((t, i) => assertClose(t.toArray(), emaRef(before[i]!, src[i]!.toArray(), 0.9993), tolFor(dtype), `dst[${i}]`));
    });

  it('decay 1 leaves dst as it was and decay 0 copies src, exactly', () => {
    const dst = [rand([4, 5], 'float32'), rand([33], 'float64')];
    const src = [rand([4, 5], 'float32'), rand([33], 'float64')];
    const before = dst.map((t) => Array.from(t.toArray()));
    emaUpdate(dst, src, 1);
    dst.forEach((t, i) => expect(Array.from(t.toArray())).toEqual(before[i]));
    emaUpdate(dst, src, 0);
    dst.forEach((t, i) => expect(Array.from(t.toArray())).toEqual(Array.from(src[i]!.toArray())));
  });

  it('an empty list is a no-op', () => {
    expect(() => emaUpdate([], [], 0.5)).not.toThrow();
  });

  it('rejects bad input, naming the argument, before writing anything', () => {
    const dst = [rand([2, 3], 'float32'), rand([4], 'float32')];
    const before = dst.map((t) => Array.from(t.toArray()));
    const good = rand([2, 3], 'float32');
    expect(() => emaUpdate(dst, [good], 0.5)).toThrow(/Expected 2 tensors \(one per dst tensor\) for src but received 1/);
    expect(() => emaUpdate(dst, [good, rand([5], 'float32')], 0.5)).toThrow(/Expected shape \[4\] for src\[1\]/);
    expect(() => emaUpdate(dst, [good, rand([4], 'float64')], 0.5)).toThrow(/Expected a float32 tensor for src\[1\]/);
    expect(() => emaUpdate(dst, [good, null as unknown as Tensor], 0.5)).toThrow(/Expected a Tensor for src\[1\]/);
    expect(() => emaUpdate([tensor([1, 2], [2], 'int32')], [tensor([1, 2], [2], 'int32')], 0.5)).toThrow(/for dst\[0\]/);
    for (const decay of [-0.1, 1.5, Number.NaN]) expect(() => emaUpdate(dst, [good, rand([4], 'float32')], decay)).toThrow(/for decay/);
    expect(() => emaUpdate(dst, 'x' as unknown as Tensor[], 0.5)).toThrow(/Expected an array of tensors for src/);
    dst.forEach((t, i) => expect(Array.from(t.toArray())).toEqual(before[i]));
  });

  it('the native binding checks its arguments too', () => {
    const a = rand([2, 3], 'float64');
    expect(() => native().emaUpdate(a.native, rand([3, 2], 'float64').native, 0.5)).toThrow(
      /emaUpdate: Expected shape \[2, 3\] for src but received float64 tensor \[3, 2\]/,
    );
    expect(() => native().emaUpdate(a.native, rand([2, 3], 'float32').native, 0.5)).toThrow(/emaUpdate: Expected a float64 tensor for src/);
    expect(() => native().emaUpdate(a.native, a.native, 2)).toThrow(/emaUpdate: Expected a number in \[0, 1\] for decay but received 2/);
    expect(() => native().emaUpdate(tensor([1], [1], 'uint8').native, tensor([1], [1], 'uint8').native, 0.5)).toThrow(/for dst/);
  });
});

describe('EmaTeacher', () => {
  it('tracks the student tensor by tensor, in place on its own parameters', () => {
    const teacher = [Parameter.from(rand([3, 4], 'float64')), Parameter.from(rand([4], 'float64'))];
    const student = [rand([3, 4], 'float64'), rand([4], 'float64')];
    const ema = new EmaTeacher(teacher);
    let expected: Float64Array[] = teacher.map((t) => Float64Array.from(t.toArray()));
    for (const decay of [0.999, 0.9, 0.5]) {
      ema.update(student, decay);
      expected = expected.map((e, i) => emaRef(e, student[i]!.toArray(), decay));
    }
    teacher.forEach((t, i) => assertClose(t.toArray(), expected[i]!, tolFor('float64'), `teacher[${i}]`));
    expect(ema.params[0]).toBe(teacher[0]);
  });

  it('names its arguments in errors', () => {
    expect(() => new EmaTeacher([rand([2], 'float32'), tensor([1], [1], 'int32')])).toThrow(/for params\[1\]/);
    const ema = new EmaTeacher([rand([2], 'float32')]);
    expect(() => ema.update([rand([3], 'float32')], 0.99)).toThrow(/Expected shape \[2\] for studentParams\[0\]/);
    expect(() => ema.update([], 0.99)).toThrow(/for studentParams/);
    expect(() => ema.update([rand([2], 'float32')], 1.01)).toThrow(/for decay/);
  });
});
