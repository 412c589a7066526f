/**
 * Reverse-mode traversal of the tape. Gradients flow as native handles; each
 * node is run once, after every consumer of its outputs, then released.
 */
import type { NativeTensor } from '../native/types.js';
import { native } from '../native/loader.js';
import { axpyInPlace } from '../ops/elementwise.js';
import { Tensor } from '../tensor.js';
import { expected } from '../errors.js';
import { Node } from './node.js';
import { keep } from './mode.js';

function accumulate(slot: NativeTensor | null, g: NativeTensor): NativeTensor {
  if (!slot) return g;
  axpyInPlace(slot, g, 1);
  g.dispose();
  return slot;
}

/** Accumulates into a leaf's .grad, in place when it already has one (flat optimizer buffers). */
function depositLeafGrad(t: Tensor, g: NativeTensor): void {
  if (t.grad && !t.grad.disposed) {
    axpyInPlace(t.grad.native, g, 1);
    g.dispose();
  } else {
    // A leaf's gradient belongs to the leaf, not to whatever scope backward ran in.
    t.grad = keep(new Tensor(g.reshape(t.shape)));
    g.dispose();
  }
}

/**
 * Backpropagates from `root`. Without `grad`, root must have one element and
 * the seed is 1. Saved activations are freed as each node finishes.
 */
/** Calls into a backward as it runs (the data-parallel trainer's gradient buckets). */
export interface BackwardHooks {
  /** A leaf's gradient is final: every node of this backward that takes it has run. */
  onLeafReady?(leaf: Tensor): void;
  /** After each node. */
  afterNode?(): void;
}

export function backward(root: Tensor, grad?: Tensor, hooks: BackwardHooks | null = null): void {
  if (!root.requiresGrad) throw expected('a tensor that requires grad', 'backward() root', root, 'E_STATE');
  let seed: NativeTensor;
  if (grad) {
    if (grad.shape.join() !== root.shape.join() || grad.dtype !== root.dtype) {
      throw expected(`a ${root.dtype} gradient of shape [${root.shape.join(', ')}]`, 'grad', grad, 'E_SHAPE');
    }
    // The seed flows into the root's backward, whose kernels run on the root's device.
    if (grad.device !== root.device) throw expected(`a gradient on the root's device (${root.device})`, 'grad', `a ${grad.device} tensor`, 'E_DEVICE');
    seed = grad.native.clone();
  } else {
    if (root.size !== 1) throw expected('a one-element root (or an explicit grad)', 'backward() root', root, 'E_SHAPE');
    seed = native().empty(root.dtype, root.shape, root.device);
    seed.fill(1);
  }
  if (!root.gradFn) {
    depositLeafGrad(root, seed);
    return;
  }

  // Topological order: a node runs after every node that consumes its outputs.
  const order: Node[] = [];
  const visited = new Set<Node>();
  const stack: Array<[Node, number]> = [[root.gradFn, 0]];
  visited.add(root.gradFn);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [node, i] = top;
    if (i < node.inputs.length) {
      top[1]++;
      const child = node.inputs[i]?.gradFn;
      if (child && !visited.has(child) && node.inputs[i]!.requiresGrad) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(node);
    }
  }
  order.reverse();

  // Per leaf that wants a gradient: the uses left among the nodes to run (the ready hook fires at zero).
  const usesLeft = new Map<Tensor, number>();
  if (hooks?.onLeafReady) {
    for (const node of order) for (const inp of node.inputs) if (inp && inp.requiresGrad && !inp.gradFn) usesLeft.set(inp, (usesLeft.get(inp) ?? 0) + 1);
  }
  const used = (leaf: Tensor): void => {
    const n = usesLeft.get(leaf);
    if (n === undefined) return;
    if (n > 1) usesLeft.set(leaf, n - 1);
    else {
      usesLeft.delete(leaf);
      hooks!.onLeafReady!(leaf);
    }
  };
  const pending = new Map<Node, Array<NativeTensor | null>>();
  pending.set(root.gradFn, Array.from({ length: root.gradFn.numOutputs }, (_, k) => (k === root.outputIndex ? seed : null)));
  try {
    for (const node of order) {
      const grads = pending.get(node) ?? new Array<NativeTensor | null>(node.numOutputs).fill(null);
      pending.delete(node);
      let inGrads: Array<NativeTensor | null> = [];
      if (grads.some((g) => g !== null)) inGrads = node.run(grads);
      for (const g of grads) g?.dispose();
      node.release();
      node.inputs.forEach((inp, k) => {
        const g = inGrads[k];
        if (!g) return;
        if (!inp || !inp.requiresGrad) {
          g.dispose();
          return;
        }
        if (inp.gradFn) {
          let slots = pending.get(inp.gradFn);
          if (!slots) {
            slots = new Array<NativeTensor | null>(inp.gradFn.numOutputs).fill(null);
            pending.set(inp.gradFn, slots);
          }
          slots[inp.outputIndex] = accumulate(slots[inp.outputIndex] ?? null, g);
        } else {
          depositLeafGrad(inp, g);
        }
      });
      if (usesLeft.size > 0) for (const inp of node.inputs) if (inp && inp.requiresGrad && !inp.gradFn) used(inp);
      hooks?.afterNode?.();
    }
  } finally {
    for (const slots of pending.values()) for (const g of slots) g?.dispose();
    for (const node of order) node.release();
  }
}
