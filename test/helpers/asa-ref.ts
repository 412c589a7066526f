/** Plain float64 TypeScript references of the asa ops (test/ops/asa.test.ts, test/asa.test.ts). */

/** bias and kept of scores S [B, L, L] by the definition. */
export function maskRef(s: ArrayLike<number>, pad: readonly number[] | null, B: number, L: number, value = 1e4): { bias: number[]; kept: number[] } {
  const bias: number[] = [];
  const kept: number[] = [];
  for (let b = 0; b < B; b++)
    for (let q = 0; q < L; q++) {
      let n = 0;
      for (let k = 0; k < L; k++) {
        const m = !(pad && pad[b * L + k]) && s[(b * L + q) * L + k]! > 0;
        bias.push(m ? 0 : -value);
        n += m ? 1 : 0;
      }
      kept.push(pad && pad[b * L + q] ? 0 : n);
    }
  return { bias, kept };
}

/** (1/N)·Σ (p − q)(log p − log q) over rows of a, b [N, C]. */
export function symKlRef(a: readonly number[], b: readonly number[], C: number): number {
  const N = a.length / C;
  let total = 0;
  for (let n = 0; n < N; n++) {
    const ls = (x: readonly number[]) => {
      const r = x.slice(n * C, (n + 1) * C);
      const m = Math.max(...r);
      const z = m + Math.log(r.reduce((acc, v) => acc + Math.exp(v - m), 0));
      return r.map((v) => v - z);
    };
    const la = ls(a);
    const lb = ls(b);
    for (let c = 0; c < C; c++) total += (Math.exp(la[c]!) - Math.exp(lb[c]!)) * (la[c]! - lb[c]!);
  }
  return total / N;
}
