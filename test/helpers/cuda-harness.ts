/**
 * Shared pieces of the CUDA tests (npm run test:cuda). Every CUDA op is checked
 * against the CPU backend on the same inputs:
 * - float32 on cuda against float64 on the CPU, by the one tolerance rule
 *   (test/helpers/tolerance.ts) at float32's tolerances;
 * - bfloat16 on cuda by the issue's rule: its relative error against the
 *   float64 reference is at most 2× that of a naive bfloat16 implementation
 *   (inputs rounded to bf16, every op boundary rounded to bf16, as an unfused
 *   eager bf16 pipeline computes), which each test builds from CPU ops.
 *
 * Where no GPU (or no cuda addon) is present the suites are skipped, and the
 * reason is printed once so the skip is visible in the test output.
 */
import { afterEach, describe, it } from 'vitest';
import { native } from '../../src/native/loader.js';
import type { Device, DType, NativeTensor } from '../../src/native/types.js';

function probe(): { ok: boolean; reason: string } {
  try {
    const a = native().cudaAvailable();
    return a.available ? { ok: true, reason: '' } : { ok: false, reason: a.reason };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

export const cuda = probe();
let warned = false;

/**
 * Whether the [cuda] tests run on the pretend device of `npm run test:cuda-pretend` (the CPU kernels, with
 * bfloat16 emulated: test/helpers/pretend-cuda-setup.ts) rather than on a GPU.
 */
export const pretendCuda = process.env.CLOZE_PRETEND_CUDA === '1';

/**
 * it() for what only a real device does (deferred errors, the cuda addon's own refusals and wording, the
 * allocator, a choice between device kernels): skipped on the pretend device, an ordinary test otherwise.
 */
export const itOnDevice: typeof it = pretendCuda ? (it.skip as typeof it) : it;

/** describe() when a GPU is usable, else describe.skip with the reason printed once. */
export function describeCuda(name: string, body: () => void): void {
  if (!cuda.ok && !warned) {
    warned = true;
    console.warn(`[cuda tests skipped] no usable GPU: ${cuda.reason}`);
  }
  (cuda.ok ? describe : describe.skip)(`[cuda] ${name}`, () => {
    // A deferred device error (a bad index found by a kernel) is thrown at the next wait for the device; drain it
    // after each test, so that one a test left pending fails that test instead of the next one's first read.
    afterEach(() => {
      try {
        native().cudaSynchronize();
      } catch (e) {
        throw new Error(`a device error was left pending by this test: ${(e as Error).message}`);
      }
    });
    body();
  });
}

/** A tensor on `device` holding `values` (bfloat16 rounded to nearest even). */
export function put(values: ArrayLike<number>, shape: readonly number[], dtype: DType, device: Device): NativeTensor {
  const t = native().empty(dtype, shape, device);
  const arr =
    dtype === 'float64'
      ? Float64Array.from(values)
      : dtype === 'int32'
        ? Int32Array.from(values)
        : dtype === 'uint8'
          ? Uint8Array.from(values)
          : Float32Array.from(values);
  t.write(arr);
  return t;
}

/** The values of a tensor on any device, as float64. */
export function get(t: NativeTensor): Float64Array {
  return Float64Array.from(t.read());
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** x rounded to bfloat16 (nearest even), as the device rounds. */
export function bf16(x: number): number {
  if (!Number.isFinite(x)) return x;
  f32[0] = x;
  const u = u32[0]!;
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return f32[0]!;
}
export function roundBf16(a: ArrayLike<number>): Float64Array {
  return Float64Array.from(a, bf16);
}

/** ‖got − ref‖₂ / ‖ref‖₂ over the finite reference entries; NaN in got counts as infinite error. */
export function relErr(got: ArrayLike<number>, ref: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    if (!Number.isFinite(r)) continue;
    const d = got[i]! - r;
    if (Number.isNaN(d)) return Infinity;
    num += d * d;
    den += r * r;
  }
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}

/**
 * The bf16 rule: relErr(got) ≤ factor·relErr(naive) (+ a floor for exact
 * cases). Non-finite reference entries must match exactly.
 */
export function assertBf16(label: string, got: ArrayLike<number>, ref: ArrayLike<number>, naive: ArrayLike<number>, factor = 2): void {
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    if (!Number.isFinite(r) && !Object.is(r, got[i]!)) throw new Error(`${label}: [${i}] got ${got[i]}, expected ${r}`);
  }
  const eg = relErr(got, ref);
  const en = relErr(naive, ref);
  const bound = factor * en + 1e-6;
  if (!(eg <= bound)) {
    throw new Error(`${label}: bf16 relative error ${eg.toExponential(3)} exceeds ${factor}× the naive bf16 error ${en.toExponential(3)}`);
  }
}
