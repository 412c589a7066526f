/**
 * Ctrl-C during a training command: abort the run (which saves a checkpoint) instead of killing the process, then
 * exit with 130 (128 + SIGINT, the shell's convention), as `npx`, which gets the same SIGINT, does: a script can tell
 * a run that was stopped from one that finished.
 */
export const INTERRUPTED_EXIT_CODE = 130;

export async function untilInterrupted<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\ninterrupted: saving a checkpoint…\n');
    process.exitCode = INTERRUPTED_EXIT_CODE;
    ac.abort();
  };
  process.once('SIGINT', onSigint);
  try {
    return await run(ac.signal);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
