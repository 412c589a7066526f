/**
 * Ctrl-C during a training command: abort the run (which saves a checkpoint) instead of killing the process, then
 * exit with 130 (128 + SIGINT, the shell's convention), as `npx`, which gets the same SIGINT, does: a script can tell
 * a run that was stopped from one that finished.
 */
import { launchedByMpi } from '../distributed/launch.js';

export const INTERRUPTED_EXIT_CODE = 130;

export async function untilInterrupted<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\ninterrupted: saving a checkpoint…\n');
    process.exitCode = INTERRUPTED_EXIT_CODE;
    ac.abort();
  };
  // Under an MPI launcher, Ctrl-C reaches the ranks as SIGTERM (Open MPI's mpirun sends it, then SIGKILL), and
  // `kill -USR2 <mpirun>` is forwarded to every rank: both stop the run at the next step boundary (agreed by
  // all ranks) and save, as SIGINT does for one process.
  const signals: NodeJS.Signals[] = launchedByMpi() ? ['SIGINT', 'SIGTERM', 'SIGUSR2'] : ['SIGINT'];
  for (const s of signals) process.once(s, onSigint);
  try {
    return await run(ac.signal);
  } finally {
    for (const s of signals) process.removeListener(s, onSigint);
  }
}
