/**
 * A recorded op on the autograd tape. It holds its own handles on whatever it
 * saved for the backward pass, so users may dispose their tensors freely; the
 * node releases those handles right after its backward runs.
 */
import type { NativeTensor } from '../native/types.js';
import type { Tensor } from '../tensor.js';

export type BackwardFn = (grads: Array<NativeTensor | null>) => Array<NativeTensor | null>;

export class Node {
  readonly name: string;
  readonly inputs: ReadonlyArray<Tensor | null>;
  readonly numOutputs: number;
  private backwardFn: BackwardFn | null;
  private saved: NativeTensor[];

  constructor(name: string, inputs: Array<Tensor | null>, numOutputs: number, backward: BackwardFn, saved: NativeTensor[]) {
    this.name = name;
    this.inputs = inputs;
    this.numOutputs = numOutputs;
    this.backwardFn = backward;
    this.saved = saved;
  }

  get released(): boolean {
    return this.backwardFn === null;
  }

  run(grads: Array<NativeTensor | null>): Array<NativeTensor | null> {
    if (!this.backwardFn) {
      throw new Error(
        `backward through ${this.name} a second time: its saved tensors were freed after the first backward`,
      );
    }
    return this.backwardFn(grads);
  }

  /** Frees the saved handles; the node can no longer run. */
  release(): void {
    for (const s of this.saved) s.dispose();
    this.saved = [];
    this.backwardFn = null;
  }
}
