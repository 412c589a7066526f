/**
 * The pieces of the bucketed gradient all-reduce (src/train/grad-buckets.ts), in one process: the backward's
 * leaf-ready hook (once per leaf, after its last use, tied weights included), AdamW's buckets (each buffer covered
 * once, last parameters first, at most the size asked unless one parameter is larger), and the tracker's order of
 * starts against a fake all-reduce. The 2-rank equivalence is in test/distributed.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { backward } from '../src/autograd/backward.js';
import { scope } from '../src/autograd/mode.js';
import { Linear } from '../src/nn/layers.js';
import { linear } from '../src/ops/linalg.js';
import { add, gelu, sum } from '../src/ops/elementwise.js';
import { AdamW } from '../src/optim/adamw.js';
import { Rng } from '../src/rng.js';
import { GradientBuckets } from '../src/train/grad-buckets.js';
import { tensor, type Tensor } from '../src/tensor.js';
import type { NativeTensor } from '../src/native/types.js';

function net() {
  const rng = new Rng(3);
  const l1 = new Linear(4, 8, { rng });
  const l2 = new Linear(8, 3, { rng });
  const x = tensor(Array.from({ length: 20 }, (_, i) => Math.sin(i)), [5, 4]);
  // l1's and l2's weights are each used twice (as a tied weight is): in their layers and again in a second branch.
  const loss = (): Tensor => sum(add(l2.forward(gelu(l1.forward(x))), linear(gelu(linear(x, l1.weight)), l2.weight)));
  return { l1, l2, loss, params: [l1.weight, l1.bias!, l2.weight, l2.bias!] };
}

describe('backward hooks', () => {
  it('report each leaf once, after the last node that takes it, the last layer first', () => {
    const { l1, l2, loss } = net();
    const ready: string[] = [];
    let nodes = 0;
    const at = new Map<string, number>();
    const name = new Map<Tensor, string>([[l1.weight, 'w1'], [l1.bias!, 'b1'], [l2.weight, 'w2'], [l2.bias!, 'b2']]);
    scope(() => backward(loss(), undefined, {
      onLeafReady: (leaf) => {
        ready.push(name.get(leaf) ?? 'input');
        at.set(name.get(leaf) ?? 'input', nodes);
      },
      afterNode: () => void nodes++,
    }));
    expect([...ready].sort()).toEqual(['b1', 'b2', 'w1', 'w2']);
    // Every parameter's gradient was final when reported: the weights' last uses come before the first layer's.
    expect(at.get('b2')!).toBeLessThan(at.get('w1')!);
    expect(at.get('w2')!).toBeLessThan(at.get('w1')!);
    // w1 is taken by the very first products, so it is final only during the last node (the hook runs before afterNode).
    expect(at.get('w1')).toBe(nodes - 1);
  });

  it('fire nothing without hooks asking, and the gradients are those of a plain backward', () => {
    const a = net();
    const b = net();
    scope(() => backward(a.loss()));
    scope(() => backward(b.loss(), undefined, { onLeafReady: () => {} }));
    a.params.forEach((p, i) => expect(Array.from(b.params[i]!.grad!.toArray())).toEqual(Array.from(p.grad!.toArray())));
  });
});

describe("AdamW's gradient buckets", () => {
  it('cover each flat buffer once, last parameters first, each within the size unless one parameter exceeds it', () => {
    const { params } = net();
    const opt = new AdamW(params, { lr: 1e-3 });
    // Groups: decayed [w1 (32), w2 (24)] and not decayed [b1 (8), b2 (3)], float32.
    const b = opt.gradBuckets(100);
    const sizes = b.map((x) => x.view.shape[0]);
    expect(b.map((x) => x.params.map((p) => p.size))).toEqual([[24], [32], [3, 8]]);
    expect(sizes).toEqual([24, 32, 11]);
    const whole = opt.gradBuckets(1e9);
    expect(whole.map((x) => x.params.length)).toEqual([2, 2]);
    // The views are the flat buffers' memory: a write through a bucket shows in the parameter's gradient.
    b[0]!.view.fill(7);
    expect(Array.from(params[2]!.grad!.toArray()).every((v) => v === 7)).toBe(true);
    expect(() => opt.gradBuckets(0)).toThrow(/maxBytes/);
  });
});

describe('GradientBuckets', () => {
  it('starts each bucket once, as soon as its parameters are final, and the rest at finish', () => {
    const { loss, params } = net();
    const opt = new AdamW(params, { lr: 1e-3 });
    const started: number[] = [];
    const waited: number[] = [];
    const start = (t: NativeTensor) => {
      started.push(t.shape[0]!);
      return { test: () => false, wait: () => void waited.push(t.shape[0]!) };
    };
    const buckets = new GradientBuckets(opt, start, 100);
    expect(buckets.count).toBe(3);
    buckets.arm();
    scope(() => backward(loss(), undefined, buckets.hooks));
    const inside = started.length;
    const r = buckets.finish();
    expect(r).toEqual({ total: 3, startedInBackward: inside });
    expect(inside).toBe(3);
    expect([...started].sort()).toEqual([11, 24, 32]);
    expect([...waited].sort()).toEqual([11, 24, 32]);
    // w2's bucket is complete before w1's (the backward reaches the last layer first).
    expect(started.indexOf(24)).toBeLessThan(started.indexOf(32));
    // A step whose backward never ran the hooks (no parameter became final): finish starts and waits on all.
    started.length = 0;
    buckets.arm();
    expect(buckets.finish()).toEqual({ total: 3, startedInBackward: 0 });
    expect(started.length).toBe(3);
  });
});
