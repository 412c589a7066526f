/** An independent Philox4x32-10 for tests: BigInt arithmetic, nothing shared with the native code. */

/** Philox4x32-10 with BigInt products: key = seed, counter = (lo, hi) 64-bit halves. */
export function philoxRef(seed: bigint, hi: bigint, lo: bigint): number[] {
  const M = 0xffffffffn;
  let c0 = lo & M, c1 = (lo >> 32n) & M, c2 = hi & M, c3 = (hi >> 32n) & M;
  let k0 = seed & M, k1 = (seed >> 32n) & M;
  for (let r = 0; r < 10; r++) {
    const p0 = 0xd2511f53n * c0, p1 = 0xcd9e8d57n * c2;
    const n0 = (p1 >> 32n) ^ c1 ^ k0, n2 = (p0 >> 32n) ^ c3 ^ k1;
    c1 = p1 & M;
    c3 = p0 & M;
    c0 = n0;
    c2 = n2;
    k0 = (k0 + 0x9e3779b9n) & M;
    k1 = (k1 + 0xbb67ae85n) & M;
  }
  return [c0, c1, c2, c3].map(Number);
}
