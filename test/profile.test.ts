/**
 * The per-native-call profiler (src/profile): families sum to the step, nothing
 * is recorded outside a run, call-site labels nest and follow a GEMM into its
 * backward, and GEMM FLOPs come from shapes. No timing thresholds: only
 * identities and counts. Also the bench header's /proc/cpuinfo parser.
 */
import { describe, expect, it } from 'vitest';
import {
  AdamW, backward, BertForMaskedLM, bertPreset, JS_OVERHEAD, PROFILER_OWN, layerNorm, linear, matmul, profileLabel, Profiler, scope, sum, tensor, withProfile,
} from '../src/index.js';
import { loadAddon, native } from '../src/native/loader.js';
import { classifyCall, gemmFlops } from '../src/profile/families.js';
import { currentLabels } from '../src/profile/state.js';
import { amdCore, machineLine, parseCpuinfo } from '../bench/lib/machine.js';
import { mlmBatch } from '../bench/lib/mlm_batch.js';

const ramp = (shape: number[], s = 0.1) => {
  const n = shape.reduce((a, x) => a * x, 1);
  return tensor(Array.from({ length: n }, (_, i) => Math.sin(i * s)), shape);
};

describe('Profiler', () => {
  it('families sum to the step wall time and CPU time, over a real MLM step', () => {
    const model = new BertForMaskedLM(bertPreset('bert-tiny', { vocabSize: 97, maxPosition: 16 }).config, { seed: 0 });
    model.train();
    const batch = mlmBatch(2, 8, 97, 0.25, 1);
    const opt = new AdamW(model.parameters(), { lr: 1e-3 });
    const prof = new Profiler();
    for (let i = 0; i < 2; i++) {
      prof.run(() => {
        opt.zeroGrad();
        scope(() => backward(model.loss(batch)));
        opt.clipGradNorm(1);
        opt.step();
      });
    }
    const r = prof.report();
    expect(r.steps).toBe(2);
    const total = (k: 'ms' | 'userMs' | 'sysMs') => r.families.reduce((a, f) => a + f[k], 0);
    expect(total('ms')).toBeCloseTo(r.stepMs, 6);
    expect(total('userMs')).toBeCloseTo(r.userMs, 6);
    expect(total('sysMs')).toBeCloseTo(r.sysMs, 6);
    expect(r.families.filter((f) => f.family !== JS_OVERHEAD && f.family !== PROFILER_OWN).reduce((a, f) => a + f.ms, 0)).toBeCloseTo(r.nativeMs, 6);
    // the profiler's own time per call is its own row, not part of the step's JS overhead
    expect(r.families.find((f) => f.family === PROFILER_OWN)!.ms).toBeGreaterThan(0);
    const names = r.families.map((f) => f.family);
    for (const f of ['attention fwd', 'attention bwd', 'layer norm', 'GELU/GeGLU', 'dropout', 'AdamW', 'clip', 'head (linear+CE) fwd', 'head (linear+CE) bwd',
      'GEMM attention QKV fwd', 'GEMM attention QKV bwd', 'GEMM attention output fwd', 'GEMM FFN in fwd', 'GEMM FFN out bwd', 'GEMM head dense fwd', 'zero grad (fill)', 'elementwise (add, scale, axpy, …)', JS_OVERHEAD]) {
      expect(names).toContain(f);
    }
    // bert-tiny: 2 layers × one stacked QKV projection (the fused q, k, v GEMM), per step
    expect(r.families.find((f) => f.family === 'GEMM attention QKV fwd')!.calls).toBe(2 * 2 * 1);
    expect(r.families.find((f) => f.family === 'AdamW')!.bytes).toBeGreaterThan(0);
  });

  it('records nothing outside a run and hands out the plain addon there', () => {
    const prof = new Profiler();
    const plain = loadAddon().addon;
    expect(native()).toBe(plain);
    linear(ramp([3, 4]), ramp([5, 4]), null);
    let inside: unknown = null;
    expect(() => prof.run(() => {
      inside = native();
      throw new Error('boom');
    })).toThrow('boom');
    expect(inside).not.toBe(plain);
    expect(native()).toBe(plain);
    linear(ramp([3, 4]), ramp([5, 4]), null);
    const r = prof.report();
    expect(r.steps).toBe(1);
    expect(r.families.map((f) => f.family)).toEqual([JS_OVERHEAD]);
    // a nested run is refused before its clocks start: no step is added
    expect(() => prof.run(() => prof.run(() => 1))).toThrow(/already running/);
    expect(prof.report().steps).toBe(2);
    // an op that throws inside a profiled step reaches the caller with its own error
    expect(() => prof.run(() => linear(ramp([3, 4]), ramp([5, 3]), null))).toThrow(/linear/);
    // labels open nothing without a running profile
    profileLabel('x', () => expect(currentLabels()).toEqual([]));
  });

  it('labels nest and follow a GEMM into its backward', () => {
    const prof = new Profiler();
    const x = ramp([3, 4]);
    const w = ramp([5, 4], 0.3);
    w.requiresGrad = true;
    withProfile(prof, () => {
      const y = profileLabel('outer', () => {
        const a = profileLabel('inner', () => linear(x, w, null));
        expect(currentLabels()).toEqual(['outer']);
        return a;
      });
      const z = linear(y, ramp([2, 5]), null);
      backward(sum(layerNorm(z, null, null, 1e-5)));
    });
    const fam = new Map(prof.report().families.map((f) => [f.family, f]));
    expect(fam.get('GEMM outer › inner fwd')?.flops).toBe(gemmFlops(3, 5, 4));
    // only dW is asked for: one GEMM
    expect(fam.get('GEMM outer › inner bwd')?.flops).toBe(gemmFlops(3, 5, 4));
    expect(fam.get('GEMM unlabelled fwd')?.flops).toBe(gemmFlops(3, 2, 5));
    // dX of the second linear (y needs grad), not its constant weight
    expect(fam.get('GEMM unlabelled bwd')?.flops).toBe(gemmFlops(3, 2, 5));
    expect(() => prof.run(() => prof.run(() => 0))).toThrow(/do not nest/);
    expect(() => prof.run(() => Promise.resolve(1))).toThrow(/synchronous/);
  });

  it('a synchronize hook runs before (uncounted) and after (counted) every timed call', () => {
    // A hook that waits 3 ms by the clock: the wait after the call lands in the call's family, the one before
    // in the profiler's own row (bench:cuda --profile passes cudaSynchronize: each call then holds its kernels).
    let calls = 0;
    const wait = (): void => {
      calls++;
      const t0 = performance.now();
      while (performance.now() - t0 < 3) {
        // busy-wait: the hook stands for a device that is still working
      }
    };
    const prof = new Profiler({ synchronize: wait });
    const x = ramp([3, 4]);
    const w = ramp([5, 4], 0.3);
    prof.run(() => profileLabel('synced', () => linear(x, w, null)));
    const fam = new Map(prof.report().families.map((f) => [f.family, f]));
    expect(calls).toBe(2);
    expect(fam.get('GEMM synced fwd')!.calls).toBe(1);
    expect(fam.get('GEMM synced fwd')!.ms).toBeGreaterThanOrEqual(3);
    expect(fam.get(PROFILER_OWN)!.ms).toBeGreaterThanOrEqual(3);
    // and none outside a run
    linear(x, w, null);
    expect(calls).toBe(2);
  });

  it('counts 2·M·N·K FLOPs for GEMMs of known shape, batched and transposed', () => {
    const [M, N, K] = [7, 5, 3];
    const prof = new Profiler();
    prof.run(() => {
      profileLabel('mm', () => matmul(ramp([2, K, M]), ramp([N, K]), { transA: true, transB: true }));
      profileLabel('lin', () => linear(ramp([2, 3, K]), ramp([N, K]), ramp([N])));
    });
    const fam = new Map(prof.report().families.map((f) => [f.family, f]));
    expect(fam.get('GEMM mm fwd')!.flops).toBe(2 * 2 * M * N * K);
    expect(fam.get('GEMM lin fwd')!.flops).toBe(2 * (2 * 3) * N * K);
    expect(gemmFlops(M, N, K)).toBe(2 * M * N * K);
    const a = native().empty('float32', [M, K]);
    const b = native().empty('float32', [K, N]);
    expect(classifyCall('matmulBackward', [a, a, b, false, false, true, true], null, ['s']))
      .toEqual({ family: 'GEMM s bwd', kind: 'compute', flops: 2 * 2 * M * N * K, bytes: 0 });
    a.dispose();
    b.dispose();
  });
});

