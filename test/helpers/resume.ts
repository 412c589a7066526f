/**
 * The exact-resume check every trainer's tests make: one run straight to its
 * last step, and one stopped (an abort) after `stopAt` steps then resumed in
 * the same directory. A test asserts the two loss sequences are equal.
 */
import { join } from 'node:path';

type Train = (
  cfg: Record<string, unknown>,
  hooks: { output: null; signal?: AbortSignal; onStep: (s: { step: number; loss: number }) => void },
) => Promise<{ step: number; stopped: string }>;

export async function straightAndResumed(train: Train, cfg: Record<string, unknown>, dir: string, stopAt: number): Promise<{
  straight: number[]; resumed: number[]; stoppedAt: number; finalStep: number;
}> {
  const straight: number[] = [];
  await train({ ...cfg, out: join(dir, 'straight') }, { output: null, onStep: (s) => straight.push(s.loss) });
  const resumed: number[] = [];
  const ac = new AbortController();
  const first = await train({ ...cfg, out: join(dir, 'resumed') }, {
    output: null,
    signal: ac.signal,
    onStep: (s) => {
      resumed.push(s.loss);
      if (s.step === stopAt) ac.abort();
    },
  });
  const second = await train({ ...cfg, out: join(dir, 'resumed'), resume: true }, { output: null, onStep: (s) => resumed.push(s.loss) });
  return { straight, resumed, stoppedAt: first.stopped === 'aborted' ? first.step : -1, finalStep: second.step };
}
