/**
 * Data-parallel fine-tuning over MPI (issue 18): `mpirun -np 2` at per-rank batch 4 against one process at batch 8,
 * for mlp-ft ([CLS] head, whose dropout rows are sequences) and mvp (templates: 4 sequences an example), dropout
 * on, packed batches, and a training set whose last global batch has one example (so rank 1 has none and joins
 * the all-reduce with a zero loss); then the refusals. Skipped, with the reason in its name, where mpirun or an
 * MPI build of the addon is missing (the child runs the compiled dist/).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { rankSlice } from '../src/tasks/finetune/task.js';
import { finetune, type StepInfo } from '../src/tasks/run-finetune.js';
import { mpirun2 as mpirunJob, mpiSkipReason } from './helpers/mpi-run.js';
import { pretrainTinyEncoder } from './helpers/tiny-encoder.js';

const skipReason = mpiSkipReason(join('src', 'tasks', 'run-finetune.js'));

describe('rankSlice', () => {
  it('splits a global batch into contiguous slices that differ by at most one and cover it', () => {
    for (const [n, size] of [[8, 2], [9, 2], [1, 2], [10, 3], [7, 4]] as const) {
      const parts = Array.from({ length: size }, (_, r) => rankSlice(n, r, size));
      expect(parts[0]!.lo).toBe(0);
      expect(parts.at(-1)!.hi).toBe(n);
      for (let r = 1; r < size; r++) expect(parts[r]!.lo).toBe(parts[r - 1]!.hi);
      const lens = parts.map((p) => p.hi - p.lo);
      expect(Math.max(...lens) - Math.min(...lens)).toBeLessThanOrEqual(1);
    }
    expect(rankSlice(1, 0, 2)).toEqual({ lo: 0, hi: 0 });
    expect(rankSlice(1, 1, 2)).toEqual({ lo: 0, hi: 1 });
  });
});

const mpirun2 = (dir: string, name: string, job: Record<string, unknown>, limitS = 120) => mpirunJob(dir, name, { kind: 'finetune', ...job }, limitS);

function maxParamDiff(a: string, b: string): number {
  const x = loadCheckpoint(a);
  const y = loadCheckpoint(b);
  try {
    expect(Object.keys(y.model).sort()).toEqual(Object.keys(x.model).sort());
    let m = 0;
    for (const [k, t] of Object.entries(x.model)) {
      const u = t.toArray();
      const v = y.model[k]!.toArray();
      for (let i = 0; i < u.length; i++) m = Math.max(m, Math.abs(u[i]! - v[i]!));
    }
    return m;
  } finally {
    x.dispose();
    y.dispose();
  }
}

describe.skipIf(skipReason !== '')(`data-parallel fine-tuning, 2 MPI ranks ${skipReason}`, () => {
  const root = mkdtempSync(join(tmpdir(), 'cloze-mpi-ft-'));
  let base: Record<string, unknown> = {};
  beforeAll(async () => {
    const pre = await pretrainTinyEncoder(root);
    const rows = readFileSync(join(__dirname, 'fixtures', 'finetune', 'who.jsonl'), 'utf8').trim().split('\n');
    // 41 training examples: at a global batch of 8 the last one holds a single example.
    writeFileSync(join(root, 'train.jsonl'), rows.slice(0, 41).join('\n') + '\n');
    writeFileSync(join(root, 'test.jsonl'), rows.slice(200).join('\n') + '\n');
    writeFileSync(join(root, 'verbalizer.json'), JSON.stringify({ animal: ['cat', 'dog', 'bird'], person: ['friend', 'teacher', 'farmer'] }));
    base = {
      initFrom: pre, taskData: join(root, 'train.jsonl'), testData: join(root, 'test.jsonl'), maxLength: 24, epochs: 2, lr: 1e-3, threads: 1,
      logEvery: 1, saveEvery: 6, keepLast: 3,
      // AdamW's eps at 1e-6 (the pre-training default) instead of fine-tuning's 1e-8: see TOL.
      eps: 1e-6,
    };
  }, 120_000);

  // The bound of test/distributed.test.ts, for the same reason: only the order of float32 sums over rows differs.
  // With fine-tuning's eps of 1e-8, AdamW turns gradients that are pure rounding noise into steps of about lr: the
  // attention key biases have an exact gradient of 0 (softmax ignores a constant added to a row), and two runs
  // drifted up to 2.6e-6 (mlp-ft) and 1.2e-5 (mvp) over 12 steps. eps 1e-6 keeps noise of that size from being
  // normalised up, as the pre-training test's default does. Even then mvp's head transform (whose gradient comes only
  // from the label words' rows) drifted up to 2.8e-6 in four runs (each trains its own tiny encoder): parameters are
  // held to 1e-5, and so are the losses after step 1 (one mvp run in CI differed by 1.07e-6 at a later step, over the
  // 1e-6 first set from a single measurement of 6e-7); step 1's loss stays at 1e-6. A real fault (a dropped or repeated example, another dropout mask) moves losses by ~1e-2 and
  // parameters by ~lr = 1e-3 in one step, 100× over either bound.
  const TOL = 1e-6;
  const PARAM_TOL = 1e-5;

  // --adv: PGD's random start drawn at the rank's rows of the global packed batch (rowOffset); its step normalises
  // each sequence's gradient on its own, so the ranks perturb as the single process does.
  // ASA (--method asa, mvp --asa): padded batches, each rank padding to the global batch's longest sequence.
  for (const [name, method, adv, asa] of [
    ['mlp-ft', 'mlp-ft', false, false], ['mvp', 'mvp', false, false], ['mlp-ft-adv', 'mlp-ft', true, false], ['mvp-adv', 'mvp', true, false],
    ['mask-tune', 'mask-tune', false, false], ['asa', 'asa', false, false], ['mvp-asa', 'mvp', false, true],
  ] as const) {
    it(`${name}: 2 ranks at batch 4 give the losses, parameters and test scores of 1 process at batch 8 (dropout on)`, async () => {
      const extra = method === 'mvp' ? { template: ['[SEP] it is a [MASK] .', 'a [MASK} :'.replace('}', ']')], verbalizer: join(root, 'verbalizer.json') } : {};
      const cfg = { ...base, ...extra, method, adv, asa };
      const one: StepInfo[] = [];
      const r1 = await finetune({ ...cfg, batchSize: 8, out: join(root, `${name}-one`) }, { output: null, onStep: (s) => one.push(s) });
      const res = join(root, `${name}-two.result.json`);
      const run = await mpirun2(root, `${name}-two`, { config: { ...cfg, batchSize: 4, out: join(root, `${name}-two`) }, result: res });
      expect(run.stderr).not.toMatch(/failed/);
      expect(run.code).toBe(0);
      const two = JSON.parse(readFileSync(res, 'utf8')) as { steps: Array<{ step: number; loss: number }>; checkpoint: string };
      // 41 examples at 8: 6 steps an epoch, the last of one example.
      expect(one.length).toBe(12);
      expect(two.steps.map((s) => s.step)).toEqual(one.map((s) => s.step));
      // Step 1 runs from the same parameters: only the order of float sums differs. Later steps run from parameters
      // that AdamW has already moved apart by up to PARAM_TOL (below), and their losses follow those parameters.
      // The bounds are relative to the loss where it is over 1: ASA's adds τ²·(kept attention pairs) per sequence, about
      // 58 for mvp --asa at the first step, where one float32 ulp is 3.8e-6 (measured 1.9e-6 apart).
      const scaleOf = (v: number): number => Math.max(1, Math.abs(v));
      expect(Math.abs(one[0]!.loss - two.steps[0]!.loss)).toBeLessThanOrEqual(TOL * scaleOf(one[0]!.loss));
      // MVP pools label-word scores with a max: where two words' scores sit within round-off of each other, the two
      // runs can send the gradient to different words, and from then on they drift as any two runs whose gradients
      // differ once. Measured over 8 mvp runs and 8 of its --adv and --asa variants: at most 8.6e-7 (parameters) and
      // 3.6e-7 (losses), except one mvp run at 2.3e-5 on a later loss; the mvp variants are held to 1e-4, still 100x
      // under a real fault's ~1e-2.
      const tol = method === 'mvp' ? 1e-4 : PARAM_TOL;
      expect(Math.max(...one.map((s, i) => Math.abs(s.loss - two.steps[i]!.loss) / scaleOf(s.loss)))).toBeLessThanOrEqual(tol);
      expect(one.at(-1)!.loss).not.toBe(one[0]!.loss);
      expect(maxParamDiff(r1.checkpoint!, two.checkpoint)).toBeLessThanOrEqual(tol);
      // Rank 0 alone wrote: the same files as the single process, the same test-split evaluations.
      expect(readdirSync(join(root, `${name}-two`)).sort()).toEqual(readdirSync(join(root, `${name}-one`)).sort());
      const evals = (d: string) => readFileSync(join(root, d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((m) => m.kind === 'eval');
      const [e1, e2] = [evals(`${name}-one`), evals(`${name}-two`)];
      expect(e2.length).toBe(e1.length);
      expect(e2.map((e) => e.accuracy)).toEqual(e1.map((e) => e.accuracy));
      if (name !== 'mlp-ft') return;
      // Resume at another world size with the same global batch: the 2 × 4 run, cut back to its epoch-1 checkpoint,
      // finishes as 1 process × 8 and lands on the unbroken 1 × 8 run.
      const two2 = join(root, `${name}-two`);
      rmSync(join(two2, 'checkpoint-12'), { recursive: true });
      const resumed = await finetune({ ...cfg, batchSize: 8, out: two2, resume: true }, { output: null });
      expect(resumed.step).toBe(12);
      expect(maxParamDiff(r1.checkpoint!, resumed.checkpoint!)).toBeLessThanOrEqual(PARAM_TOL);
      // Another global batch (now that the run is a single process at 8) is refused, naming both.
      await expect(finetune({ ...cfg, batchSize: 4, out: two2, resume: true }, { output: null })).rejects.toThrow(/Expected batchSize 8 .* but received 4/);
    }, 180_000);
  }

});
