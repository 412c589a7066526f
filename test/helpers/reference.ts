/** Plain float64 TypeScript references for the non-attention ops. */

export function erf(x: number): number {
  // Maclaurin series: converges for the |x| <= 4 used in tests, to ~1e-13.
  let sum = 0;
  let term = x;
  for (let n = 0; n < 200; n++) {
    const t = term / (2 * n + 1);
    sum += t;
    if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

export const gelu = (x: number): number => 0.5 * x * (1 + erf(x / Math.SQRT2));

/** C[M,N] = op(A)·op(B), row-major; A is [M,K] or [K,M] when ta. */
export function matmulRef(
  A: ArrayLike<number>, B: ArrayLike<number>, M: number, N: number, K: number, ta: boolean, tb: boolean,
): Float64Array {
  const C = new Float64Array(M * N);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += (ta ? A[k * M + i]! : A[i * K + k]!) * (tb ? B[j * K + k]! : B[k * N + j]!);
      C[i * N + j] = s;
    }
  return C;
}

export function layerNormRef(x: ArrayLike<number>, C: number, w: ArrayLike<number> | null, b: ArrayLike<number> | null, eps: number): Float64Array {
  const R = x.length / C;
  const y = new Float64Array(x.length);
  for (let r = 0; r < R; r++) {
    let mean = 0;
    for (let c = 0; c < C; c++) mean += x[r * C + c]!;
    mean /= C;
    let v = 0;
    for (let c = 0; c < C; c++) v += (x[r * C + c]! - mean) ** 2;
    v /= C;
    for (let c = 0; c < C; c++) y[r * C + c] = ((x[r * C + c]! - mean) / Math.sqrt(v + eps)) * (w ? w[c]! : 1) + (b ? b[c]! : 0);
  }
  return y;
}

export function softmaxRef(x: ArrayLike<number>, C: number): Float64Array {
  const y = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, x[r * C + c]!);
    if (m === -Infinity) continue;
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(x[r * C + c]! - m);
    for (let c = 0; c < C; c++) y[r * C + c] = Math.exp(x[r * C + c]! - m) / s;
  }
  return y;
}

/** Mean CE over selected non-ignored rows. */
export function crossEntropyRef(
  logits: ArrayLike<number>, V: number, targets: ArrayLike<number>, rows: ArrayLike<number> | null, ignore: number,
): number {
  let total = 0;
  let count = 0;
  for (let m = 0; m < targets.length; m++) {
    const t = targets[m]!;
    if (t === ignore) continue;
    const r = rows ? rows[m]! : m;
    let mx = -Infinity;
    for (let c = 0; c < V; c++) mx = Math.max(mx, logits[r * V + c]!);
    let s = 0;
    for (let c = 0; c < V; c++) s += Math.exp(logits[r * V + c]! - mx);
    total += mx + Math.log(s) - logits[r * V + t]!;
    count++;
  }
  return count ? total / count : 0;
}

export interface AdamState {
  p: Float64Array;
  m: Float64Array;
  v: Float64Array;
}

/** One decoupled-weight-decay Adam step (Loshchilov & Hutter; PyTorch's AdamW). */
export function adamwRef(
  s: AdamState, g: ArrayLike<number>, step: number,
  o: { lr: number; beta1: number; beta2: number; eps: number; wd: number },
): void {
  for (let i = 0; i < s.p.length; i++) {
    s.p[i]! -= o.lr * o.wd * s.p[i]!;
    s.m[i] = o.beta1 * s.m[i]! + (1 - o.beta1) * g[i]!;
    s.v[i] = o.beta2 * s.v[i]! + (1 - o.beta2) * g[i]! * g[i]!;
    const mh = s.m[i]! / (1 - o.beta1 ** step);
    const vh = s.v[i]! / (1 - o.beta2 ** step);
    s.p[i]! -= (o.lr * mh) / (Math.sqrt(vh) + o.eps);
  }
}

/** erfc in float64 for any x: 1 − erf by its series below |x| = 3, a continued fraction (Lentz) above, so tails keep their relative precision. */
export function erfcRef(x: number): number {
  const ax = Math.abs(x);
  let tail: number;
  if (ax < 3) {
    let term = ax;
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    tail = 1 - (2 / Math.sqrt(Math.PI)) * sum;
  } else {
    let f = ax;
    let C = ax;
    let D = 0;
    for (let n = 1; n < 300; n++) {
      const a = n / 2;
      D = 1 / (ax + a * D);
      C = ax + a / C;
      const delta = C * D;
      f *= delta;
      if (Math.abs(delta - 1) < 1e-16) break;
    }
    tail = Math.exp(-ax * ax) / (f * Math.sqrt(Math.PI));
  }
  return x >= 0 ? tail : 2 - tail;
}
