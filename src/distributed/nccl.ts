/**
 * Data parallelism on cuda: the gradient all-reduce runs through NCCL on the
 * trainer's stream, over device memory, while the ranks, the small sums
 * (losses, token counts, the stop flag), barriers and aborts stay on the host
 * communicator (MPI) that started them. MPI also carries NCCL's unique id
 * from rank 0 to the others, which is all NCCL needs to join them.
 *
 * Unverified on a GPU (this was written on a machine without one): it
 * compiles in the cuda addon and its CPU-addon refusal is tested; see the
 * README's data-parallel section.
 */
import { ClozeError } from '../errors.js';
import { native } from '../native/loader.js';
import type { NativeTensor } from '../native/types.js';
import type { Communicator } from './communicator.js';
import { localRank } from './launch.js';

/** NCCL_UNIQUE_ID_BYTES. */
const UNIQUE_ID_BYTES = 128;

export class NcclCommunicator implements Communicator {
  readonly kind = 'nccl';
  /** The NCCL communicator's handle; null once destroyed or aborted. */
  private comm: number | null;

  /**
   * Joins the ranks of `host` in an NCCL communicator. Selects this rank's GPU (local rank % GPUs), so it must
   * come before the model is placed. Every rank must call it (ncclCommInitRank waits for all of them).
   */
  constructor(readonly host: Communicator, readonly timeoutMs: number, local = localRank()) {
    const a = native().ncclAvailable();
    if (!a.built) throw new ClozeError('E_DEVICE', `Expected the cuda addon for NCCL (data parallelism on cuda, ${host.size} ranks) but received the CPU addon: ${a.reason}`);
    if (!a.available) throw new ClozeError('E_DEVICE', `Expected a loadable NCCL (libnccl.so.2) for data parallelism on cuda (${host.size} ranks) but received: ${a.reason}; install NCCL 2.x, or pass --device cpu`);
    const id = host.rank === 0 ? native().ncclGetUniqueId() : new Uint8Array(UNIQUE_ID_BYTES);
    host.broadcastBytes(id, 0);
    this.comm = native().ncclCommInitRank(id, host.rank, host.size, local);
  }
  get rank(): number {
    return this.host.rank;
  }
  get size(): number {
    return this.host.size;
  }
  get isRoot(): boolean {
    return this.host.isRoot;
  }
  private handle(): number {
    if (this.comm === null) throw new ClozeError('E_STATE', `Expected a live NCCL communicator but received one already closed (rank ${this.rank} of ${this.size})`);
    return this.comm;
  }
  allreduceSum(t: NativeTensor): void {
    this.allreduceSumAll([t]);
  }
  /** cuda tensors: every NCCL all-reduce queued on the stream, then one bounded wait; CPU tensors go to the host's. */
  allreduceSumAll(ts: readonly NativeTensor[]): void {
    const onCuda = ts.filter((t) => t.device === 'cuda');
    const onHost = ts.filter((t) => t.device !== 'cuda');
    if (onCuda.length > 0) {
      const h = this.handle();
      for (const t of onCuda) native().ncclAllReduce(h, t);
      native().ncclWait(h, this.timeoutMs);
    }
    if (onHost.length > 0) this.host.allreduceSumAll(onHost);
  }
  sumNumbers(xs: readonly number[]): number[] {
    return this.host.sumNumbers(xs);
  }
  broadcastBytes(buf: Uint8Array, root: number): void {
    this.host.broadcastBytes(buf, root);
  }
  barrier(timeoutMs?: number): void {
    this.host.barrier(timeoutMs);
  }
  /** Ends the NCCL communicator's pending work without waiting for peers (a failed run); the host stays. */
  abortComm(): void {
    if (this.comm === null) return;
    const h = this.comm;
    this.comm = null;
    try {
      native().ncclCommAbort(h);
    } catch {
      // a failed run ends its job next either way; the first error is the one to report
    }
  }
  /** abortComm, then ends the job through the host communicator. */
  abort(code: number): never {
    this.abortComm();
    return this.host.abort(code);
  }
  /** Destroys the NCCL communicator (the end of a run); the host communicator stays for the process. */
  close(): void {
    if (this.comm === null) return;
    const h = this.comm;
    this.comm = null;
    native().ncclCommDestroy(h);
  }
  finalize(): void {
    this.close();
    this.host.finalize();
  }
}

/**
 * For a data-parallel run (`what`, over `ranks` ranks) that resolved to cuda: true when NCCL loads, so its gradients
 * go through an NcclCommunicator; false when it does not and the device asked for was 'auto' (the run falls back to
 * the CPU); an explicit 'cuda' is refused naming NCCL's reason. Shared by pretrain and finetune.
 */
export function gradientsThroughNccl(asked: string, ranks: number, what: string): boolean {
  const a = native().ncclAvailable();
  if (a.available) return true;
  if (asked === 'cuda') throw new ClozeError('E_DEVICE', `Expected a loadable NCCL for ${what} on cuda (${ranks} ranks) but received: ${a.reason}; install NCCL 2.x, or pass --device cpu`);
  return false;
}

/**
 * The end of a run whose gradients went through `grads`: an NCCL communicator is destroyed after a finished run
 * (that waits for its work), and aborted after a failure, where a peer may never complete it (the caller then ends
 * the job with MPI_Abort). A host communicator is left to its owner.
 */
export function releaseGradients(grads: Communicator, finished: boolean): void {
  if (!(grads instanceof NcclCommunicator)) return;
  if (finished) grads.close();
  else grads.abortComm();
}

/** How a data-parallel run's gradients travel, for its device line: NCCL, host copies over MPI (cuda), or MPI. */
export function gradientPath(nccl: boolean, cuda: boolean): string {
  if (nccl) return 'MPI, gradients through NCCL';
  return cuda ? 'MPI, gradients through host copies' : 'MPI';
}

/** What `cloze info` prints for NCCL. */
export function ncclSupport(): string {
  const a = native().ncclAvailable();
  if (!a.built) return 'not built (CPU addon)';
  return a.available ? `available (${a.version})` : `not loadable: ${a.reason}`;
}
