/** Data-parallel training: which communicator a run uses. */
import { isMainThread } from 'node:worker_threads';
import { ClozeError } from '../errors.js';
import { DEFAULT_COLLECTIVE_TIMEOUT_MS, MpiCommunicator, SingleProcess, type Communicator } from './communicator.js';
import { launchedByMpi } from './launch.js';

export { launchedByMpi, localRank } from './launch.js';
export { gradientPath, gradientsThroughNccl, NcclCommunicator, ncclSupport, releaseGradients } from './nccl.js';
export { DEFAULT_COLLECTIVE_TIMEOUT_MS, MpiCommunicator, SingleProcess, distributedSupport, type Communicator } from './communicator.js';

/** The process-wide communicator: MPI may be initialised once per process. */
let current: Communicator | null = null;

/**
 * The communicator of a run with `--distributed mode`: 'auto' is MPI when the process was started by an
 * MPI launcher, else one process; 'on' is MPI and must be started by one (the trainer then runs its
 * collectives even at one rank: `mpirun -np 1` takes the data-parallel path, NCCL's on a single GPU);
 * 'off' is always one process (each rank of an mpirun job trains alone).
 */
export function openCommunicator(mode: string, timeoutMs = DEFAULT_COLLECTIVE_TIMEOUT_MS): Communicator {
  if (mode !== 'auto' && mode !== 'on' && mode !== 'off') throw new ClozeError('E_VALUE', `Expected distributed 'auto', 'on' or 'off' but received ${JSON.stringify(mode)}`);
  if (mode === 'on' && !launchedByMpi()) {
    throw new ClozeError('E_VALUE', `Expected a process started by an MPI launcher (mpirun -np N) for distributed 'on' but received one started without it; run it under mpirun, or pass distributed 'auto'`);
  }
  if (mode === 'off' || !launchedByMpi()) return new SingleProcess();
  // MPI is initialised FUNNELED: only the thread that initialised it may call it, and that is the main one.
  if (!isMainThread) throw new ClozeError('E_VALUE', `Expected data-parallel training on the main thread (MPI is initialised FUNNELED) but received a worker thread (pretrainInWorker); call pretrain(), or pass distributed 'off'`);
  if (current instanceof MpiCommunicator && current.timeoutMs === timeoutMs) return current;
  const first = current === null;
  current = new MpiCommunicator(timeoutMs);
  // MPI_Finalize as the process ends (mpirun counts a rank that exits without it as failed). After an error
  // a collective may still be pending and finalize refuses: the rank then exits unfinalized, as it failed.
  if (first) {
    process.once('exit', () => {
      try {
        current?.finalize();
      } catch {
        // nothing more to do while exiting
      }
    });
  }
  return current;
}
