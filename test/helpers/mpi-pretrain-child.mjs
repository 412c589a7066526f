// One rank of test/distributed.test.ts's data-parallel runs, started by
// `mpirun -np N node mpi-pretrain-child.mjs <job.json>`. It runs the compiled
// pretrain() (dist/, as pretrainInWorker does), or finetune() for job.kind 'finetune', with the job's config; rank 0
// writes the per-step losses to job.result. A fault can be injected from the
// onStep hook: `throwAt` {rank, step} throws there, `stallAt` {rank, step}
// blocks that rank (as a hung process would), so that the others' collective
// times out.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const job = JSON.parse(readFileSync(process.argv[2], 'utf8'));
// job.kind 'finetune' runs the compiled finetune() instead (test/distributed-finetune.test.ts).
const pretrain = job.kind === 'finetune'
  ? (await import(join(root, 'dist', 'src', 'tasks', 'run-finetune.js'))).finetune
  : (await import(join(root, 'dist', 'src', 'tasks', 'pretrain.js'))).pretrain;
const rank = Number(process.env.OMPI_COMM_WORLD_RANK ?? process.env.PMI_RANK ?? 0);
const steps = [];
const r = await pretrain(job.config, {
  output: null,
  onStep: (s) => {
    steps.push({ step: s.step, loss: s.loss, gradNorm: s.gradNorm, allreduceMs: s.allreduceMs ?? null, buckets: s.buckets ?? null, tokensPerSec: s.tokensPerSec });
    if (job.throwAt && job.throwAt.rank === rank && job.throwAt.step === s.step) throw new Error(`injected failure at step ${s.step}`);
    if (job.stallAt && job.stallAt.rank === rank && job.stallAt.step === s.step) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600_000);
  },
});
if (rank === 0 && job.result) writeFileSync(job.result, JSON.stringify({ steps, checkpoint: r.checkpoint, step: r.step }));
