// The CUDA runtime: transfers, casts, fill, the allocator's reuse, streams,
// and the device check at the binding boundary.
import { expect, it } from 'vitest';
import { native } from '../../src/native/loader.js';
import { bf16, describeCuda, get, itOnDevice, pretendCuda, put } from '../helpers/cuda-harness.js';

describeCuda('runtime', () => {
  it('round-trips every dtype through the device, including odd sizes and empty tensors', () => {
    for (const n of [0, 1, 7, 1023, 4099]) {
      const vals = Array.from({ length: n }, (_, i) => ((i * 37) % 101) - 50);
      for (const dt of ['float32', 'float64', 'int32', 'bfloat16'] as const) {
        const c = put(vals, [n], dt, 'cuda');
        expect(c.device).toBe('cuda');
        const back = c.to('cpu');
        expect(back.device).toBe('cpu');
        expect(Array.from(get(back))).toEqual(vals);
        c.dispose();
        back.dispose();
      }
    }
  });

  it('casts on the device as the CPU does, bfloat16 rounding to nearest even', () => {
    const vals = [1.0, -2.5, 3.14159, 1e-3, 65504, 1 + 2 ** -8, 1 + 3 * 2 ** -9];
    const c = put(vals, [vals.length], 'float32', 'cuda');
    const h = c.cast('bfloat16');
    expect(h.device).toBe('cuda');
    expect(Array.from(get(h))).toEqual(vals.map(bf16));
    const cpu = put(vals, [vals.length], 'float32', 'cpu').cast('bfloat16');
    expect(Array.from(get(cpu))).toEqual(Array.from(get(h)));
    const i = c.cast('int32');
    expect(Array.from(get(i))).toEqual(vals.map((v) => Math.trunc(v)));
  });

  it('fills on the device', () => {
    const c = native().empty('bfloat16', [5, 3], 'cuda');
    c.fill(0.3);
    expect(Array.from(get(c))).toEqual(new Array(15).fill(bf16(0.3)));
  });

  it('reuses freed blocks instead of calling cudaMalloc every step', () => {
    const step = () => {
      const t = native().empty('float32', [1024, 1024], 'cuda');
      t.dispose();
    };
    step();
    const before = native().cudaMemStats().mallocCalls;
    for (let i = 0; i < 20; i++) step();
    expect(native().cudaMemStats().mallocCalls).toBe(before);
  });

  itOnDevice('counts a reused block at its own size, so live bytes return to where they were', () => {
    // A cached 10 MiB block serves a later 8 MiB request (within a quarter);
    // freeing it must subtract what was added, not drive the count below its start.
    native().cudaSynchronize();
    native().cudaReleaseCache();
    const start = native().cudaMemStats().liveBytes;
    native().empty('float32', [10 * 2 ** 18], 'cuda').dispose();
    native().cudaResetPeak();
    const calls = native().cudaMemStats().mallocCalls;
    const t = native().empty('float32', [8 * 2 ** 18], 'cuda');
    expect(native().cudaMemStats().mallocCalls).toBe(calls);  // the cached block, not a new one
    expect(native().cudaMemStats().liveBytes - start).toBe(10 * 2 ** 20);
    t.dispose();
    expect(native().cudaMemStats().liveBytes).toBe(start);
    expect(native().cudaMemStats().peakBytes).toBe(start + 10 * 2 ** 20);
  });

  it('uploads through the pinned staging slots: the source may change at once, more uploads than slots, and large ones', () => {
    // 20 small uploads (the staging has 8 slots of 1 MiB, reused in turn) and one of 2 MiB (the waiting path);
    // each source array is overwritten right after its upload, so a copy that read it late would show it.
    // Tens of milliseconds of products are queued first, so the uploads' copies wait behind them: a slot
    // rewritten before its copy ran (no wait for its event) would hand the 9th upload's values to the 1st.
    const n0 = pretendCuda ? 64 : 2048;
    const m = put(Array.from({ length: n0 * n0 }, (_, i) => ((i % 7) - 3) * 1e-3), [n0, n0], 'float32', 'cuda');
    try {
      for (let r = 0; r < (pretendCuda ? 1 : 60); r++) native().matmul(m, m, false, r % 2 === 1).dispose();
      const sizes = [...Array.from({ length: 20 }, (_, i) => 1 + 37 * i), 2 ** 19];
      const uploaded = sizes.map((n, k) => {
        const src = Float32Array.from({ length: n }, (_, i) => k * 1000 + i);
        const want = Array.from(src);
        const t = native().empty('float32', [n], 'cuda');
        t.write(src);
        src.fill(-1);
        return { t, want };
      });
      for (const { t, want } of uploaded) {
        expect(Array.from(t.read())).toEqual(want);
        t.dispose();
      }
    } finally {
      m.dispose();
    }
  });

  it('runs on a stream of its own and synchronizes when switching back', () => {
    const s = native().cudaCreateStream();
    native().cudaSetStream(s);
    const c = put([1, 2, 3], [3], 'float32', 'cuda');
    expect(Array.from(get(c.clone()))).toEqual([1, 2, 3]);
    native().cudaSetStream(null);
    native().cudaDestroyStream(s);
  });

  itOnDevice('refuses mixed devices with a message that names the argument', () => {
    const a = put([1, 2], [2], 'float32', 'cuda');
    const b = put([1, 2], [2], 'float32', 'cpu');
    expect(() => native().add(a, b)).toThrow(/Expected a cuda tensor .* for b but received cpu float32 tensor \[2\]/);
  });

  itOnDevice('reports the device', () => {
    const info = native().cudaInfo();
    expect(info.name.length).toBeGreaterThan(0);
    expect(info.multiprocessors).toBeGreaterThan(0);
    expect(native().info().backend).toBe('cuda');
  });
});
