/**
 * The device layer as seen from the CPU addon: bfloat16 storage (cast, read,
 * write, fill), explicit transfers, the clear refusals of CUDA requests, and
 * the JS pieces of mixed precision that run anywhere (Module.to, casting
 * state dicts, checkpoints of bf16 tensors). The CUDA paths themselves are in
 * test/ops/ (each family's [cuda] cases) and test/cuda/, and run where a GPU is
 * present.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { add, backward, Linear, loadSafetensors, mul, Rng, saveSafetensors, sum, tensor, zeros } from '../src/index.js';
import { gradcheck } from './helpers/gradcheck.js';
import { native, loadAddon } from '../src/native/loader.js';
import { cudaUnavailableReason, resolveDevice, resolvePrecision } from '../src/device.js';
import { pretrain } from '../src/tasks/pretrain.js';

const cpuAddon = loadAddon().variant === 'cpu';
const dir = mkdtempSync(join(tmpdir(), 'cloze-device-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// bfloat16 rounding (nearest even), written independently of the addon's.
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  const lsb = (u[0]! >>> 16) & 1;
  u[0] = (Math.floor((u[0]! + 0x7fff + lsb) / 65536) * 65536) >>> 0;
  return f[0]!;
}

describe('bfloat16 on the CPU', () => {
  const vals = [0, 1, -1.5, 3.14159265, 1e-3, -65504, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -9, 1e30];

  it('casts float32 to bfloat16 rounding to nearest even, and widens exactly', () => {
    const t = tensor(vals, [vals.length], 'float32');
    const h = t.native.cast('bfloat16');
    expect(h.dtype).toBe('bfloat16');
    expect(h.nbytes).toBe(2 * vals.length);
    expect(Array.from(h.read())).toEqual(vals.map(bf16));
    expect(Array.from(h.cast('float64').read())).toEqual(vals.map(bf16));
    // Ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 and goes to the even one (1).
    expect(bf16(1 + 2 ** -8)).toBe(1);
    expect(bf16(1 + 3 * 2 ** -8)).toBe(1 + 2 ** -6);
  });

  it('is written from a Float32Array and filled with rounded values', () => {
    const h = zeros([4], 'bfloat16');
    h.native.write(new Float32Array([0.1, 0.2, 0.3, 0.4]));
    expect(Array.from(h.toArray())).toEqual([0.1, 0.2, 0.3, 0.4].map(bf16));
    h.native.fill(0.7);
    expect(Array.from(h.toArray())).toEqual(new Array(4).fill(bf16(0.7)));
    expect(() => h.native.write(new Float64Array(4))).toThrow(/Expected a typed array matching bfloat16 for values/);
  });

  it('has no zero-copy view and no CPU kernels, and says so', () => {
    const h = zeros([2], 'bfloat16');
    expect(() => h.data()).toThrow(/bfloat16 has no JS typed array/);
    expect(() => native().add(h.native, h.native)).toThrow(/Expected a float32 or float64 tensor for a but received bfloat16 tensor \[2\]/);
  });
});

describe('transfers and casts on the tape', () => {
  it('to() on the same device returns the tensor itself; cast() carries the gradient back', () => {
    const x = tensor([1, 2, 3], [3], 'float64');
    x.requiresGrad = true;
    expect(x.to('cpu')).toBe(x);
    const y = x.cast('float32');
    expect(y.dtype).toBe('float32');
    backward(sum(y));
    expect(x.grad!.dtype).toBe('float64');
    expect(Array.from(x.grad!.toArray())).toEqual([1, 1, 1]);
  });

  it('cast() has finite-difference gradients through float32 and bfloat16 and back (float64 leaves)', () => {
    // f is quadratic, so central differences are exact but for f's rounding in the narrow dtype: steps and bounds
    // sized for it (float32 about 1e-7, bfloat16 about 4e-3 relative).
    const rng = new Rng(3);
    const x = tensor(Array.from({ length: 9 }, () => rng.uniform() * 2 - 1), [9], 'float64');
    x.requiresGrad = true;
    gradcheck(([a]) => {
      const c = a!.cast('float32');
      return mul(c, add(c, c)).cast('float64');
    }, [x], { eps: 1e-2, tol: { atol: 1e-4, rtol: 1e-4 } });
    // bfloat16 has no CPU kernels: a round trip through it (each cast hands its gradient back as the other cast).
    gradcheck(([a]) => mul(a!.cast('bfloat16').cast('float64'), a!), [x], { eps: 1e-1, tol: { atol: 2e-2, rtol: 2e-2 } });
  });

  it('rejects a device name that is not cpu or cuda', () => {
    const x = tensor([1], [1]);
    expect(() => x.to('gpu' as 'cuda')).toThrow(/Expected 'cpu' or 'cuda' for device but received/);
    expect(() => zeros([1], 'float32', 'tpu' as 'cpu')).toThrow(/Expected 'cpu' or 'cuda' for device/);
  });
});

describe.runIf(cpuAddon)('CUDA requests on the CPU addon', () => {
  it('refuses cuda tensors with E_DEVICE and names the build command', () => {
    expect(() => native().empty('float32', [2], 'cuda')).toThrow(/CPU addon.*npm run build:cuda/);
    try {
      tensor([1, 2], [2]).native.to('cuda');
      expect.unreachable();
    } catch (e) {
      expect((e as { code: string }).code).toBe('E_DEVICE');
      expect((e as Error).message).toMatch(/^tensor\.to: /);
    }
  });

  it('answers cudaAvailable with the reason, and the CUDA runtime calls with E_DEVICE', () => {
    const a = native().cudaAvailable();
    expect(a.available).toBe(false);
    expect(a.reason).toMatch(/CPU build/);
    for (const f of ['cudaInfo', 'cudaSynchronize', 'cudaMemStats', 'cudaReleaseCache', 'cudaCreateStream'] as const) {
      expect(() => (native()[f] as () => unknown)()).toThrow(/npm run build:cuda/);
    }
  });

  it('resolves auto to the CPU, refuses cuda and bf16 on the CPU with the reason', () => {
    expect(cudaUnavailableReason()).toMatch(/CPU build/);
    expect(resolveDevice('auto')).toBe('cpu');
    expect(() => resolveDevice('cuda')).toThrow(/Expected a usable CUDA device for device 'cuda' but the loaded addon is the CPU build/);
    expect(resolvePrecision('auto', 'cpu')).toBe('float32');
    expect(() => resolvePrecision('bf16', 'cpu')).toThrow(/bfloat16 compute is CUDA-only/);
  });

  it('pretrain with device cuda stops before any work, naming the reason', async () => {
    await expect(pretrain({ device: 'cuda', out: join(dir, 'run'), maxSteps: 1 }, { output: null })).rejects.toThrow(
      /Expected a usable CUDA device for device 'cuda'/,
    );
  });
});

describe('Module.to and mixed-precision state', () => {
  it('moves parameters in place to another dtype, and the module still computes', () => {
    const lin = new Linear(3, 2, { rng: new Rng(1) });
    const w = lin.weight;
    const before = Array.from(w.toArray());
    lin.to('cpu', 'float64');
    expect(lin.weight).toBe(w);
    expect(w.dtype).toBe('float64');
    expect(lin.bias!.dtype).toBe('float64');
    expect(Array.from(w.toArray())).toEqual(before);
    const y = lin.forward(tensor([1, 2, 3], [1, 3], 'float64'));
    expect(y.dtype).toBe('float64');
    lin.dispose();
  });

  it('loads a float32 state dict into a bfloat16 module (rounded) and back', () => {
    const a = new Linear(4, 3, { rng: new Rng(2) });
    const b = new Linear(4, 3, { rng: new Rng(3) }).to('cpu', 'bfloat16');
    b.loadStateDict(a.stateDict());
    expect(Array.from(b.weight.toArray())).toEqual(Array.from(a.weight.toArray(), bf16));
    const c = new Linear(4, 3, { rng: new Rng(4) });
    c.loadStateDict(b.stateDict());
    expect(Array.from(c.weight.toArray())).toEqual(Array.from(b.weight.toArray()));
    for (const m of [a, b, c]) m.dispose();
  });

  it('writes bfloat16 tensors to safetensors widened to F32, loadable anywhere', () => {
    const h = tensor([0.1, -2.3, 7], [3], 'float32').cast('bfloat16');
    const f = join(dir, 'bf16.safetensors');
    saveSafetensors(f, { h });
    const back = loadSafetensors(f);
    expect(back.h!.dtype).toBe('float32');
    expect(Array.from(back.h!.toArray())).toEqual([0.1, -2.3, 7].map(bf16));
  });
});

describe("checkFloat follows the backend's float kernels per device", () => {
  // A CPU tensor whose device field says cuda: checkFloat reads only the fields (the native rule it mirrors,
  // ArgReader::want_float, is exercised on a real GPU by npm run test:cuda).
  const onCuda = <T extends object>(t: T): T => Object.defineProperty(t, 'device', { value: 'cuda' });
  it('takes float32 and bfloat16 on cuda, float32 and float64 on the CPU, and names the rule it applied', async () => {
    const { checkFloat } = await import('../src/validate.js');
    const f64 = tensor([1, 2], [2], 'float64');
    const bf = tensor([1, 2], [2], 'bfloat16');
    const f32 = tensor([1, 2], [2], 'float32');
    expect(() => checkFloat(f64, 'x')).not.toThrow();
    expect(() => checkFloat(bf, 'x')).toThrow('Expected a float32 or float64 tensor for x but received bfloat16 tensor [2]');
    expect(() => checkFloat(onCuda(bf), 'x')).not.toThrow();
    expect(() => checkFloat(onCuda(f32), 'x')).not.toThrow();
    expect(() => checkFloat(onCuda(f64), 'x')).toThrow(/Expected a float32 or bfloat16 tensor \(on cuda\) for x but received float64 tensor \[2\]/);
    for (const t of [f64, bf, f32]) Object.defineProperty(t, 'device', { value: 'cpu' });
    for (const t of [f64, bf, f32]) t.dispose();
  });
});
