/**
 * The data-parallel gradient all-reduce in buckets that overlap the backward (issue 18; PyTorch DDP's reducer):
 * the optimizer's flat gradient buffers are cut into buckets of consecutive parameters, last layers first; the
 * backward reports each parameter whose gradient is final, and a bucket's all-reduce starts as soon as all of its
 * parameters are. After each node the started ones are tested, which is what moves them on (Open MPI progresses a
 * non-blocking collective only inside MPI calls). finish() starts what never became ready (parameters the step did
 * not use) and waits for everything. Every rank runs the same graph, so the buckets start in the same order on all.
 */
import type { BackwardHooks } from '../autograd/backward.js';
import type { PendingReduce } from '../distributed/communicator.js';
import type { AdamW } from '../optim/adamw.js';
import type { NativeTensor } from '../native/types.js';
import type { Tensor } from '../tensor.js';

interface Bucket {
  view: NativeTensor;
  size: number;
  left: number;
  pending: PendingReduce | null;
}

export class GradientBuckets {
  private readonly buckets: Bucket[];
  private readonly of = new Map<Tensor, Bucket>();
  private started: Bucket[] = [];
  private inBackward = 0;
  private armed = false;
  readonly hooks: BackwardHooks;

  constructor(opt: AdamW, private readonly startReduce: (t: NativeTensor) => PendingReduce, maxBytes: number) {
    this.buckets = opt.gradBuckets(maxBytes).map(({ view, params }) => {
      const b: Bucket = { view, size: params.length, left: params.length, pending: null };
      for (const p of params) this.of.set(p, b);
      return b;
    });
    this.hooks = {
      onLeafReady: (leaf) => {
        const b = this.of.get(leaf);
        if (!b || !this.armed) return;
        if (--b.left === 0) {
          this.start(b);
          this.inBackward++;
        }
      },
      afterNode: () => {
        for (const b of this.started) b.pending!.test();
      },
    };
  }

  get count(): number {
    return this.buckets.length;
  }

  /** Before the step's last backward: every bucket waits for all of its parameters again. */
  arm(): void {
    for (const b of this.buckets) {
      b.left = b.size;
      b.pending = null;
    }
    this.started = [];
    this.inBackward = 0;
    this.armed = true;
  }

  /** After the backward: starts the buckets not started yet (in bucket order), waits for all. */
  finish(): { total: number; startedInBackward: number } {
    if (!this.armed) this.arm();
    for (const b of this.buckets) if (!b.pending) this.start(b);
    for (const b of this.started) b.pending!.wait();
    this.armed = false;
    return { total: this.buckets.length, startedInBackward: this.inBackward };
  }

  private start(b: Bucket): void {
    b.pending = this.startReduce(b.view);
    this.started.push(b);
  }
}
