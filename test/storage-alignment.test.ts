/**
 * Owned host storage starts on a 64-byte boundary (native/src/core/storage.h, kHostAlign): fresh blocks, zeroed
 * ones, and blocks the cache hands out again. Kernels do not need it for correctness; losing it made attention's
 * forward 2.5–5% slower (bench/RESULTS.md, "Register-resident accumulators"), so a test keeps it.
 */
import { describe, expect, it } from 'vitest';
import { zeros } from '../src/index.js';
import { native } from '../src/native/loader.js';

describe('host storage alignment', () => {
  it('is at least 64 bytes for small and large, fresh and cached, zeroed and unzeroed blocks', () => {
    // Below and above the block cache's 128 KiB, and a block glibc serves with mmap (32 MiB).
    const sizes = [1, 3, 100, 4097, 32 * 1024 + 1, 256 * 1024, 8 * 1024 * 1024];
    const one = native().fromTypedArray(Float32Array.of(2), [1, 1]);
    for (const n of sizes) {
      // Twice: the second allocation of a large size comes from the block cache.
      for (let round = 0; round < 2; round++) {
        for (const dtype of ['float32', 'uint8'] as const) {
          const z = zeros([n], dtype);  // a zero-filled block
          expect(native().storageAlignment(z.native), `zeros ${dtype} [${n}] round ${round}`).toBeGreaterThanOrEqual(64);
          z.dispose();
        }
        // An op's output, which the kernel writes in full: a block without the zero-fill.
        const x = native().fromTypedArray(new Float32Array(n).fill(1.5), [n, 1]);
        const y = native().matmul(x, one, false, false, 'builtin');
        expect(native().storageAlignment(y), `matmul output [${n}, 1] round ${round}`).toBeGreaterThanOrEqual(64);
        expect(native().storageAlignment(x), `fromTypedArray copy [${n}, 1] round ${round}`).toBeGreaterThanOrEqual(64);
        const v = y.read();
        expect(v[0]).toBe(3);
        expect(v[n - 1]).toBe(3);
        x.dispose();
        y.dispose();
      }
    }
    one.dispose();
  });
});
