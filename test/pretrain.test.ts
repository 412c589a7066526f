/** The MLM trainer end to end: learning, evaluation, metrics, checkpoints, exact resume, abort, errors. */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { liveBytes, pretrainInWorker } from '../src/index.js';
import { loadCheckpoint } from '../src/checkpoint/checkpoint.js';
import { evaluateMlmCheckpoint } from '../src/tasks/mlm/evaluate-checkpoint.js';
import { exportCheckpoint } from '../src/commands/export.js';
import { pretrain, type EvalResult, type StepInfo } from '../src/tasks/pretrain.js';
import { fixtureTokenizerIn, writeFixtureCorpus } from './helpers/fixture-corpus.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-pretrain-'));
let corpus = '';
let tokenizer = '';
// Small and fast: bert-tiny on 32-token sequences.
const base = { maxLength: 32, batchSize: 8, evalBatches: 4, logEvery: 5, threads: 0 };

beforeAll(async () => {
  corpus = writeFixtureCorpus(join(root, 'data'));
  // One tokenizer for every run: WordPiece training itself is not reproducible run to run.
  tokenizer = fixtureTokenizerIn(root);
});

describe('pretrain', () => {
  it('lowers the MLM loss, evaluates, logs metrics and writes an HF-named checkpoint', async () => {
    const steps: StepInfo[] = [];
    const evals: EvalResult[] = [];
    const out = join(root, 'learn');
    const r = await pretrain(
      { ...base, data: corpus, tokenizer, out, maxSteps: 150, lr: 1e-3, evalEvery: 50, saveEvery: 100, evalFraction: 0.2, evalBatches: 10 },
      { output: null, onStep: (s) => steps.push(s), onEval: (e) => evals.push(e as EvalResult) },
    );
    expect(r.stopped).toBe('done');
    expect(r.step).toBe(150);
    const first = steps.slice(0, 5).reduce((a, s) => a + s.loss, 0) / 5;
    const last = steps.slice(-5).reduce((a, s) => a + s.loss, 0) / 5;
    expect(last).toBeLessThan(first * 0.75);
    // Held-out loss falls between evaluations; accuracy is far above chance (1/vocab).
    expect(evals.map((e) => e.step)).toEqual([50, 100, 150]);
    expect(evals[2]!.loss).toBeLessThan(evals[0]!.loss);
    expect(r.eval!.accuracy).toBeGreaterThan(10 / 200);
    const ev = r.eval as EvalResult;
    expect(ev.maskedTokens).toBeGreaterThan(100);
    expect(ev.perplexity).toBeCloseTo(Math.exp(ev.loss), 6);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.kind === 'train').map((l) => l.step)).toEqual(Array.from({ length: 30 }, (_, i) => 5 * (i + 1)));
    expect(lines.filter((l) => l.kind === 'eval').map((l) => l.step)).toEqual([50, 100, 150]);
    const ck = loadCheckpoint(r.checkpoint!);
    expect(ck.step).toBe(150);
    expect(Object.keys(ck.model)).toContain('bert.encoder.layer.1.attention.self.query.weight');
    expect(ck.config.architectures).toEqual(['BertForMaskedLM']);
    ck.dispose();
    const exported = exportCheckpoint(out, join(root, 'export'));
    expect(exported.map((f) => f.split('/').pop())).toEqual(['model.safetensors', 'config.json', 'tokenizer.json']);

    // cloze eval on the run directory scores the same held-out split the trainer did.
    const e = await evaluateMlmCheckpoint({ checkpoint: out, maxBatches: 10 });
    expect(e.split).toBe('eval');
    expect(e.step).toBe(150);
    expect(e.loss).toBeCloseTo(r.eval!.loss, 5);
    expect(e.accuracy).toBe(r.eval!.accuracy);

    // Continuing pre-training from the exported (Hugging Face layout) directory starts from the trained weights.
    const fromScratch: number[] = [];
    const fromExport: number[] = [];
    const short = { ...base, data: corpus, maxSteps: 2, evalEvery: 100, saveEvery: 100, lr: 1e-9 };
    await pretrain({ ...short, tokenizer, out: join(root, 'scratch') }, { output: null, onStep: (s) => fromScratch.push(s.loss) });
    await pretrain({ ...short, initFrom: join(root, 'export'), out: join(root, 'continued') }, { output: null, onStep: (s) => fromExport.push(s.loss) });
    expect(fromExport[0]!).toBeLessThan(fromScratch[0]! * 0.9);
  });

  it('resumes exactly: the losses after an interruption equal those of an uninterrupted run', async () => {
    const cfg = { ...base, data: corpus, tokenizer, maxSteps: 16, evalEvery: 100, saveEvery: 100, gradAccum: 2 };
    const straight: number[] = [];
    await pretrain({ ...cfg, out: join(root, 'straight') }, { output: null, onStep: (s) => straight.push(s.loss) });
    const resumed: number[] = [];
    const ac = new AbortController();
    const first = await pretrain({ ...cfg, out: join(root, 'resumed') }, {
      output: null,
      signal: ac.signal,
      onStep: (s) => {
        resumed.push(s.loss);
        if (s.step === 7) ac.abort();
      },
    });
    expect(first.stopped).toBe('aborted');
    expect(first.step).toBe(7);
    const second = await pretrain({ ...cfg, out: join(root, 'resumed'), resume: true }, { output: null, onStep: (s) => resumed.push(s.loss) });
    expect(second.step).toBe(16);
    expect(resumed).toEqual(straight);
  });

  it('keeps the event loop turning during training', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    await pretrain({ ...base, data: corpus, tokenizer, out: join(root, 'loop'), maxSteps: 20, evalEvery: 100, saveEvery: 100 }, { output: null });
    clearInterval(timer);
    expect(ticks).toBeGreaterThan(3);
  });

  it('stops with a clear message when the loss is not finite, and frees its native memory', async () => {
    const before = liveBytes();
    await expect(
      pretrain({ ...base, data: corpus, tokenizer, out: join(root, 'nan'), maxSteps: 50, lr: 1e9, gradClip: 0, warmupRatio: 0 }, { output: null }),
    ).rejects.toThrow(/The MLM loss became (NaN|Infinity|-Infinity) at step \d+ \(lr .*\); stopping without saving this state/);    // Earlier tests' garbage may be finalised meanwhile, so the count can only have fallen.
    expect(liveBytes()).toBeLessThanOrEqual(before);
  });

  it('rejects bad settings naming the field, and a resume with nothing to resume', async () => {
    await expect(pretrain({ maxSteps: 0 })).rejects.toThrow('options: Expected an integer in [1, 1000000000] for maxSteps but received 0');
    await expect(pretrain({ batchSize: 8, colour: 'red' } as never)).rejects.toThrow('options: Expected a known setting for colour');
    await expect(pretrain({ ...base, data: corpus, tokenizer, out: join(root, 'none'), resume: true }, { output: null })).rejects.toThrow(
      `Expected a checkpoint in ${join(root, 'none')} for resume but received none`,
    );
  });
});

