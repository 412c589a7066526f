/**
 * The device API the cuda MLM step is written against, while it is being
 * added to cloze (Tensor.to, Module.to, AdamW's masterWeights). The bench
 * reaches it through these few functions so that it compiles before and
 * after the API lands, and so that a missing method is one clear skip line
 * ("cloze has no Module.to(device, dtype) yet") instead of a TypeError deep
 * in a step. Once the API is on main these become direct calls.
 */
import { AdamW, type AdamWOptions } from '../../src/optim/adamw.js';
import type { Module } from '../../src/nn/module.js';
import type { Parameter } from '../../src/nn/parameter.js';
import type { Device, DType, Tensor } from '../../src/tensor.js';

/** A method of the device API is not there (yet). */
export class MissingDeviceApi extends Error {}

type Fn = (...args: unknown[]) => unknown;

function method(obj: object, name: string, what: string): Fn {
  const f = (obj as Record<string, unknown>)[name];
  if (typeof f !== 'function') throw new MissingDeviceApi(`cloze has no ${what} yet (the device API bench:cuda is written against)`);
  return (f as Fn).bind(obj);
}

/** Tensor.to(device): a copy on `device`. */
export function tensorTo(t: Tensor, device: Device): Tensor {
  return method(t, 'to', 'Tensor.to(device)')(device) as Tensor;
}

/**
 * Module.to(device, dtype): moves parameters and buffers in place; with
 * 'bfloat16' the floating-point parameters are cast too.
 */
export function moduleTo(m: Module, device: Device, dtype?: DType): void {
  method(m, 'to', 'Module.to(device, dtype)')(device, dtype);
}

/**
 * AdamW keeping float32 master weights (and moments) for bfloat16
 * parameters: the step updates the masters and writes them back rounded to
 * bf16. The option cannot be probed from outside: an AdamW that ignored it
 * would update bf16 weights directly, which this bench would not notice.
 */
export function adamwWithMasterWeights(params: Parameter[], opts: AdamWOptions): AdamW {
  const withMaster: AdamWOptions & { masterWeights: boolean } = { ...opts, masterWeights: true };
  return new AdamW(params, withMaster);
}
