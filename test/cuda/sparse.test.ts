// SparK's sparse ops on CUDA against the CPU backend, through the native API:
// sites and tables exactly equal to the CPU's (their order defines every
// sparse tensor's rows); float32 on cuda against float64 on the CPU; bfloat16
// by the bf16 rule (test/cuda/harness.ts) against a naive bf16 version: the
// float64 CPU op on bf16-rounded inputs, its output rounded to bf16. Masks
// 0%, 60% and 100% masked, odd sizes, strides 1 and 2, backward too; the
// device-side checks must throw the CPU's messages.
import { expect, it } from 'vitest';
import { Rng } from '../../src/rng.js';
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { assertClose, tolFor, type Tol } from '../helpers/tolerance.js';
import { assertBf16, describeCuda, get, put, roundBf16 } from './harness.js';

type Arr = ArrayLike<number>;
type Dev = 'float32' | 'bfloat16';
const rng = new Rng(97);
const n = () => native();
const f64 = (v: Arr, shape: number[]): NativeTensor => put(v, shape, 'float64', 'cpu');
const i32 = (v: Arr, shape: number[], device: 'cpu' | 'cuda' = 'cpu'): NativeTensor => put(v, shape, 'int32', device);
const rand = (len: number, lo = -1, hi = 1): number[] => Array.from({ length: len }, () => lo + (hi - lo) * rng.uniform());
const ints = (t: NativeTensor): number[] => Array.from(t.read());
// Loosened for ops that sum many terms (k²·Cin products, dW, db, batch
// statistics and the fill gradient over every row) in another order than the
// float64 reference, as test/sparse.test.ts allows; data movement and max pool
// keep float32's default.
const TOL32: Tol = { atol: 2e-4, rtol: 2e-4 };

/** SparK-style masks (1 = active): round(ratio·L) coarse cells masked per image, upsampled ×2. */
function masks(B: number, H: number, W: number, ratio: number) {
  const Hc = Math.ceil(H / 2), Wc = Math.ceil(W / 2), L = Hc * Wc;
  const coarse = new Array<number>(B * L).fill(0);
  for (let b = 0; b < B; b++) {
    const order = Array.from({ length: L }, (_, i) => i);
    for (let i = L - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (let i = Math.round(ratio * L); i < L; i++) coarse[b * L + order[i]!] = 1;
  }
  const fine = new Array<number>(B * H * W).fill(0);
  for (let b = 0; b < B; b++)
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) fine[(b * H + y) * W + x] = coarse[b * L + (y >> 1) * Wc + (x >> 1)]!;
  return { fine, coarse, Hc, Wc };
}

interface Map {
  N: number; M: number; K2: number;
  coords: NativeTensor; nbr: NativeTensor; nbrD: NativeTensor; coordsD: NativeTensor;
}

/** Sites and a table on the CPU, and their copies on the device. */
function sparseMap(B: number, H: number, W: number, ratio: number, k: number, stride: number): Map {
  const m = masks(B, H, W, ratio);
  const fine = n().activeSites(put(m.fine, [B, H, W], 'uint8', 'cpu'));
  const out = stride === 1 ? fine : n().activeSites(put(m.coarse, [B, m.Hc, m.Wc], 'uint8', 'cpu'));
  const nbr = n().neighbourTable(fine.grid, out.coords, k, stride, (k - 1) >> 1);
  return {
    N: fine.coords.shape[0]!, M: out.coords.shape[0]!, K2: k * k,
    coords: fine.coords, nbr, nbrD: nbr.to('cuda'), coordsD: fine.coords.to('cuda'),
  };
}

/** Float inputs for one check: the float64 CPU tensor, the device one, and the float64 of its rounded values. */
interface In { v: number[]; shape: number[] }
const inp = (v: number[], shape: number[]): In => ({ v, shape });
const onCpu = (a: In | null, round: boolean): NativeTensor | null => (a ? f64(round ? roundBf16(a.v) : a.v, a.shape) : null);
const onDev = (a: In | null, dt: Dev): NativeTensor | null => (a ? put(a.v, a.shape, dt, 'cuda') : null);

/**
 * Runs `op` on the CPU in float64 and on cuda in dt, and checks every float
 * output (null outputs must match). Integer outputs (arg) must be equal.
 */
