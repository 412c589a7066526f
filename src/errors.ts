/** Error codes shared with the native addon (see native/src/core/error.h). */
export type ErrorCode = 'E_SHAPE' | 'E_DTYPE' | 'E_INDEX' | 'E_VALUE' | 'E_OOM' | 'E_IO' | 'E_DEVICE' | 'E_CUDA' | 'E_INTERNAL' | 'E_STATE';

export class ClozeError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'ClozeError';
    this.code = code;
  }
}

/** Describes a received value for an error message. */
export function describe(v: unknown): string {
  if (v === undefined) return 'undefined';
  if (v === null) return 'null';
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  if (typeof v === 'object' && v !== null && 'shape' in v && 'dtype' in v) {
    const t = v as { shape: readonly number[]; dtype: string };
    return `${t.dtype} tensor [${t.shape.join(', ')}]`;
  }
  return typeof v;
}

/** The one wording for bad arguments: "Expected … for <name> but received …". */
export function expected(what: string, name: string, got: unknown, code: ErrorCode = 'E_VALUE'): ClozeError {
  return new ClozeError(code, `Expected ${what} for ${name} but received ${describe(got)}`);
}
