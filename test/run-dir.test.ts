/**
 * Runs that cannot clobber each other (issue 14, section 2): a directory holding a run is refused without
 * --resume or --overwrite; a resume must keep the settings that change the run; metrics are cut back to the
 * checkpoint on resume; a failed save names the checkpoint and keeps the last good one; a failed or
 * setup-interrupted run leaves nothing; a non-finite gradient norm stops the run; an already-aborted signal
 * stops before the first step.
 */
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdamW, add, mul, Parameter, pretrainInWorker, sum, tensor } from '../src/index.js';
import { castTo } from '../src/ops/transfer.js';
import { latestCheckpoint, listCheckpoints, loadCheckpoint, saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { Module } from '../src/nn/module.js';
import { pretrain } from '../src/tasks/pretrain.js';
import { finetune } from '../src/tasks/run-finetune.js';
import { runLoop, type TrainTask } from '../src/train/loop.js';
import { MetricsLog } from '../src/train/metrics.js';
import { truncateMetrics } from '../src/train/run-dir.js';
import { fixtureTokenizerIn, writeFixtureCorpus } from './helpers/fixture-corpus.js';

const root = fs.mkdtempSync(join(tmpdir(), 'cloze-rundir-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
let corpus = '';
let tokenizer = '';
// bert-tiny on 32-token sequences, a few steps.
const base = { maxLength: 32, batchSize: 8, evalBatches: 2, logEvery: 1, evalEvery: 100, saveEvery: 100, maxSteps: 4, threads: 0 };

beforeAll(async () => {
  corpus = writeFixtureCorpus(join(root, 'data'));
  tokenizer = fixtureTokenizerIn(root);
});

const cfg = (out: string, more: Record<string, unknown> = {}): Record<string, unknown> => ({ ...base, data: corpus, tokenizer, out: join(root, out), ...more });
const metricSteps = (out: string): number[] =>
  fs.readFileSync(join(root, out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((r) => r.kind === 'train').map((r) => r.step);

describe('a run directory that holds a run', () => {
  it('is refused without --resume, naming the directory; --overwrite clears it and starts again', async () => {
    const first = await pretrain(cfg('taken'), { output: null });
    expect(first.step).toBe(4);
    const before = fs.readFileSync(join(root, 'taken', 'metrics.jsonl'), 'utf8');
    await expect(pretrain(cfg('taken', { maxSteps: 2 }), { output: null })).rejects.toThrow(
      `${join(root, 'taken')} already holds a run (checkpoint-4, metrics.jsonl): pass --resume to continue it, --overwrite to delete it and start again, or choose another --out`,
    );
    // Nothing of the old run was touched by the refused one.
    expect(fs.readFileSync(join(root, 'taken', 'metrics.jsonl'), 'utf8')).toBe(before);
    expect(listCheckpoints(join(root, 'taken')).map((c) => c.step)).toEqual([4]);
    // A metrics log alone (a run killed before its first save) is a run too.
    fs.mkdirSync(join(root, 'metrics-only'));
    fs.writeFileSync(join(root, 'metrics-only', 'metrics.jsonl'), '{"kind":"train","step":1}\n');
    await expect(pretrain(cfg('metrics-only'), { output: null })).rejects.toThrow('already holds a run (metrics.jsonl)');

    const again = await pretrain(cfg('taken', { maxSteps: 2, overwrite: true }), { output: null });
    expect(again.step).toBe(2);
    expect(listCheckpoints(join(root, 'taken')).map((c) => c.step)).toEqual([2]);
    expect(metricSteps('taken')).toEqual([1, 2]);
    await expect(pretrain(cfg('taken', { resume: true, overwrite: true }), { output: null })).rejects.toThrow('Expected one of resume or overwrite');
  }, 60_000);

  it('is refused for fine-tuning too, before anything is written', async () => {
    const pre = latestCheckpoint(join(root, 'taken'))!;
    const labelled = join(root, 'labelled.jsonl');
    fs.writeFileSync(labelled, Array.from({ length: 24 }, (_, i) => JSON.stringify({ text: `the cat sees the ball ${i % 5}`, label: i % 2 === 0 ? 'a' : 'b' })).join('\n') + '\n');
    const ft = { taskData: labelled, initFrom: pre, method: 'mlp-ft', epochs: 1, batchSize: 8, maxLength: 32, out: join(root, 'ft') };
    const r = await finetune(ft, { output: null });
    expect(r.stopped).toBe('done');
    await expect(finetune(ft, { output: null })).rejects.toThrow(`${join(root, 'ft')} already holds a run`);
    await expect(finetune({ ...ft, epochs: 2, resume: true }, { output: null })).rejects.toThrow(/Expected epochs 1 \(the setting of the run in .*\) for resume but received 2/);
    const over = await finetune({ ...ft, overwrite: true }, { output: null });
    expect(over.step).toBe(r.step);
  }, 120_000);
});

describe('--resume', () => {
  it('refuses a change that alters the run, naming each field with its saved and new value', async () => {
    const ac = new AbortController();
    await pretrain(cfg('changed', { maxSteps: 8 }), { output: null, signal: ac.signal, onStep: (s) => s.step === 3 && ac.abort() });
    const dir = join(root, 'changed', 'checkpoint-3');
    await expect(pretrain(cfg('changed', { maxSteps: 16, resume: true }), { output: null })).rejects.toThrow(
      `Expected maxSteps 8 (the setting of the run in ${dir}) for resume but received 16`,
    );
    await expect(pretrain(cfg('changed', { maxSteps: 8, lr: 0.002, batchSize: 4, resume: true }), { output: null })).rejects.toThrow(
      `Expected batchSize 8, lr 0.001 (the settings of the run in ${dir}) for resume but received batchSize 4, lr 0.002`,
    );
    await expect(pretrain(cfg('changed', { maxSteps: 8, preset: 'bert-mini', resume: true }), { output: null })).rejects.toThrow('Expected preset "bert-tiny"');
    await expect(pretrain(cfg('changed', { maxSteps: 8, data: tokenizer, resume: true }), { output: null })).rejects.toThrow('Expected data');
    // Refused resumes wrote nothing.
    expect(listCheckpoints(join(root, 'changed')).map((c) => c.step)).toEqual([3]);
  }, 60_000);

  it('lets output and interval settings through: the losses stay those of an uninterrupted run, bit for bit', async () => {
    const straight: number[] = [];
    await pretrain(cfg('straight', { maxSteps: 8 }), { output: null, onStep: (s) => straight.push(s.loss) });
    const resumed: number[] = [];
    const ac = new AbortController();
    await pretrain(cfg('neutral', { maxSteps: 8 }), { output: null, signal: ac.signal, onStep: (s) => { resumed.push(s.loss); if (s.step === 3) ac.abort(); } });
    // Evaluating, logging and saving at other intervals (and keeping fewer checkpoints) changes no training loss.
    await pretrain(cfg('neutral', { maxSteps: 8, resume: true, logEvery: 2, evalEvery: 2, saveEvery: 2, keepLast: 1 }), { output: null, onStep: (s) => resumed.push(s.loss) });
    expect(resumed).toEqual(straight);
    expect(listCheckpoints(join(root, 'neutral')).map((c) => c.step)).toEqual([8]);
  }, 60_000);

  it('lets a changed thread count through with a note (float sums may round differently)', async () => {
    const ac = new AbortController();
    await pretrain(cfg('threads', { maxSteps: 6 }), { output: null, signal: ac.signal, onStep: (s) => s.step === 2 && ac.abort() });
    let notes = '';
    const r = await pretrain(cfg('threads', { maxSteps: 6, threads: 2, resume: true }), { output: { write: (s: string) => (notes += s) } });
    expect(r.step).toBe(6);
    expect(notes).toContain('threads changed 0 → 2: allowed, but float sums may round differently, so the resumed run is not bit-exact');
  }, 60_000);

  it('cuts metrics.jsonl back to the checkpoint: no step is logged twice after a crash', async () => {
    // A crash after step 6 of 8 with the last checkpoint at 4: the log holds steps 1-6 (and 8's lines of the
    // finished run, whose checkpoint-8 the "crash" removed).
    await pretrain(cfg('crashed', { maxSteps: 8, saveEvery: 4 }), { output: null });
    fs.rmSync(join(root, 'crashed', 'checkpoint-8'), { recursive: true });
    fs.appendFileSync(join(root, 'crashed', 'metrics.jsonl'), '{"time":"x","kind":"train","st'); // a torn last line
    await pretrain(cfg('crashed', { maxSteps: 8, saveEvery: 4, resume: true }), { output: null });
    expect(metricSteps('crashed')).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  }, 60_000);

  it('truncateMetrics keeps lines up to the step and lines without one', () => {
    const dir = fs.mkdtempSync(join(root, 'm-'));
    const log = new MetricsLog(join(dir, 'metrics.jsonl'));
    for (const step of [1, 2, 3, 2, 3]) log.write({ kind: 'train', step });
    log.write({ kind: 'note' });
    expect(truncateMetrics(dir, 2)).toBe(2);
    expect(fs.readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step)).toEqual([1, 2, 2, undefined]);
    expect(truncateMetrics(dir, 2)).toBe(0);
  });
});

describe('failed saves and failed runs', () => {
  it('a save that fails for space names the checkpoint and the step, keeps the last good one, and explains keep-last 1', () => {
    const out = fs.mkdtempSync(join(root, 'full-'));
    const model = (): Record<string, ReturnType<typeof tensor>> => ({ 'cls.predictions.bias': tensor([0.5, -0.5, 0], [3]) });
    saveCheckpoint(out, { step: 1, model: model(), config: {} }, { keepLast: 1 });
    const enospc = (name: string): void => {
      if (name === 'config.json') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    };
    const final = join(out, 'checkpoint-2');
    expect(() => saveCheckpoint(out, { step: 2, model: model(), config: {} }, { keepLast: 1, afterFile: enospc })).toThrow(
      `Could not save checkpoint ${final} at step 2 (ENOSPC: no space left on device, write); the last good checkpoint ${join(out, 'checkpoint-1')} is kept; the disk is full: with keepLast 1 the new checkpoint is written before the old one is pruned, so the disk needs room for two checkpoints at once`,
    );
    expect(fs.readdirSync(out)).toEqual(['checkpoint-1']);
    expect(loadCheckpoint(join(out, 'checkpoint-1')).step).toBe(1);
    expect(() => saveCheckpoint(out, { step: 2, model: model(), config: {} }, { keepLast: 3, afterFile: enospc })).toThrow(
      'the disk is full: free space for one more checkpoint (new ones are written before old ones are pruned)',
    );
  });

  it('a run that fails before its first checkpoint leaves no run directory', async () => {
    await expect(pretrain(cfg('nan', { maxSteps: 50, lr: 1e9, gradClip: 0, warmupRatio: 0 }), { output: null })).rejects.toThrow(/loss became|gradient norm became/);
    expect(fs.existsSync(join(root, 'nan'))).toBe(false);
    // In a directory the run did not make, it removes only its metrics.
    fs.mkdirSync(join(root, 'nan-kept'));
    fs.writeFileSync(join(root, 'nan-kept', 'notes.txt'), 'mine');
    await expect(pretrain(cfg('nan-kept', { maxSteps: 50, lr: 1e9, gradClip: 0, warmupRatio: 0 }), { output: null })).rejects.toThrow(/became/);
    expect(fs.readdirSync(join(root, 'nan-kept')).filter((f) => f === 'metrics.jsonl' || f.startsWith('checkpoint-'))).toEqual([]);
    expect(fs.existsSync(join(root, 'nan-kept', 'notes.txt'))).toBe(true);
  }, 60_000);

  it('an interrupt during setup writes no checkpoint-0 and leaves nothing', async () => {
    const ac = new AbortController();
    // The device note is written once the run directory is open, before the task is built.
    const r = await pretrain(cfg('setup'), { signal: ac.signal, output: { write: (s: string) => { if (s.includes('device')) ac.abort(); } } });
    expect(r).toMatchObject({ stopped: 'aborted', step: 0, checkpoint: null });
    expect(fs.existsSync(join(root, 'setup'))).toBe(false);
  }, 60_000);

  it('an already-aborted signal stops before the first step, in-process and on a worker', async () => {
    const ac = new AbortController();
    ac.abort();
    const r = await pretrain(cfg('pre-aborted'), { signal: ac.signal, output: null });
    expect(r).toMatchObject({ stopped: 'aborted', step: 0, checkpoint: null });
    expect(fs.existsSync(join(root, 'pre-aborted'))).toBe(false);
    if (fs.existsSync(join(__dirname, '..', 'dist', 'src', 'tasks', 'worker.js'))) {
      const w = await pretrainInWorker(cfg('pre-aborted-worker'), { signal: ac.signal });
      expect(w).toMatchObject({ stopped: 'aborted', step: 0, checkpoint: null });
      expect(fs.existsSync(join(root, 'pre-aborted-worker'))).toBe(false);
    }
  }, 60_000);
});

describe('the non-finite gradient stop', () => {
  class Tiny extends Module {
    readonly w = this.registerParameter('w', Parameter.from(tensor([0.5, -0.25, 1], [3])));
  }
  const toyTask = (model: Tiny, optimizer: AdamW, microBatch: TrainTask['microBatch']): TrainTask => ({
    model, optimizer, unit: 'x', name: 'toy', microBatch,
    shouldEvaluate: () => false,
    evaluate: (step) => ({ step }),
    describe: () => '',
    checkpoint: () => ({ config: {} }),
    restore: () => {},
    dispose: () => {},
  });
  // A fresh run: its directory, model, optimizer and input, and the loop's settings (2 micro-batches, 5 steps).
  const fresh = (name: string) => {
    const out = fs.mkdtempSync(join(root, `${name}-`));
    const model = new Tiny();
    const optimizer = new AdamW([model.w], { lr: 0.1 });
    const common = { lr: 0.1, warmupRatio: 0, decay: 'constant', minLrRatio: 0, gradAccum: 2, saveEvery: 1, keepLast: 5, logEvery: 1, totalSteps: 5, warmupSteps: 0, startStep: 0, outDir: out, run: {} };
    return { out, model, optimizer, x: tensor([1, 2, 3], [3]), common };
  };

  it('stops on a NaN gradient norm with a finite loss, before the optimizer step and without a checkpoint', async () => {
    const { out, model, optimizer, x, common } = fresh('grad');
    const task = toyTask(model, optimizer, (k, step) => {
      // On step 3, the second micro-batch finds a poisoned gradient (an overflow in a backward kernel): the loss
      // stays finite, the accumulated gradient does not.
      if (step === 2 && k % 2 === 1) for (const g of optimizer.flatGrads()) g.fill(NaN);
      return { loss: sum(mul(model.w, x)), units: 1 };
    });
    const before: number[][] = [];
    for (const gradClip of [0, 1]) {
      fs.rmSync(out, { recursive: true, force: true });
      await expect(runLoop(task, { ...common, gradClip }, { onStep: () => before.push(Array.from(model.w.toArray())) }, null, new MetricsLog(join(out, 'metrics.jsonl')))).rejects.toThrow(
        /The toy gradient norm became NaN at step 3 \(loss \d.*\); stopping before the optimizer step/,
      );
      expect(Array.from(model.w.toArray()).every(Number.isFinite)).toBe(true);
      expect(listCheckpoints(out).map((c) => c.step)).toEqual([1, 2]);
      for (const c of listCheckpoints(out)) {
        const ck = loadCheckpoint(c.dir);
        expect(Array.from(ck.model.w!.toArray()).every(Number.isFinite)).toBe(true);
        ck.dispose();
      }
    }
    optimizer.dispose();
  });

  it('stops on a NaN loss read after the step was queued: the weights and the step count stay those of the step before', async () => {
    const { out, model, optimizer, x, common } = fresh('loss');
    // On step 3 the first of two micro-batches has a NaN loss whose gradient stays finite (a NaN added to the
    // loss, not multiplied into it): only the loss guard can keep AdamW from stepping.
    const task = toyTask(model, optimizer, (k, step) => {
      const loss = sum(mul(model.w, x));
      return { loss: step === 2 && k % 2 === 0 ? add(loss, tensor([NaN], [])) : loss, units: 1 };
    });
    const after: number[][] = [];
    await expect(runLoop(task, { ...common, gradClip: 1 }, { onStep: () => after.push(Array.from(model.w.toArray())) }, null, new MetricsLog(join(out, 'metrics.jsonl')))).rejects.toThrow(
      /The toy loss became NaN at step 3 \(lr .*\); stopping without saving this state/,
    );
    expect(after.length).toBe(2);
    expect(Array.from(model.w.toArray())).toEqual(after[1]);
    expect(optimizer.stepCount).toBe(2);
    expect(listCheckpoints(out).map((c) => c.step)).toEqual([1, 2]);
    optimizer.dispose();
  });

  it('a bfloat16 loss (a bf16 model on cuda) is deferred too: logged as read, and a NaN one stops the run as a float32 one does', async () => {
    const { out, model, optimizer, x, common } = fresh('bf16');
    const reads: number[] = [];
    // One micro-batch a step: the CPU has no bfloat16 arithmetic to scale the loss by 1/gradAccum with.
    const task = toyTask(model, optimizer, (_k, step) => {
      const f = sum(mul(model.w, x));
      const loss = castTo(step === 2 ? add(f, tensor([NaN], [])) : f, 'bfloat16');
      if (step < 2) reads.push(loss.item());  // what an eager read gives, for the logged loss below
      // The loop must not read it itself (on cuda that read would wait mid-step): it reads the guard's copy.
      loss.item = () => { throw new Error('the loop read a bfloat16 loss eagerly'); };
      return { loss, units: 1 };
    });
    const logged: number[] = [];
    await expect(runLoop(task, { ...common, gradAccum: 1, gradClip: 1 }, { onStep: (s) => logged.push(s.loss) }, null, new MetricsLog(join(out, 'metrics.jsonl')))).rejects.toThrow(
      /The toy loss became NaN at step 3 \(lr .*\); stopping without saving this state/,
    );
    expect(logged).toEqual(reads);
    expect(reads.length).toBe(2);
    expect(optimizer.stepCount).toBe(2);
    optimizer.dispose();
  });
});