function check(label: string, dt: Dev, ins: Array<In | null>, op: (t: Array<NativeTensor | null>) => Array<NativeTensor | null>, tol: Tol = tolFor('float32')): void {
  const ref = op(ins.map((a) => onCpu(a, false)));
  const got = op(ins.map((a) => onDev(a, dt)));
  const naive = dt === 'bfloat16' ? op(ins.map((a) => onCpu(a, true))) : null;
  expect(got.length).toBe(ref.length);
  ref.forEach((r, i) => {
    const g = got[i]!;
    const what = `${label} ${dt} output ${i}`;
    if (r === null) return expect(g, what).toBeNull();
    expect(g.device, what).toBe('cuda');
    expect(g.shape, what).toEqual(r.shape);
    if (r.dtype === 'int32') {
      expect(g.dtype, what).toBe('int32');
      if (dt === 'float32') expect(ints(g), what).toEqual(ints(r));
      return;
    }
    expect(g.dtype, what).toBe(dt);
    if (dt === 'float32') assertClose(get(g), get(r), tol, what);
    else assertBf16(what, get(g), get(r), roundBf16(get(naive![i]!)));
  });
}

describeCuda('sparse sites and rulebook', () => {
  it('activeSites gives the CPU rows in the CPU order, across many lines and wide rows', () => {
    for (const [B, H, W] of [[2, 7, 5], [3, 700, 5], [1, 3, 100], [2, 33, 64], [1, 1, 1], [2, 0, 3]] as const)
      for (const ratio of [0, 0.4, 1]) {
        const mask = Array.from({ length: B * H * W }, () => (rng.uniform() < ratio ? 0 : 1));
        const c = n().activeSites(put(mask, [B, H, W], 'uint8', 'cpu'));
        const d = n().activeSites(put(mask, [B, H, W], 'uint8', 'cuda'));
        expect(d.coords.device).toBe('cuda');
        expect(d.coords.shape).toEqual(c.coords.shape);
        expect(ints(d.coords), `coords [${B}, ${H}, ${W}] ${ratio}`).toEqual(ints(c.coords));
        expect(ints(d.grid), `grid [${B}, ${H}, ${W}] ${ratio}`).toEqual(ints(c.grid));
      }
  });

  it('neighbourTable equals the CPU table (k 1, 3, 7; stride 1 and 2)', () => {
    for (const k of [1, 3, 7])
      for (const stride of [1, 2])
        for (const ratio of [0, 0.6, 1]) {
          const m = masks(2, 13, 11, ratio);
          const fine = n().activeSites(put(m.fine, [2, 13, 11], 'uint8', 'cuda'));
          const out = stride === 1 ? fine : n().activeSites(put(m.coarse, [2, m.Hc, m.Wc], 'uint8', 'cuda'));
          const d = n().neighbourTable(fine.grid, out.coords, k, stride, (k - 1) >> 1);
          const c = n().neighbourTable(fine.grid.to('cpu'), out.coords.to('cpu'), k, stride, (k - 1) >> 1);
          expect(d.device).toBe('cuda');
          expect(d.shape).toEqual(c.shape);
          expect(ints(d), `k${k} s${stride} ${ratio}`).toEqual(ints(c));
        }
  });

  it('throws the CPU messages for bad masks, grids, sites, tables and args', () => {
    const same = (f: (device: 'cpu' | 'cuda') => unknown) => {
      let cpu = '';
      try {
        f('cpu');
      } catch (e) {
        cpu = (e as Error).message;
      }
      expect(cpu).not.toBe('');
      expect(() => f('cuda')).toThrow(cpu);
    };
    same((d) => n().activeSites(put([0, 1, 1, 0, 3, 1, 2, 0], [1, 2, 4], 'uint8', d)));
    same((d) => n().neighbourTable(i32([0, -1, 1, -3, 2, -2], [1, 2, 3], d), i32([0, 0, 0], [1, 3], d), 3, 1, 1));
    same((d) => n().neighbourTable(i32([0, 1, 2, 3], [1, 2, 2], d), i32([0, 0, 0, 0, 1, 1, 0, 5, 0], [3, 3], d), 3, 1, 1));
    same((d) => n().neighbourTable(i32([0, 1, 2, 3], [1, 2, 2], d), i32([0, 0, 1, 0, 1, 1, 0, 0, 1, 0, 1, 1], [4, 3], d), 3, 1, 1));
    same((d) => n().toSparse(put(rand(8), [1, 2, 2, 2], 'float32', d), i32([0, 0, 0, 0, 2, 0], [2, 3], d)));
    const x = (d: 'cpu' | 'cuda') => put(rand(6), [3, 2], 'float32', d);
    const w = (d: 'cpu' | 'cuda') => put(rand(4), [2, 2, 1, 1], 'float32', d);
    same((d) => n().sparseConv(x(d), w(d), null, i32([0, 2, 3, -1], [4, 1], d)));
    // Each (input row, offset) pair at most once: row 1 twice in offset 0.
    same((d) => n().sparseConvBackward(put(rand(6), [3, 2], 'float32', d), x(d), w(d), i32([1, 0, 1], [3, 1], d), true, false, false));
    same((d) => n().sparseMaxPoolBackward(put(rand(2), [1, 2], 'float32', d), i32([0, 1], [1, 2], d), i32([0, 2], [1, 2], d), 2));
  });
});

