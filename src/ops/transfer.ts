/**
 * Moving a tensor between devices and changing its dtype, as tape ops: the
 * gradient of a transfer is the transfer back, and the gradient of a cast is
 * the cast back. Transfers are always explicit: no op moves data by itself.
 */
import { expected } from '../errors.js';
import type { Device, DType } from '../native/types.js';
import { record, type Tensor } from '../tensor.js';

export function toDevice(x: Tensor, device: Device): Tensor {
  if (device !== 'cpu' && device !== 'cuda') throw expected("'cpu' or 'cuda'", 'device', device, 'E_DEVICE');
  if (x.device === device) return x;
  const from = x.device;
  return record('to', [x.native.to(device)], [x], ([g]) => [g ? g.to(from) : null])[0]!;
}

const FLOATS: readonly DType[] = ['float32', 'float64', 'bfloat16'];

export function castTo(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const from = x.dtype;
  const differentiable = FLOATS.includes(from) && FLOATS.includes(dtype);
  return record('cast', [x.native.cast(dtype)], differentiable ? [x] : [null], ([g]) => [g ? g.cast(from) : null])[0]!;
}
