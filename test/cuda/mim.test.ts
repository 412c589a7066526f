// The masked-image-modeling family on CUDA (bind_mim_tokens, bind_mim_loss,
// bind_image_aug): float32 on cuda against float64 on the CPU by the tolerance
// rule, bfloat16 by the bf16 rule against a naive bf16 version (inputs rounded
// to bf16, the float64 CPU op, its output rounded to bf16), exact ops (sorts,
// gathers, permutations, Philox noise) bit for bit, odd sizes, nothing and
// everything masked, the backwards, and the CPU's error messages.
import { expect, it } from 'vitest';
import { native } from '../../src/native/loader.js';
import type { DType, NativeTensor } from '../../src/native/types.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';
import { assertBf16, bf16, describeCuda, get, put, roundBf16 } from './harness.js';

type N = NativeTensor;
const F32 = tolFor('float32');

/** mulberry32: a small deterministic generator, so every run sees the same inputs. */
function gen(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rnd = gen(20240611);
// float32 values, so a float32 input holds exactly what the float64 reference computes on.
const uniform = (n: number, lo = -1, hi = 1): number[] => Array.from({ length: n }, () => Math.fround(lo + (hi - lo) * rnd()));
const maskOf = (n: number, frac: number): number[] => Array.from({ length: n }, () => (rnd() < frac ? 1 : 0));

const cpu = (v: ArrayLike<number>, shape: readonly number[], dt: DType = 'float64'): N => put(v, shape, dt, 'cpu');
const dev = (v: ArrayLike<number>, shape: readonly number[], dt: DType): N => put(v, shape, dt, 'cuda');

/** got (cuda, float32) against ref (cpu, float64) by the float32 tolerances. */
function close(label: string, got: N, ref: N): void {
  expect(got.device).toBe('cuda');
  expect(got.shape).toEqual(ref.shape);
  assertClose(get(got), get(ref), F32, label);
}

/**
 * A 0-d bfloat16 loss by the bf16 rule, with one bf16 ulp of slack: for a
 * single value the naive version can land on the nearer of two bf16 neighbours
 * by luck, which would make 2× its error a bound of zero.
 */
function closeBf16Scalar(label: string, got: number, ref: number, naive: number): void {
  const bound = 2 * Math.abs(naive - ref) + 2 ** -8 * Math.abs(ref) + 1e-6;
  if (!(Math.abs(got - ref) <= bound)) throw new Error(`${label}: got ${got}, reference ${ref}, naive bf16 ${naive}`);
}

/** The error message a call throws (so CUDA and CPU messages can be compared). */
function thrown(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return '(no error)';
}

describeCuda('mim tokens', () => {
  it('uniformNoise gives the CPU bits on the device, every shape and range', () => {
    for (const shape of [[0], [1], [7], [3, 5], [4099], [64, 197]]) {
      for (const [lo, hi] of [[0, 1], [0, 0.5], [-1.3, 2.7], [1e-3, 1e-3 + 1e-9]] as const) {
        for (const [seed, step] of [[0, 0], [12345, 7], [2 ** 40 + 3, 2 ** 33 + 1]]) {
          const c = native().uniformNoise(shape, seed, step, lo, hi, 'cuda');
          expect(c.device).toBe('cuda');
          expect(c.dtype).toBe('float32');
          const h = native().uniformNoise(shape, seed, step, lo, hi);
          expect(Array.from(get(c))).toEqual(Array.from(get(h)));
          for (const v of get(c)) expect(v >= Math.fround(lo) && v < Math.fround(hi)).toBe(true);
        }
      }
    }
    expect(thrown(() => native().uniformNoise([2], 0, 0, 0, 1, 'gpu' as never))).toMatch(/'cpu' or 'cuda'/);
  });

  it('maskFromScores sorts stably (ties by index) as the CPU, staged and unstaged rows', () => {
    for (const [B, L] of [[1, 1], [3, 7], [4, 197], [2, 9001]]) {
      // Few distinct values, so ties are everywhere.
      const s = Array.from({ length: B * L }, () => Math.floor(rnd() * 13) / 4 - 1);
      for (const keep of [0, 1, Math.floor(L / 4), L]) {
        for (const dt of ['float32', 'bfloat16'] as const) {
          const c = native().maskFromScores(dev(s, [B, L], dt), keep);
          // bf16 scores: the CPU sorts the same rounded values in float64.
          const h = native().maskFromScores(cpu(dt === 'bfloat16' ? roundBf16(s) : s, [B, L]), keep);
          for (const k of ['idsKeep', 'idsRestore', 'mask'] as const) {
            expect(c[k].device).toBe('cuda');
            expect(c[k].dtype).toBe(h[k].dtype);
            expect(c[k].shape).toEqual(h[k].shape);
            expect(Array.from(get(c[k]))).toEqual(Array.from(get(h[k])));
          }
        }
      }
    }
  });

  it('maskFromScores rejects NaN with the CPU message', () => {
    const s = [0.1, 0.2, NaN, 0.3, 0.4, 0.5];
    const m = thrown(() => native().maskFromScores(dev(s, [2, 3], 'float32'), 1));
    expect(m).toBe(thrown(() => native().maskFromScores(cpu(s, [2, 3], 'float32'), 1)));
    expect(m).toMatch(/NaN at \(b, j\) = \(0, 2\)/);
  });

  it('restoreIndex matches the CPU with and without CLS, and rejects what the CPU rejects', () => {
    const B = 3, L = 11;
    const perm = Array.from({ length: B }, () => {
      const p = Array.from({ length: L }, (_, i) => i);
      for (let i = L - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      return p;
    }).flat();
    for (const keep of [0, 4, L]) {
      for (const cls of [false, true]) {
        const c = native().restoreIndex(dev(perm, [B, L], 'int32'), keep, cls);
        const h = native().restoreIndex(cpu(perm, [B, L], 'int32'), keep, cls);
        expect(c.device).toBe('cuda');
        expect(c.shape).toEqual(h.shape);
        expect(Array.from(get(c))).toEqual(Array.from(get(h)));
      }
    }
    const bad = perm.slice();
    bad[13] = L;
    expect(thrown(() => native().restoreIndex(dev(bad, [B, L], 'int32'), 2, true))).toBe(
      thrown(() => native().restoreIndex(cpu(bad, [B, L], 'int32'), 2, true)),
    );
  });

  it('assembleTokens gathers rows and tokens exactly', () => {
    const B = 3, Ls = 5, D = 33, T = 2, Lo = 9;
    const x = uniform(B * Ls * D);
    const tok = uniform(T * D);
    const index = Array.from({ length: B * Lo }, () => Math.floor(rnd() * (Ls + T)) - T);
    for (const dt of ['float32', 'bfloat16'] as const) {
      const c = native().assembleTokens(dev(x, [B, Ls, D], dt), dev(index, [B, Lo], 'int32'), dev(tok, [T, D], dt));
      const r = (v: number[]) => (dt === 'bfloat16' ? roundBf16(v) : Float64Array.from(v, Math.fround));
      const h = native().assembleTokens(cpu(r(x), [B, Ls, D]), cpu(index, [B, Lo], 'int32'), cpu(r(tok), [T, D]));
      expect(c.dtype).toBe(dt);
      expect(c.shape).toEqual([B, Lo, D]);
      expect(Array.from(get(c))).toEqual(Array.from(get(h)));
    }
    // No tokens: only non-negative indices; a negative one is refused with the CPU message.
    const pos = index.map((v) => (v < 0 ? 0 : v));
    const c = native().assembleTokens(dev(x, [B, Ls, D], 'float32'), dev(pos, [B, Lo], 'int32'), null);
    const h = native().assembleTokens(cpu(x, [B, Ls, D], 'float32'), cpu(pos, [B, Lo], 'int32'), null);
    expect(Array.from(get(c))).toEqual(Array.from(get(h)));
    const neg = pos.slice();
    neg[5] = -1;
    expect(thrown(() => native().assembleTokens(dev(x, [B, Ls, D], 'float32'), dev(neg, [B, Lo], 'int32'), null))).toBe(
      thrown(() => native().assembleTokens(cpu(x, [B, Ls, D], 'float32'), cpu(neg, [B, Lo], 'int32'), null)),
    );
  });

  it('assembleTokensBackward sums repeated rows and tokens (one and many row groups)', () => {
    // B·Lo = 12 rows (one group) and 9·80 = 720 rows (several groups of the token sum).
    for (const [B, Ls, Lo, D, T] of [[2, 4, 6, 7, 1], [9, 50, 80, 129, 2]]) {
      const g = uniform(B * Lo * D);
      const index = Array.from({ length: B * Lo }, () => Math.floor(rnd() * (Ls + T)) - T);
      const ref = native().assembleTokensBackward(cpu(g, [B, Lo, D]), cpu(index, [B, Lo], 'int32'), Ls, T, true, true);
      const f = native().assembleTokensBackward(dev(g, [B, Lo, D], 'float32'), dev(index, [B, Lo], 'int32'), Ls, T, true, true);
      close('dx', f[0]!, ref[0]!);
      close('dtokens', f[1]!, ref[1]!);
      const hb = native().assembleTokensBackward(dev(g, [B, Lo, D], 'bfloat16'), dev(index, [B, Lo], 'int32'), Ls, T, true, true);
      const nv = native().assembleTokensBackward(cpu(roundBf16(g), [B, Lo, D]), cpu(index, [B, Lo], 'int32'), Ls, T, true, true);
      expect(hb[0]!.dtype).toBe('bfloat16');
      assertBf16('dx bf16', get(hb[0]!), get(ref[0]!), roundBf16(get(nv[0]!)));
      assertBf16('dtokens bf16', get(hb[1]!), get(ref[1]!), roundBf16(get(nv[1]!)));
      // Only one of the two asked for.
      const only = native().assembleTokensBackward(dev(g, [B, Lo, D], 'float32'), dev(index, [B, Lo], 'int32'), Ls, T, false, true);
      expect(only[0]).toBeNull();
      close('dtokens only', only[1]!, ref[1]!);
    }
  });

  it('patchify and unpatchify permute exactly, odd channel counts and p = 1 included', () => {
    for (const [B, C, H, W, p] of [[2, 3, 8, 12, 4], [1, 1, 5, 7, 1], [3, 5, 6, 6, 3]]) {
      const img = uniform(B * C * H * W);
      for (const dt of ['float32', 'bfloat16'] as const) {
        const r = dt === 'bfloat16' ? roundBf16(img) : Float64Array.from(img, Math.fround);
        const c = native().patchify(dev(img, [B, C, H, W], dt), p);
        const h = native().patchify(cpu(r, [B, C, H, W]), p);
        expect(c.shape).toEqual(h.shape);
        expect(Array.from(get(c))).toEqual(Array.from(get(h)));
        const back = native().unpatchify(c, p, C, H, W);
        expect(back.shape).toEqual([B, C, H, W]);
        expect(Array.from(get(back))).toEqual(Array.from(r));
      }
    }
  });

  it('tokenMean and its backward', () => {
    for (const [B, L, D] of [[1, 1, 1], [3, 7, 65], [4, 197, 96]]) {
      const x = uniform(B * L * D);
      const ref = native().tokenMean(cpu(x, [B, L, D]));
      close('tokenMean', native().tokenMean(dev(x, [B, L, D], 'float32')), ref);
      const naive = roundBf16(get(native().tokenMean(cpu(roundBf16(x), [B, L, D]))));
      assertBf16('tokenMean bf16', get(native().tokenMean(dev(x, [B, L, D], 'bfloat16'))), get(ref), naive);
      const g = uniform(B * D);
      const dref = native().tokenMeanBackward(cpu(g, [B, D]), L);
      close('tokenMeanBackward', native().tokenMeanBackward(dev(g, [B, D], 'float32'), L), dref);
      const dn = roundBf16(get(native().tokenMeanBackward(cpu(roundBf16(g), [B, D]), L)));
      assertBf16('tokenMeanBackward bf16', get(native().tokenMeanBackward(dev(g, [B, D], 'bfloat16'), L)), get(dref), dn);
    }
  });
});

describeCuda('mim losses', () => {
  const masks = (B: number, L: number): [string, number[]][] => [
    ['random', maskOf(B * L, 0.6)],
    ['none masked', new Array<number>(B * L).fill(0)],
    ['all masked', new Array<number>(B * L).fill(1)],
  ];

  it('maskedPatchLoss and its backward (mse, l1, normPix), every mask', () => {
    for (const [B, L, P] of [[2, 5, 48], [3, 7, 37], [1, 1, 2]]) {
      const shape = [B, L, P];
      const pred = uniform(B * L * P);
      const target = uniform(B * L * P, -2, 3);
      for (const [mname, m] of masks(B, L)) {
        for (const opts of [{ kind: 'mse' as const }, { kind: 'l1' as const }, { kind: 'mse' as const, normPix: true }, { kind: 'l1' as const, normPix: true, eps: 1e-4 }]) {
          const label = `${JSON.stringify(opts)} ${mname} [${shape}]`;
          const ref = native().maskedPatchLoss(cpu(pred, shape), cpu(target, shape), cpu(m, [B, L], 'uint8'), opts);
          const f = native().maskedPatchLoss(dev(pred, shape, 'float32'), dev(target, shape, 'float32'), dev(m, [B, L], 'uint8'), opts);
          expect(f.count).toBe(ref.count);
          expect(f.loss.shape).toEqual([]);
          expect(f.loss.dtype).toBe('float32');
          close(`loss ${label}`, f.loss, ref.loss);
          close(`perPatch ${label}`, f.perPatch, ref.perPatch);
          const gl = 0.7;
          const rb = native().maskedPatchLossBackward(gl, cpu(pred, shape), cpu(target, shape), cpu(m, [B, L], 'uint8'), opts, true, true);
          const fb = native().maskedPatchLossBackward(gl, dev(pred, shape, 'float32'), dev(target, shape, 'float32'), dev(m, [B, L], 'uint8'), opts, true, true);
          close(`dpred ${label}`, fb[0]!, rb[0]!);
          close(`dtarget ${label}`, fb[1]!, rb[1]!);

          const hb = native().maskedPatchLoss(dev(pred, shape, 'bfloat16'), dev(target, shape, 'bfloat16'), dev(m, [B, L], 'uint8'), opts);
          const nv = native().maskedPatchLoss(cpu(roundBf16(pred), shape), cpu(roundBf16(target), shape), cpu(m, [B, L], 'uint8'), opts);
          expect(hb.loss.dtype).toBe('bfloat16');
          closeBf16Scalar(`loss bf16 ${label}`, get(hb.loss)[0]!, get(ref.loss)[0]!, bf16(get(nv.loss)[0]!));
          assertBf16(`perPatch bf16 ${label}`, get(hb.perPatch), get(ref.perPatch), roundBf16(get(nv.perPatch)));
          const hbb = native().maskedPatchLossBackward(gl, dev(pred, shape, 'bfloat16'), dev(target, shape, 'bfloat16'), dev(m, [B, L], 'uint8'), opts, true, true);
          const nb = native().maskedPatchLossBackward(gl, cpu(roundBf16(pred), shape), cpu(roundBf16(target), shape), cpu(m, [B, L], 'uint8'), opts, true, true);
          assertBf16(`dpred bf16 ${label}`, get(hbb[0]!), get(rb[0]!), roundBf16(get(nb[0]!)));
          assertBf16(`dtarget bf16 ${label}`, get(hbb[1]!), get(rb[1]!), roundBf16(get(nb[1]!)));
        }
      }
    }
  });

  it('maskedPatchLoss checks the mask on the device tensors as the CPU does', () => {
    const shape = [1, 2, 4];
    const v = uniform(8);
    const bad = [0, 2];
    expect(thrown(() => native().maskedPatchLoss(dev(v, shape, 'float32'), dev(v, shape, 'float32'), dev(bad, [1, 2], 'uint8'), {}))).toBe(
      thrown(() => native().maskedPatchLoss(cpu(v, shape, 'float32'), cpu(v, shape, 'float32'), cpu(bad, [1, 2], 'uint8'), {})),
    );
    // A mask left on the CPU is refused: every tensor argument must be on one device.
    expect(thrown(() => native().maskedPatchLoss(dev(v, shape, 'float32'), dev(v, shape, 'float32'), cpu([0, 1], [1, 2], 'uint8'), {}))).toMatch(/one device/);
  });

  it('maskedCosine and its backward, with clamped norms and images of one kind only', () => {
    const B = 5, L = 9, D = 40;
    const x = uniform(B * L * D);
    for (let k = 0; k < D; k++) x[(1 * L + 2) * D + k] = 0; // a zero token: ‖x‖ < eps
    for (let k = 0; k < D; k++) x[(2 * L + 4) * D + k] = Math.fround(x[(2 * L + 4) * D + k]! * 1e-9); // ‖x‖ ≈ 4e-9 < eps = 1e-8
    const m = maskOf(B * L, 0.5);
    for (let i = 0; i < L; i++) {
      m[3 * L + i] = 1; // image 3: all masked
      m[4 * L + i] = 0; // image 4: all visible
    }
    m[1 * L + 2] = 1;
    for (const [mname, mk] of [['mixed', m], ...masks(B, L)] as [string, number[]][]) {
      for (const eps of [1e-8, 0.5]) {
        const label = `${mname} eps ${eps}`;
        const ref = native().maskedCosine(cpu(x, [B, L, D]), cpu(mk, [B, L], 'uint8'), eps);
        const f = native().maskedCosine(dev(x, [B, L, D], 'float32'), dev(mk, [B, L], 'uint8'), eps);
        expect(f.count).toBe(ref.count);
        close(`cosine ${label}`, f.loss, ref.loss);
        const rb = native().maskedCosineBackward(1.3, cpu(x, [B, L, D]), cpu(mk, [B, L], 'uint8'), eps);
        close(`cosine dx ${label}`, native().maskedCosineBackward(1.3, dev(x, [B, L, D], 'float32'), dev(mk, [B, L], 'uint8'), eps), rb);

        const hb = native().maskedCosine(dev(x, [B, L, D], 'bfloat16'), dev(mk, [B, L], 'uint8'), eps);
        const nv = native().maskedCosine(cpu(roundBf16(x), [B, L, D]), cpu(mk, [B, L], 'uint8'), eps);
        closeBf16Scalar(`cosine bf16 ${label}`, get(hb.loss)[0]!, get(ref.loss)[0]!, bf16(get(nv.loss)[0]!));
        const hbb = native().maskedCosineBackward(1.3, dev(x, [B, L, D], 'bfloat16'), dev(mk, [B, L], 'uint8'), eps);
        const nb = native().maskedCosineBackward(1.3, cpu(roundBf16(x), [B, L, D]), cpu(mk, [B, L], 'uint8'), eps);
        assertBf16(`cosine dx bf16 ${label}`, get(hbb), get(rb), roundBf16(get(nb)));
      }
    }
  });

  it('rankingLoss and its backward, with tied targets', () => {
    for (const [B, L] of [[1, 1], [3, 20], [2, 197]]) {
      const pred = uniform(B * L, -3, 3);
      const target = Array.from({ length: B * L }, () => Math.floor(rnd() * 5) / 5); // ties → label ½
      for (const [mname, m] of masks(B, L)) {
        const label = `${mname} [${B}, ${L}]`;
        const ref = native().rankingLoss(cpu(pred, [B, L]), cpu(target, [B, L]), cpu(m, [B, L], 'uint8'));
        const f = native().rankingLoss(dev(pred, [B, L], 'float32'), dev(target, [B, L], 'float32'), dev(m, [B, L], 'uint8'));
        expect(f.count).toBe(ref.count);
        close(`ranking ${label}`, f.loss, ref.loss);
        const rb = native().rankingLossBackward(0.9, cpu(pred, [B, L]), cpu(target, [B, L]), cpu(m, [B, L], 'uint8'));
        close(`ranking dpred ${label}`, native().rankingLossBackward(0.9, dev(pred, [B, L], 'float32'), dev(target, [B, L], 'float32'), dev(m, [B, L], 'uint8')), rb);

        // bf16 targets keep their ties (multiples of 1/5 round to bf16 consistently).
        const hb = native().rankingLoss(dev(pred, [B, L], 'bfloat16'), dev(target, [B, L], 'bfloat16'), dev(m, [B, L], 'uint8'));
        const nv = native().rankingLoss(cpu(roundBf16(pred), [B, L]), cpu(roundBf16(target), [B, L]), cpu(m, [B, L], 'uint8'));
        const refb = native().rankingLoss(cpu(pred, [B, L]), cpu(roundBf16(target), [B, L]), cpu(m, [B, L], 'uint8'));
        // Labels come from the targets: the reference takes the bf16 targets too, since rounding may create or break a tie.
        closeBf16Scalar(`ranking bf16 ${label}`, get(hb.loss)[0]!, get(refb.loss)[0]!, bf16(get(nv.loss)[0]!));
        const rbb = native().rankingLossBackward(0.9, cpu(pred, [B, L]), cpu(roundBf16(target), [B, L]), cpu(m, [B, L], 'uint8'));
        const hbb = native().rankingLossBackward(0.9, dev(pred, [B, L], 'bfloat16'), dev(target, [B, L], 'bfloat16'), dev(m, [B, L], 'uint8'));
        const nb = native().rankingLossBackward(0.9, cpu(roundBf16(pred), [B, L]), cpu(roundBf16(target), [B, L]), cpu(m, [B, L], 'uint8'));
        assertBf16(`ranking dpred bf16 ${label}`, get(hbb), get(rbb), roundBf16(get(nb)));
      }
    }
  });
});

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
