/**
 * Where a run's model lives, as the MLM task does it: on cuda the module moves
 * (cast to bfloat16 under mixed precision) before the optimizer flattens its
 * parameters there, and a trainer stream of its own is current while the run
 * trains; on the CPU nothing moves, and --precision bf16 is refused (bfloat16
 * compute is CUDA-only). Every per-step input then goes to `device` (and
 * floating inputs to `dtype`) once, through `input`.
 */
import { resolveDevice, resolvePrecision, TrainerStream, type DeviceChoice, type Precision } from '../device.js';
import type { DType, Device } from '../native/types.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor.js';

export interface Placement {
  device: Device;
  /** The dtype of the model's floating parameters: float32, or bfloat16 under mixed precision on cuda. */
  dtype: 'float32' | 'bfloat16';
  /** A floating batch tensor (images) on the model's device and in its dtype; this tensor itself when already there. */
  input(t: Tensor): Tensor;
  /** Makes the default stream current again; call it when the run's tensors are disposed. */
  release(): void;
}

/** Resolves the run's device and precision, and moves `modules` (the model, and anything that trains with it) there. */
export function placeModel(modules: readonly Module[], cfg: { device: string; precision: string }): Placement {
  const device = resolveDevice(cfg.device as DeviceChoice);
  // Checked on the CPU too: bf16 there is refused rather than ignored.
  const dtype = resolvePrecision(cfg.precision as Precision, device);
  const stream = new TrainerStream(device);
  if (device === 'cuda') for (const m of modules) m.to('cuda', dtype);
  return {
    device,
    dtype,
    // The CPU keeps its inputs as given (its float64 tests included).
    input: (t) => {
      if (device === 'cpu') return t;
      const moved = t.to(device);
      return moved.dtype === dtype || !isFloating(moved.dtype) ? moved : moved.cast(dtype);
    },
    release: () => stream.release(),
  };
}

function isFloating(d: DType): boolean {
  return d === 'float32' || d === 'float64' || d === 'bfloat16';
}
