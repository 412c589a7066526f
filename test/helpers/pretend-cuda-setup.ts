/**
 * `npm run test:cuda-pretend` (vitest.pretend-cuda.config.ts): the [cuda] tests on a pretend device, for a machine
 * without a GPU. It checks the tests' own code (inputs, references, tolerances, option names, the TypeScript paths
 * of the tasks on cuda) before a short GPU session spends its minutes on them; it says nothing of the CUDA kernels,
 * whose results here are the CPU kernels'.
 *
 * - The addon is wrapped by fake-cuda.ts (cuda tensors are CPU tensors tagged as cuda; a host tensor reaching a
 *   cuda op is refused) and its device queries answer as one GPU would.
 * - bfloat16, which no CPU kernel takes, is emulated around each call: bfloat16 arguments go in as float32 copies,
 *   in-place updates are rounded back into them, and float32 results come back as bfloat16, but for those the cuda
 *   addon keeps in float32 (statistics, lse, norms). So a fused op rounds only at its own boundary, as the device's
 *   kernels do.
 * - src/device.js answers 'cuda' when asked for it (as test/device-plumbing.test.ts does), so the [cuda] task tests
 *   train on the pretend device.
 * - Tests of what only a real device does (deferred index errors, its error wording, bf16 refusals, the allocator,
 *   the mma kernels' paths) are written with `itOnDevice` (test/helpers/cuda-harness.ts) and skipped here.
 */
import { vi } from 'vitest';

vi.mock('../../src/native/loader.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../src/native/loader.js')>();
  const { wrapAddon } = await import('./fake-cuda.js');
  const { bf16Emulation } = await import('./pretend-bf16.js');
  const wrapped = wrapAddon(bf16Emulation(real.native() as never) as never);
  // loadAddon() too: the benches' profiler synchronizes through the raw addon.
  return { ...real, native: () => wrapped, loadAddon: () => ({ ...real.loadAddon(), addon: wrapped }) };
});

vi.mock('../../src/device.js', async (importOriginal) => {
  const { pretendDeviceModule } = await import('./fake-cuda.js');
  return pretendDeviceModule(await importOriginal<typeof import('../../src/device.js')>());
});