describe('pretrainInWorker', () => {
  const built = existsSync(join(__dirname, '..', 'dist', 'src', 'tasks', 'worker.js'));
  it.skipIf(!built)('trains identically off the main thread, whose timers keep firing during long steps', async () => {
    // bert-mini on 128-token batches: steps long enough that in-process training visibly holds the event loop.
    const cfg = { ...base, preset: 'bert-mini', maxLength: 128, batchSize: 16, data: corpus, tokenizer, maxSteps: 4, evalEvery: 100, saveEvery: 100 };
    const watch = async (run: () => Promise<unknown>): Promise<number> => {
      let last = performance.now();
      let maxGap = 0;
      const timer = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
      }, 5);
      await run();
      clearInterval(timer);
      return maxGap;
    };
    const inProcess: number[] = [];
    const inWorker: number[] = [];
    const gapInProcess = await watch(() => pretrain({ ...cfg, out: join(root, 'in-process') }, { output: null, onStep: (s) => inProcess.push(s.loss) }));
    const gapWorker = await watch(() => pretrainInWorker({ ...cfg, out: join(root, 'in-worker') }, { onStep: (s) => inWorker.push(s.loss) }));
    expect(inWorker).toEqual(inProcess);
    expect(gapWorker).toBeLessThan(gapInProcess / 2);
    await expect(pretrainInWorker({ maxSteps: 0 })).rejects.toThrow('options: Expected an integer in [1, 1000000000] for maxSteps but received 0');
  });
});

describe('cloze pretrain (CLI)', () => {
  const bin = join(__dirname, '..', 'bin', 'cloze.js');
  const run = (args: string[], onOut?: (s: string, kill: () => void) => void): Promise<{ code: number | null; out: string }> =>
    new Promise((resolve) => {
      const p = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      const take = (d: Buffer): void => {
        out += d.toString();
        onOut?.(out, () => p.kill('SIGINT'));
      };
      p.stdout.on('data', take);
      p.stderr.on('data', take);
      p.on('close', (code) => resolve({ code, out }));
    });

  it.skipIf(!existsSync(bin.replace('bin/cloze.js', 'dist/src/cli.js')))('Ctrl-C saves a checkpoint and exits 130 (as npx does); a bad run.json exits non-zero naming the field', async () => {
    const out = join(root, 'cli');
    let sent = false;
    const r = await run(
      ['pretrain', '--data', corpus, '--tokenizer', tokenizer, '--out', out, '--max-steps', '100000', '--max-length', '32', '--batch-size', '8', '--log-every', '1'],
      (s, kill) => {
        if (!sent && /step 3\//.test(s)) {
          sent = true;
          kill();
        }
      },
    );
    expect(r.code).toBe(130);
    expect(r.out).toMatch(/stopped: step \d+/);
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(true);
    expect(r.out).toMatch(/checkpoint: .*checkpoint-\d+/);
    const bad = join(root, 'bad.json');
    writeFileSync(bad, JSON.stringify({ maxSteps: 'many' }));
    const b = await run(['pretrain', '--config', bad]);
    expect(b.code).not.toBe(0);
    expect(b.out).toContain(`${bad}: Expected an integer in [1, 1000000000] for maxSteps but received "many"`);
  });
});
