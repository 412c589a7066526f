/**
 * Which device a run uses, and the trainer's CUDA stream.
 *
 * 'auto' picks cuda when the cuda addon is loaded and a GPU answers, else the
 * CPU; 'cuda' insists and says why it cannot. Mixed precision ('bf16')
 * computes in bfloat16 on the GPU with fp32 master weights in the optimizer.
 */
import { ClozeError } from './errors.js';
import { loadAddon, native } from './native/loader.js';
import type { CudaStream, Device } from './native/types.js';

export type DeviceChoice = 'auto' | Device;
export type Precision = 'auto' | 'fp32' | 'bf16';

/** Why the cuda device cannot be used here, or null when it can. */
export function cudaUnavailableReason(): string | null {
  const { variant, path } = loadAddon();
  if (variant !== 'cuda') {
    return `the loaded addon is the CPU build (${path}); build the CUDA addon with \`npm run build:cuda\` on a machine with the CUDA toolkit`;
  }
  const a = native().cudaAvailable();
  return a.available ? null : a.reason;
}

export function resolveDevice(choice: DeviceChoice): Device {
  if (choice === 'cpu') return 'cpu';
  const why = cudaUnavailableReason();
  if (choice === 'cuda' && why) throw new ClozeError('E_DEVICE', `Expected a usable CUDA device for device 'cuda' but ${why}`);
  return why ? 'cpu' : 'cuda';
}

/** The dtype parameters are moved to: bf16 only on cuda (the CPU has no bf16 kernels). */
export function resolvePrecision(p: Precision, device: Device): 'float32' | 'bfloat16' {
  if (p === 'bf16' && device === 'cpu') {
    throw new ClozeError('E_DEVICE', "Expected precision 'fp32' or 'auto' on the CPU but received 'bf16' (bfloat16 compute is CUDA-only)");
  }
  if (p === 'fp32') return 'float32';
  return device === 'cuda' ? 'bfloat16' : 'float32';
}

/** One line naming the device, for logs: "cuda: NVIDIA H100 80GB HBM3 (sm 9.0, driver 12080, runtime 13000)". */
export function describeDevice(device: Device): string {
  if (device === 'cpu') {
    const i = native().info();
    return `cpu: ${i.threads} threads, GEMM ${i.gemm === 'blas' ? i.blas : 'built-in'}`;
  }
  const c = native().cudaInfo();
  return `cuda: ${c.name} (sm ${c.computeCapability}, driver ${c.driverVersion}, runtime ${c.runtimeVersion})`;
}

/**
 * A stream of the trainer's own, current while the trainer runs: launches are
 * asynchronous on it, and release() makes the default stream current again
 * (synchronizing first) before destroying it.
 */
export class TrainerStream {
  private stream: CudaStream | null;

  constructor(device: Device) {
    this.stream = device === 'cuda' ? native().cudaCreateStream() : null;
    if (this.stream) native().cudaSetStream(this.stream);
  }

  release(): void {
    if (!this.stream) return;
    native().cudaSetStream(null);
    native().cudaDestroyStream(this.stream);
    this.stream = null;
  }
}