describeCuda('sparse conversions', () => {
  for (const dt of ['float32', 'bfloat16'] as Dev[])
    it(`toDense (with and without fill), toSparse, toDenseFillGrad (${dt}; masked 0% / 60% / 100%)`, () => {
      for (const ratio of [0, 0.6, 1]) {
        const [B, H, W, C] = [2, 9, 7, 5];
        const map = sparseMap(B, H, W, ratio, 3, 1);
        const coords = (d: NativeTensor | null) => (d?.device === 'cuda' ? map.coordsD : map.coords);
        const rows = inp(rand(map.N * C), [map.N, C]);
        const fill = inp(rand(C), [C]);
        const dense = inp(rand(B * C * H * W), [B, C, H, W]);
        check(`toDense ${ratio}`, dt, [rows, fill], ([x, f]) => [n().toDense(x!, coords(x), B, H, W, f), n().toDense(x!, coords(x), B, H, W, null)]);
        check(`toSparse ${ratio}`, dt, [dense], ([d]) => [n().toSparse(d!, coords(d))]);
        check(`toDenseFillGrad ${ratio}`, dt, [dense], ([d]) => [n().toDenseFillGrad(d!, coords(d))], TOL32);
      }
    });
});

interface ConvCase { B: number; H: number; W: number; Cin: number; Cout: number; k: number; stride: number; depthwise?: boolean; scale?: number }

function convCase(dt: Dev, c: ConvCase, ratio: number): void {
  const map = sparseMap(c.B, c.H, c.W, ratio, c.k, c.stride);
  const table = (t: NativeTensor | null) => (t?.device === 'cuda' ? map.nbrD : map.nbr);
  const Cout = c.depthwise ? c.Cin : c.Cout;
  const x = inp(rand(map.N * c.Cin), [map.N, c.Cin]);
  const s = c.scale ?? 1;
  const w = inp(rand(Cout * (c.depthwise ? 1 : c.Cin) * map.K2, -s, s), [Cout, c.depthwise ? 1 : c.Cin, c.k, c.k]);
  const b = inp(rand(Cout), [Cout]);
  const g = inp(rand(map.M * Cout), [map.M, Cout]);
  const fwd = c.depthwise ? n().sparseDepthwiseConv.bind(n()) : n().sparseConv.bind(n());
  const bwd = c.depthwise ? n().sparseDepthwiseConvBackward.bind(n()) : n().sparseConvBackward.bind(n());
  const label = `${c.depthwise ? 'depthwise ' : ''}[${c.B}, ${c.H}, ${c.W}] ${c.Cin}→${Cout} k${c.k} s${c.stride} ${ratio}`;
  check(`${label} forward`, dt, [x, w, b], ([xx, ww, bb]) => [fwd(xx!, ww!, bb, table(xx)), fwd(xx!, ww!, null, table(xx))], TOL32);
  check(`${label} backward`, dt, [g, x, w], ([gg, xx, ww]) => bwd(gg!, xx!, ww!, table(gg), true, true, true), TOL32);
  check(`${label} backward dW only`, dt, [g, x, w], ([gg, xx, ww]) => bwd(gg!, xx!, ww!, table(gg), false, true, false), TOL32);
}

describeCuda('sparseConv and sparseDepthwiseConv', () => {
  for (const dt of ['float32', 'bfloat16'] as Dev[]) {
    for (const k of [1, 3, 7])
      for (const stride of [1, 2])
        it(`${dt} [2, 13, 11] 5→3 k${k} s${stride}, masked 0% / 60% / 100%`, () => {
          for (const ratio of [0, 0.6, 1]) convCase(dt, { B: 2, H: 13, W: 11, Cin: 5, Cout: 3, k, stride }, ratio);
        });

    it(`${dt} 64→48 channels, k3, a larger map`, () => {
      for (const stride of [1, 2]) convCase(dt, { B: 2, H: 20, W: 18, Cin: 64, Cout: 48, k: 3, stride, scale: 0.2 }, 0.6);
    });

    it(`${dt} several GEMM tiles (k7, 512 channels, 3072 rows)`, () => {
      // K2·Cin = 25088 columns: 1280 rows per float32 tile, 2560 per bf16 tile.
      convCase(dt, { B: 3, H: 32, W: 32, Cin: 512, Cout: 8, k: 7, stride: 1, scale: 0.05 }, 0);
    });

    for (const k of [3, 7])
      for (const stride of [1, 2])
        it(`depthwise ${dt} [2, 13, 11] 6 channels k${k} s${stride}, masked 0% / 60% / 100%`, () => {
          for (const ratio of [0, 0.6, 1]) convCase(dt, { B: 2, H: 13, W: 11, Cin: 6, Cout: 6, k, stride, depthwise: true }, ratio);
        });
  }

  it('is bit-for-bit repeatable', () => {
    const map = sparseMap(2, 16, 16, 0.6, 3, 1);
    const x = put(rand(map.N * 32), [map.N, 32], 'float32', 'cuda');
    const w = put(rand(16 * 32 * 9), [16, 32, 3, 3], 'float32', 'cuda');
    const g = put(rand(map.M * 16), [map.M, 16], 'float32', 'cuda');
    const run = () => n().sparseConvBackward(g, x, w, map.nbrD, true, true, true).map((t) => Array.from(t!.read()));
    expect(run()).toEqual(run());
  });
});