describe('parseCpuinfo', () => {
  const block = (p: number, core: number, flags: string) =>
    `processor\t: ${p}\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: Test CPU 9000\nphysical id\t: 0\ncore id\t\t: ${core}\nflags\t\t: ${flags}\n`;
  it('reads the model, the ISA flags, physical cores and hardware threads', () => {
    const flags = 'fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl';
    const m = parseCpuinfo([block(0, 0, flags), block(1, 0, flags), block(2, 1, flags), block(3, 1, flags)].join('\n'));
    expect(m).toEqual({
      model: 'Test CPU 9000', cpuid: { vendor: 'AuthenticAMD', family: 25, model: 17, core: 'Zen 4' },
      isa: ['sse4_2', 'avx', 'avx2', 'fma', 'avx512f', 'avx512bw', 'avx512vl'], cores: 2, threads: 4,
    });
    expect(machineLine(m)).toBe('Test CPU 9000 (family 25 model 17: Zen 4), 2 cores / 4 threads, ISA sse4_2 avx avx2 fma avx512f avx512bw avx512vl');
  });
  it("names AMD's core generation from family and model (a VM may call both Zen 4 and Zen 5 just \"AMD EPYC\")", () => {
    const cases: Array<[number, number, string | null]> = [
      [26, 0x02, 'Zen 5'], [26, 0x44, 'Zen 5'], [26, 0x50, 'Zen 6'], [26, 0x30, null], [25, 0x11, 'Zen 4'], [25, 0x61, 'Zen 4'],
      [25, 0x80, 'Zen 4'], [25, 0xb0, null], [25, 0x01, 'Zen 3'], [25, 0x21, 'Zen 3'], [23, 0x31, 'Zen 2'], [23, 0x51, 'Zen or Zen+'],
      [23, 0x08, 'Zen or Zen+'], [6, 143, null],
    ];
    expect(cases.map(([f, m]) => amdCore(f, m))).toEqual(cases.map(([, , core]) => core));
    const intel = parseCpuinfo('processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Xeon\n');
    expect(intel.cpuid).toEqual({ vendor: 'GenuineIntel', family: 6, model: 143, core: null });
    expect(machineLine(intel)).toBe('Xeon (family 6 model 143), 1 logical cores, ISA unknown');
  });
  it('says unknown rather than guessing when fields are missing', () => {
    expect(parseCpuinfo('processor\t: 0\n')).toEqual({ model: 'unknown', cpuid: null, isa: [], cores: null, threads: 1 });
  });
});
