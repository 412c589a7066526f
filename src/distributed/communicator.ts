/**
 * The communicator data-parallel training runs over: this process's rank,
 * the world size, and an in-place SUM all-reduce. One process is the
 * degenerate case (rank 0 of 1, every reduction the identity), so the trainer
 * has one code path.
 */
import { ClozeError } from '../errors.js';
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import { checkNumber } from '../validate.js';
import { ncclSupport } from './nccl.js';

export interface Communicator {
  readonly rank: number;
  readonly size: number;
  /** Rank 0: the one that writes checkpoints, metrics and progress. */
  readonly isRoot: boolean;
  /** 'single', 'mpi' or 'nccl', for messages. */
  readonly kind: string;
  /**
   * In-place SUM over all ranks of a float tensor: CPU (float32/float64) through MPI; cuda (float32/bfloat16)
   * through NCCL, or through host copies and MPI (the 'mpi' backend: MpiCommunicator).
   */
  allreduceSum(t: NativeTensor): void;
  /** allreduceSum of several tensors, all started before the first is waited on. */
  allreduceSumAll(ts: readonly NativeTensor[]): void;
  /**
   * allreduceSum started and not waited on (MPI only; absent where the trainer must reduce after the backward):
   * `t` must not be touched until `wait()`. `test()` pushes the collective on (Open MPI progresses only inside MPI
   * calls) and says whether it has completed. Every rank must start the same collectives in the same order.
   */
  startAllreduceSum?(t: NativeTensor): PendingReduce;
  /** The element-wise SUM over all ranks of a few numbers (losses, token counts). */
  sumNumbers(xs: readonly number[]): number[];
  /** In place, from `root` to every rank: a few bytes (NCCL's unique id). */
  broadcastBytes(buf: Uint8Array, root: number): void;
  /** Waits until every rank has reached it. */
  /** Waits for every rank, at most `timeoutMs` (default: the collectives' bound). */
  barrier(timeoutMs?: number): void;
  /** Ends every rank of the job with `code` (MPI_Abort); a single process exits. */
  abort(code: number): never;
  finalize(): void;
}

/** A started all-reduce. */
export interface PendingReduce {
  test(): boolean;
  wait(): void;
}

/** One process: rank 0 of 1. */
export class SingleProcess implements Communicator {
  readonly rank = 0;
  readonly size = 1;
  readonly isRoot = true;
  readonly kind = 'single';
  // One rank: every sum is the tensor itself (the parameters are the interface's, so callers typed by the class
  // pass them too).
  allreduceSum(_t: NativeTensor): void {}
  allreduceSumAll(_ts: readonly NativeTensor[]): void {}
  sumNumbers(xs: readonly number[]): number[] {
    return [...xs];
  }
  broadcastBytes(): void {}
  barrier(): void {}
  abort(code: number): never {
    process.exit(code);
  }
  finalize(): void {}
}

/** Default bound on one collective: long enough for rank 0's evaluation and checkpoint while the others wait. */
export const DEFAULT_COLLECTIVE_TIMEOUT_MS = 600_000;

/**
 * A host copy of a cuda tensor for MPI, which reduces host memory: float32 as it is, bfloat16 widened to float32
 * (exactly), so that the ranks' sum is rounded to bfloat16 once, when it goes back (NCCL sums in bfloat16).
 */
function stage(t: NativeTensor): NativeTensor {
  const host = t.to('cpu');
  if (t.dtype !== 'bfloat16') return host;
  try {
    return host.cast('float32');
  } finally {
    host.dispose();
  }
}

/** Writes a staged tensor's summed values back into the cuda tensor it was copied from, and frees the copy. */
function unstage(t: NativeTensor, host: NativeTensor): void {
  try {
    if (t.dtype !== 'bfloat16') {
      t.copyFrom(host);
      return;
    }
    const narrow = host.cast('bfloat16');
    try {
      t.copyFrom(narrow);
    } finally {
      narrow.dispose();
    }
  } finally {
    host.dispose();
  }
}