describeCuda('sparseBatchNorm and sparseMaxPool', () => {
  for (const dt of ['float32', 'bfloat16'] as Dev[]) {
    it(`batch norm forward and backward (${dt}; training, eval, no running statistics, N = 0)`, () => {
      for (const [N, C] of [[7, 4], [300, 37], [1000, 3], [0, 5]] as const) {
        const x = inp(rand(N * C, -2, 3), [N, C]);
        const w = inp(rand(C, 0.5, 1.5), [C]);
        const b = inp(rand(C), [C]);
        const rm = inp(rand(C), [C]);
        const rv = inp(rand(C, 0.5, 2), [C]);
        const g = inp(rand(N * C), [N, C]);
        if (N > 1) {
          // Running statistics are updated in place: return them as outputs.
          check(`bn train [${N}, ${C}]`, dt, [x, w, b, rm, rv], ([xx, ww, bb, m, v]) => [...n().sparseBatchNorm(xx!, ww, bb, m, v, true, 0.2, 1e-5), m, v], TOL32);
          check(`bn batch stats [${N}, ${C}]`, dt, [x, null, null], ([xx]) => n().sparseBatchNorm(xx!, null, null, null, null, false, 0.1, 1e-3), TOL32);
        }
        check(`bn eval [${N}, ${C}]`, dt, [x, w, b, rm, rv], ([xx, ww, bb, m, v]) => [...n().sparseBatchNorm(xx!, ww, bb, m, v, false, 0.1, 1e-5), m, v], TOL32);
        // The backward from given statistics (as a forward would have saved them).
        const mean = inp(rand(C, -0.5, 0.5), [C]);
        const rstd = inp(rand(C, 0.5, 2), [C]);
        for (const batchStats of [true, false])
          check(`bn backward [${N}, ${C}] ${batchStats}`, dt, [g, x, w, mean, rstd], ([gg, xx, ww, m, r]) =>
            n().sparseBatchNormBackward(gg!, xx!, ww, m!, r!, batchStats, true, true, true), TOL32);
      }
    });

    it(`max pool forward and backward (${dt}; ties keep the first offset; masked 0% / 60% / 100%)`, () => {
      for (const ratio of [0, 0.6, 1])
        for (const stride of [1, 2]) {
          const C = 5;
          const map = sparseMap(2, 11, 9, ratio, 3, stride);
          const table = (t: NativeTensor | null) => (t?.device === 'cuda' ? map.nbrD : map.nbr);
          // Multiples of 1/4 in [−2, 2]: exact in bf16, and ties are common.
          const x = inp(Array.from({ length: map.N * C }, () => (rng.int(17) - 8) / 4), [map.N, C]);
          const g = inp(rand(map.M * C), [map.M, C]);
          check(`maxpool ${ratio} s${stride}`, dt, [x], ([xx]) => n().sparseMaxPool(xx!, table(xx)));
          const argCpu = n().sparseMaxPool(f64(x.v, x.shape), map.nbr)[1];
          const argDev = argCpu.to('cuda');
          check(`maxpool backward ${ratio} s${stride}`, dt, [g], ([gg]) =>
            [n().sparseMaxPoolBackward(gg!, table(gg), gg!.device === 'cuda' ? argDev : argCpu, map.N)]);
        }
    });
  }

  it('max pool: the device arg equals the CPU arg for float32 and bfloat16', () => {
    const map = sparseMap(2, 12, 10, 0.5, 3, 2);
    const x = Array.from({ length: map.N * 4 }, () => (rng.int(9) - 4) / 2);
    const c = n().sparseMaxPool(f64(x, [map.N, 4]), map.nbr)[1];
    for (const dt of ['float32', 'bfloat16'] as Dev[]) expect(ints(n().sparseMaxPool(put(x, [map.N, 4], dt, 'cuda'), map.nbrD)[1])).toEqual(ints(c));
  });
});
