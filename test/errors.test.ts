/** Bad input gets a clear error naming the argument and what was expected; native code never aborts. */
import { describe, expect, it } from 'vitest';
import { crossEntropy, embedding, layerNorm, linear, matmul, Parameter, reshape, tensor, zeros, AdamW, dropout } from '../src/index.js';
import { native } from '../src/native/loader.js';

function nativeError(fn: () => unknown): { code: string; op: string; message: string } {
  try {
    fn();
  } catch (e) {
    return e as { code: string; op: string; message: string };
  }
  throw new Error('expected an error');
}

describe('TypeScript validation', () => {
  it('uses one wording: Expected … for <name> but received …', () => {
    expect(() => linear(zeros([2, 3]), zeros([4, 3], 'float64'))).toThrow(
      'Expected a float32 tensor for weight but received float64 tensor [4, 3]',
    );
    expect(() => layerNorm(zeros([2, 3]), zeros([4]), null)).toThrow('Expected shape [3] for weight but received float32 tensor [4]');
    expect(() => crossEntropy(zeros([2, 3]), zeros([2]))).toThrow('Expected an int32 tensor for targets but received float32 tensor [2]');
    expect(() => reshape(zeros([2, 3]), [4, -1])).toThrow('Expected a shape with 6 elements for shape but received [4, -1]');
    expect(() => dropout(zeros([2]), { p: 1.5, seed: 0, step: 0 })).toThrow('Expected a number in [0, 1] for p but received 1.5');
    expect(() => new AdamW([], { lr: -1 })).toThrow('Expected a number in [0, Infinity] for lr but received -1');
    expect(() => zeros([2, -1])).toThrow('Expected an array of non-negative integers for shape but received [2, -1]');
  });
});

describe('native errors carry code, op and the shapes', () => {
  it('a GEMM inner-dimension mismatch', () => {
    const e = nativeError(() => native().matmul(zeros([2, 3]).native, zeros([4, 5]).native, false, false));
    expect(e.code).toBe('E_SHAPE');
    expect(e.op).toBe('matmul');
    expect(e.message).toBe(
      'matmul: Expected b with inner dimension 3 (from a float32 tensor [2, 3]) for b but received float32 tensor [4, 5]',
    );
  });

  it('an index out of range names the position', () => {
    const ids = tensor([0, 7, 2], [3], 'int32');
    expect(() => embedding(zeros([5, 2]), ids)).toThrow(
      'embedding: Expected indices in [0, 5) for ids but received 7 at position 1',
    );
    const e = nativeError(() => crossEntropy(zeros([2, 3]), tensor([0, 3], [2], 'int32')));
    expect(e.code).toBe('E_INDEX');
    expect(e.message).toContain('Expected indices in [0, 3) or the ignore index -100 for targets but received 3 at position 1');
  });

  it('a wrong dtype, a disposed tensor and a non-tensor', () => {
    expect(nativeError(() => native().gelu(zeros([2], 'int32').native)).code).toBe('E_DTYPE');
    const t = zeros([2]);
    const h = t.native;
    t.dispose();
    expect(() => native().gelu(h)).toThrow('gelu: Expected a live tensor for input but received a disposed tensor');
    expect(() => native().gelu({} as never)).toThrow('gelu: Expected a native tensor for input but received an object');
  });

  it('a failed allocation is an E_OOM exception, not a crash', () => {
    const e = nativeError(() => native().empty('float32', [1 << 20, 1 << 20, 1 << 10]));
    expect(e.code).toBe('E_OOM');
    expect(e.message).toMatch(/too large|could not allocate/);
    const e2 = nativeError(() => native().empty('float64', [1 << 30, 1 << 9]));
    expect(e2.code).toBe('E_OOM');
    expect(e2.message).toContain('could not allocate 4398046511104 bytes');
  });

  it('a bad typed array or shape at the I/O boundary', () => {
    expect(() => native().fromTypedArray(new Float32Array(6), [4, 2])).toThrow(
      'fromTypedArray: Expected a shape of 6 elements for shape but received [4, 2]',
    );
    expect(() => zeros([3]).native.write(new Float64Array(3))).toThrow(
      'tensor.write: Expected a typed array matching float32 for values but received an object',
    );
    expect(() => native().empty('float16' as never, [2])).toThrow(
      "empty: Expected float32, float64, int32, uint8 or bfloat16 for dtype but received 'float16'",
    );
  });

  it('optimizer state mismatches', () => {
    const p = zeros([4]);
    expect(() => native().adamw(p.native, zeros([3]).native, zeros([4]).native, zeros([4]).native, { lr: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, step: 1 })).toThrow(
      'adamw: Expected 4 elements for grad but received float32 tensor [3]',
    );
    const q = Parameter.from(zeros([2]));
    expect(() => matmul(q, q)).toThrow('Expected a 2-D to 8-D tensor for a but received float32 tensor [2]');
  });
});
