/**
 * concatRows: tensors stacked along their first dimension, as torch.cat(ts, 0). Its backward hands each input
 * a view of the gradient's rows (no copy). The fused QKV projection (src/nn/qkv.ts) stacks the query,
 * key and value weights with it, so that one GEMM replaces three.
 */
import { native } from '../native/loader.js';
import { expected } from '../errors.js';
import { record, type Tensor } from '../tensor.js';
import { checkSameDtype, checkTensor } from '../validate.js';

export function concatRows(ts: readonly Tensor[]): Tensor {
  if (!Array.isArray(ts) || ts.length === 0) throw expected('a non-empty array of tensors', 'tensors', ts);
  ts.forEach((t, i) => checkTensor(t, `tensors[${i}]`));
  const first = ts[0]!;
  if (first.shape.length === 0) throw expected('tensors of rank 1 or more', 'tensors[0]', first, 'E_SHAPE');
  const rest = first.shape.slice(1);
  ts.forEach((t, i) => {
    checkSameDtype(first, t, `tensors[${i}]`);
    if (t.device !== first.device) throw expected(`a ${first.device} tensor, as tensors[0]`, `tensors[${i}]`, t, 'E_DEVICE');
    if (t.shape.length !== first.shape.length || t.shape.slice(1).some((d: number, j: number) => d !== rest[j])) {
      throw expected(`a shape [*, ${rest.join(', ')}] (tensors[0]'s after its first dimension)`, `tensors[${i}]`, t, 'E_SHAPE');
    }
  });
  const rows = ts.reduce((n, t) => n + t.shape[0]!, 0);
  const out = native().empty(first.dtype, [rows, ...rest], first.device);
  const offsets: number[] = [];
  let off = 0;
  try {
    for (const t of ts) {
      offsets.push(off);
      const dst = out.view(off, t.shape);
      try {
        dst.copyFrom(t.native);
      } finally {
        dst.dispose();
      }
      off += t.size;
    }
  } catch (e) {
    out.dispose();
    throw e;
  }
  return record('concatRows', [out], [...ts], ([g]) => ts.map((t, i) => (t.requiresGrad ? g!.view(offsets[i]!, t.shape) : null)))[0]!;
}
