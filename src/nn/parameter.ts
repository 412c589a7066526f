/** A trainable leaf tensor. `decay` says whether AdamW's weight decay applies by default. */
import { keep } from '../autograd/mode.js';
import type { NativeTensor } from '../native/types.js';
import { Tensor } from '../tensor.js';

export class Parameter extends Tensor {
  decay: boolean;
  constructor(handle: NativeTensor, opts: { decay?: boolean } = {}) {
    super(handle, true);
    this.decay = opts.decay ?? true;
    // Parameters live as long as their module, not the scope they were made in.
    keep(this);
  }

  static from(t: Tensor, opts: { decay?: boolean } = {}): Parameter {
    const p = new Parameter(t.native.clone(), opts);
    t.dispose();
    return p;
  }
}
