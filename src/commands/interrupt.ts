/** Ctrl-C during a training command: abort the run (which saves a checkpoint) instead of killing the process. */
export async function untilInterrupted<T>(run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const ac = new AbortController();
  const onSigint = (): void => {
    process.stderr.write('\ninterrupted: saving a checkpoint…\n');
    ac.abort();
  };
  process.once('SIGINT', onSigint);
  try {
    return await run(ac.signal);
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}