/**
 * MPI_COMM_WORLD through the addon. Every collective is started non-blocking and waited on with
 * `timeoutMs`: a rank that died or stalled makes the others throw (naming the collective and the bound)
 * instead of hanging in MPI forever. cuda tensors (a cuda run with `--distributed-backend mpi`) are reduced
 * through host copies, as PyTorch's gloo backend reduces cuda tensors: each copy waits for the stream, so this is
 * slower than NCCL, but it needs no NCCL and lets several ranks share one GPU, which NCCL refuses.
 * (A collective that fails ends the job; a staged copy whose wait threw is left to the process's exit, since MPI
 * may still write into it.)
 */
export class MpiCommunicator implements Communicator {
  readonly rank: number;
  readonly size: number;
  readonly kind = 'mpi';
  constructor(readonly timeoutMs = DEFAULT_COLLECTIVE_TIMEOUT_MS) {
    checkNumber(timeoutMs, 'timeoutMs', 1);
    const a = native().mpiAvailable();
    if (!a.available) throw new ClozeError('E_VALUE', `Expected an addon built with MPI for distributed training but received one ${a.reason}`);
    const { rank, size } = native().mpiInit();
    this.rank = rank;
    this.size = size;
  }
  get isRoot(): boolean {
    return this.rank === 0;
  }
  allreduceSum(t: NativeTensor): void {
    this.allreduceSumAll([t]);
  }
  allreduceSumAll(ts: readonly NativeTensor[]): void {
    if (this.size === 1) return;
    const host: Array<NativeTensor | null> = [];
    try {
      for (const t of ts) host.push(t.device === 'cuda' ? stage(t) : null);
    } catch (e) {
      // No collective has started yet: the copies made so far can go.
      for (const h of host) h?.dispose();
      throw e;
    }
    const handles = ts.map((t, i) => native().mpiIallreduce(host[i] ?? t));
    for (const h of handles) native().mpiWait(h, this.timeoutMs);
    ts.forEach((t, i) => {
      if (host[i]) unstage(t, host[i]!);
    });
  }
  startAllreduceSum(t: NativeTensor): PendingReduce {
    // Staged at one rank too (--distributed on under mpirun -np 1 runs every collective): MPI reduces host memory only.
    let host = t.device === 'cuda' ? stage(t) : null;
    let h: number;
    try {
      h = native().mpiIallreduce(host ?? t);
    } catch (e) {
      host?.dispose();  // refused before any collective started: nothing writes into the copy
      throw e;
    }
    let done = false;
    // The sums go back to the device once, when the collective is first seen complete.
    const complete = (): void => {
      done = true;
      const copy = host;
      host = null;
      if (copy) unstage(t, copy);
    };
    return {
      test: () => {
        if (!done && native().mpiTest(h)) complete();
        return done;
      },
      wait: () => {
        // Also after a test() that saw it complete: mpiWait releases the handle.
        native().mpiWait(h, this.timeoutMs);
        if (!done) complete();
      },
    };
  }
  sumNumbers(xs: readonly number[]): number[] {
    if (this.size === 1) return [...xs];
    const t = native().fromTypedArray(Float64Array.from(xs), [xs.length]);
    try {
      this.allreduceSum(t);
      return Array.from(t.read() as Float64Array);
    } finally {
      t.dispose();
    }
  }
  broadcastBytes(buf: Uint8Array, root: number): void {
    if (this.size === 1) return;
    native().mpiBroadcast(buf, root);
  }
  barrier(timeoutMs = this.timeoutMs): void {
    if (this.size === 1) return;
    native().mpiWait(native().mpiIbarrier(), timeoutMs);
  }
  abort(code: number): never {
    native().mpiAbort(code);
    // MPI_Abort does not return on a working MPI; if it ever does, end this rank anyway.
    process.exit(code);
  }
  finalize(): void {
    native().mpiFinalize();
  }
}

/** What `cloze info` prints: whether this addon can run MPI (and NCCL) data parallelism. */
export function distributedSupport(): { mpi: string; nccl: string } {
  const a = native().mpiAvailable();
  return { mpi: a.available ? `available (${a.library})` : `not available: ${a.reason}`, nccl: ncclSupport() };
}
