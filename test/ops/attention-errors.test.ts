/**
 * The fused attention op's refusals of bad input, checked in TypeScript and
 * natively: shapes, dtypes, options, and cuSeqlens offsets. Its results are
 * tested in attention.test.ts (CPU) and attention-cuda.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { attention, scope, tensor, type DType, type Tensor } from '../../src/index.js';
import { native } from '../../src/native/loader.js';

function thrown(fn: () => unknown): Error & { code?: string; op?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string; op?: string };
  }
  throw new Error('expected a throw');
}

describe('attention rejects bad input', () => {
  const f32 = (shape: number[], dtype: DType = 'float32'): Tensor => tensor(new Array(shape.reduce((a, b) => a * b, 1)).fill(0), shape, dtype);
  const q = (): Tensor => f32([2, 5, 2, 8]);

  const tsCases: Array<[string, () => unknown, string, string]> = [
    ['k of another shape', () => attention(q(), f32([2, 6, 2, 8]), q()), 'E_SHAPE',
      'Expected shape [2, 5, 2, 8] for k but received float32 tensor [2, 6, 2, 8]'],
    ['v of another dtype', () => attention(q(), q(), f32([2, 5, 2, 8], 'float64')), 'E_DTYPE',
      'Expected a float32 tensor for v but received float64 tensor [2, 5, 2, 8]'],
    ['an integer q', () => attention(f32([2, 5, 2, 8], 'int32'), q(), q()), 'E_DTYPE',
      'Expected a float32 or float64 tensor for q but received int32 tensor [2, 5, 2, 8]'],
    ['a 3-D q without cuSeqlens', () => attention(f32([5, 2, 8]), f32([5, 2, 8]), f32([5, 2, 8])), 'E_SHAPE',
      'Expected q of shape [B, L, H, Dh] for q but received float32 tensor [5, 2, 8]'],
    ['keyPadding of a float dtype', () => attention(q(), q(), q(), { keyPadding: f32([2, 5]) }), 'E_DTYPE',
      'Expected a uint8 tensor for keyPadding but received float32 tensor [2, 5]'],
    ['keyPadding of the wrong length', () => attention(q(), q(), q(), { keyPadding: f32([2, 4], 'uint8') }), 'E_SHAPE',
      'Expected shape [2, 5] for keyPadding but received uint8 tensor [2, 4]'],
    ['alibiSlopes not one per head', () => attention(q(), q(), q(), { alibiSlopes: f32([3]) }), 'E_SHAPE',
      'Expected shape [2] for alibiSlopes but received float32 tensor [3]'],
    ['bias of the wrong shape', () => attention(q(), q(), q(), { bias: f32([2, 5, 4]) }), 'E_SHAPE',
      'Expected shape [2, 5, 5] for bias but received float32 tensor [2, 5, 4]'],
    ['attnMask of a float dtype', () => attention(q(), q(), q(), { attnMask: f32([2, 5, 5]) }), 'E_DTYPE',
      'Expected a uint8 tensor for attnMask but received float32 tensor [2, 5, 5]'],
    ['excludeMaskedKeys without tokenMask', () => attention(q(), q(), q(), { excludeMaskedKeys: true }), 'E_VALUE',
      'Expected a tokenMask when excludeMaskedKeys is set for tokenMask but received undefined'],
    ['a padded tokenMask in varlen mode', () => {
      const p = f32([7, 2, 8]);
      return attention(p, p, p, { cuSeqlens: tensor([0, 3, 7], [3], 'int32'), maxSeqlen: 4, tokenMask: f32([2, 4], 'uint8') });
    }, 'E_SHAPE', 'Expected shape [7] for tokenMask but received uint8 tensor [2, 4]'],
    ['keyPadding with cuSeqlens', () => {
      const p = f32([7, 2, 8]);
      return attention(p, p, p, { cuSeqlens: tensor([0, 3, 7], [3], 'int32'), maxSeqlen: 4, keyPadding: f32([2, 4], 'uint8') });
    }, 'E_VALUE', 'Expected no keyPadding with cuSeqlens (lengths come from cuSeqlens) for keyPadding but received uint8 tensor [2, 4]'],
  ];
  for (const [name, fn, code, message] of tsCases) {
    it(`${name} (checked in TypeScript)`, () => {
      const e = scope(() => thrown(fn));
      expect(e.name).toBe('ClozeError');
      expect(e.code).toBe(code);
      expect(e.message).toBe(message);
    });
  }

  // cuSeqlens contents are checked by the binding, which prefixes the op name.
  const varlen = (cu: number[], maxSeqlen: number) => () => {
    const p = f32([7, 2, 8]);
    return attention(p, p, p, { cuSeqlens: tensor(cu, [cu.length], 'int32'), maxSeqlen });
  };
  const nativeCases: Array<[string, () => unknown, string, string]> = [
    ['cuSeqlens not ending at nnz', varlen([0, 3, 6], 4), 'E_VALUE',
      'attention: Expected cuSeqlens[B] equal to the 7 packed tokens of q for cuSeqlens but received 6'],
    ['cuSeqlens not starting at 0', varlen([1, 3, 7], 4), 'E_VALUE', 'attention: Expected cuSeqlens[0] = 0 for cuSeqlens but received 1'],
    ['a sequence longer than maxSeqlen', varlen([0, 3, 7], 3), 'E_VALUE',
      'attention: Expected non-decreasing offsets with lengths <= maxSeqlen 3 for cuSeqlens but received length 4 for sequence 1'],
    ['decreasing cuSeqlens', varlen([0, 5, 2, 7], 5), 'E_VALUE',
      'attention: Expected non-decreasing offsets with lengths <= maxSeqlen 5 for cuSeqlens but received length -3 for sequence 1'],
    // The binding repeats the TypeScript checks for callers of the addon itself.
    ['k of another shape, called natively', () => native().attention(q().native, f32([2, 6, 2, 8]).native, q().native, {}), 'E_SHAPE',
      'attention: Expected shape [2, 5, 2, 8] for k but received float32 tensor [2, 6, 2, 8]'],
    ['excludeMaskedKeys without tokenMask, called natively', () => native().attention(q().native, q().native, q().native, { excludeMaskedKeys: true }), 'E_VALUE',
      'attention: Expected a tokenMask when excludeMaskedKeys is set for tokenMask but received none'],
  ];
  for (const [name, fn, code, message] of nativeCases) {
    it(`${name} (checked natively)`, () => {
      const e = scope(() => thrown(fn));
      expect(e.code).toBe(code);
      expect(e.op).toBe('attention');
      expect(e.message).toBe(message);
    });
  }
});
