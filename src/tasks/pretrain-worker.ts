/**
 * pretrain() on a worker thread. A training step is synchronous native work
 * (seconds for bert-base), so run in-process it holds the event loop for a
 * whole step; on a worker, the caller's event loop never waits on training.
 * Same config, hooks and result as pretrain(); aborting saves and stops.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { ClozeError, type ErrorCode } from '../errors.js';
import { packageRoot } from '../native/loader.js';
import type { ProbeResult } from '../eval/probe.js';
import type { RunConfig } from './config.js';
import type { EvalResult } from './mlm/evaluate.js';
import type { PretrainResult, StepInfo } from './pretrain.js';

export interface WorkerHooks {
  signal?: AbortSignal;
  onStep?: (s: StepInfo) => void;
  onEval?: (e: EvalResult | ProbeResult) => void;
}

type Message =
  | { type: 'step'; data: StepInfo }
  | { type: 'eval'; data: EvalResult | ProbeResult }
  | { type: 'done'; data: PretrainResult }
  | { type: 'error'; data: { message: string; code?: string } };

export function pretrainInWorker(config: Partial<RunConfig> | Record<string, unknown>, hooks: WorkerHooks = {}): Promise<PretrainResult> {
  // The worker runs compiled JavaScript, from dist/ (built by npm ci / npm run build:ts).
  const file = join(packageRoot(), 'dist', 'src', 'tasks', 'worker.js');
  if (!existsSync(file)) {
    return Promise.reject(new ClozeError('E_IO', `Expected the compiled worker at ${file} for pretrainInWorker but received no such file; run npm run build:ts`));
  }
  return new Promise((resolve, reject) => {
    // An already-aborted signal travels with the start: a message would arrive only after the first step.
    const worker = new Worker(file, { workerData: { config, aborted: hooks.signal?.aborted === true } });
    let settled = false;
    const onAbort = (): void => worker.postMessage('abort');
    if (hooks.signal?.aborted) onAbort();
    hooks.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      hooks.signal?.removeEventListener('abort', onAbort);
      // Native thread pools loaded in the worker (the tokenizers binding's) would keep it alive.
      void worker.terminate();
      fn();
    };
    worker.on('message', (m: Message) => {
      if (m.type === 'step') hooks.onStep?.(m.data);
      else if (m.type === 'eval') hooks.onEval?.(m.data);
      else if (m.type === 'done') finish(() => resolve(m.data));
      else finish(() => reject(new ClozeError((m.data.code ?? 'E_INTERNAL') as ErrorCode, m.data.message)));
    });
    worker.on('error', (e) => finish(() => reject(e)));
    worker.on('exit', (code) => finish(() => reject(new ClozeError('E_INTERNAL', `the training worker exited with code ${code} before finishing`))));
  });
}
