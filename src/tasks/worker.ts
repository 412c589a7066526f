/**
 * Worker-thread entry of pretrainInWorker(): runs pretrain() off the main
 * thread and relays its events. The addon keeps its state per environment, so
 * it loads here like in any thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pretrain } from './pretrain.js';

const port = parentPort;
if (!port) throw new Error('cloze/tasks/worker.js runs only as a worker thread');
const ac = new AbortController();
if (workerData.aborted) ac.abort();
port.on('message', (m) => {
  if (m === 'abort') ac.abort();
});
pretrain(workerData.config, {
  signal: ac.signal,
  output: null,
  onStep: (s) => port.postMessage({ type: 'step', data: s }),
  onEval: (e) => port.postMessage({ type: 'eval', data: e }),
})
  .then((r) => port.postMessage({ type: 'done', data: r }))
  .catch((e: Error & { code?: string }) => port.postMessage({ type: 'error', data: { message: e.message, code: e.code } }));
