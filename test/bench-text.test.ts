/**
 * `cloze bench text`: the FLOP formula against hand-computed values, the
 * budget → steps derivation (equal FLOPs within a step), and a tiny run of the
 * suite (every objective on the fixture corpus, bert-tiny, a handful of steps,
 * one small task, one seed, two checkpoints each) that writes summary.md,
 * results.json and downstream.svg, then resumes: an interrupted suite redoes
 * only what it lacks.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readLabelledFile, stratifiedSplit } from '../src/data/labelled.js';
import { budgetSteps, objectiveSettings, runFlopsPerStep, runTextSuite, TEXT_OBJECTIVES, type TextTask } from '../src/commands/bench-text.js';
import { layerMatmulParams, stepsForBudget, textTrainingFlops } from '../src/models/text-flops.js';
import { writeFixtureCorpus } from './helpers/fixture-corpus.js';

describe('text training FLOPs', () => {
  // 2 layers, D 4, I 8, V 10, S 3, B 2 (T 6), mask 0.5 (M 3): P_layer = 4·16 + 2·4·8 = 128.
  const base = { encoder: { layers: 2, hidden: 4, intermediate: 8 }, vocabSize: 10, seqLength: 3, batchSize: 2, maskRatio: 0.5 };

  it('counts an encoder, its attention and its MLM head by the formula', () => {
    expect(layerMatmulParams({ hidden: 4, intermediate: 8 })).toBe(128);
    expect(layerMatmulParams({ hidden: 4, intermediate: 8, ffn: 'geglu' })).toBe(160);
    const f = textTrainingFlops(base);
    expect(f.layers).toBe(6 * 6 * 2 * 128); // 9216
    expect(f.attention).toBe(12 * 6 * 3 * 2 * 4); // 1728
    expect(f.head).toBe(6 * 3 * (16 + 40)); // 1008
    expect(f.perToken).toBe(0);
    expect(f.perStep).toBe(11952);
  });

  it('counts a decoder as extra layer applications, and GeGLU as 3·D·I', () => {
    expect(textTrainingFlops({ ...base, extraLayers: 1 }).perStep).toBe(6 * 6 * 3 * 128 + 12 * 6 * 3 * 3 * 4 + 1008); // 17424
    expect(textTrainingFlops({ ...base, encoder: { ...base.encoder, ffn: 'geglu' } }).perStep).toBe(6 * 6 * 2 * 160 + 1728 + 1008); // 14256
  });

  it("counts ELECTRA's generator, its head at masked rows and the per-token projection and discriminator head", () => {
    // Generator: 2 layers, G 2, I 8: P = 4·4 + 2·2·8 = 48.
    const f = textTrainingFlops({ ...base, generator: { layers: 2, hidden: 2, intermediate: 8 } });
    expect(f.layers).toBe(9216 + 6 * 6 * 2 * 48);
    expect(f.attention).toBe(1728 + 12 * 6 * 3 * 2 * 2);
    expect(f.head).toBe(6 * 3 * (2 * 4 + 4 * 10));
    expect(f.perToken).toBe(6 * 6 * (4 * 2 + 16 + 4));
    expect(f.perStep).toBe(17136);
  });

  it('reads the sizes of a real run: bert-tiny, batch 32 × 128, 15% masking', () => {
    const f = runFlopsPerStep({ task: 'mlm', preset: 'bert-tiny', batchSize: 32, maxLength: 128 }, 1000);
    const T = 32 * 128, P = 4 * 128 * 128 + 2 * 128 * 512;
    expect(f.perStep).toBeCloseTo(6 * T * 2 * P + 12 * T * 128 * 2 * 128 + 6 * 0.15 * T * (128 * 128 + 128 * 1000), 0);
    // The mosaic objective on bert-tiny keeps the size and masks 30%: only the head's share grows.
    const m = runFlopsPerStep({ task: 'mlm', batchSize: 32, maxLength: 128, ...objectiveSettings('mosaic', 'bert-tiny').settings }, 1000);
    expect(m.head).toBeCloseTo(2 * f.head, 0);
    expect(m.layers).toBe(f.layers);
    // bert-mini's twin is mosaic-bert-mini: GeGLU, so more FLOPs per layer at the same size.
    expect(objectiveSettings('mosaic', 'bert-mini').settings.preset).toBe('mosaic-bert-mini');
    const mini = runFlopsPerStep({ task: 'mlm', preset: 'bert-mini' }, 1024);
    const mosaicMini = runFlopsPerStep({ task: 'mlm', preset: 'mosaic-bert-mini' }, 1024);
    expect(mosaicMini.layers / mini.layers).toBeCloseTo((4 * 256 * 256 + 3 * 256 * 1024) / (4 * 256 * 256 + 2 * 256 * 1024), 10);
  });

  it('derives each objective\'s steps from one budget: equal FLOPs within one step', () => {
    const per = Object.fromEntries(TEXT_OBJECTIVES.map((o) => [o, runFlopsPerStep({ task: 'mlm', batchSize: 32, maxLength: 128, ...objectiveSettings(o, 'bert-tiny').settings }, 8000).perStep]));
    expect(new Set(Object.values(per)).size).toBe(5); // every objective costs differently per step
    const budget = 600 * per.mlm!;
    const steps = budgetSteps(budget, per);
    expect(steps.mlm).toBe(600);
    for (const o of TEXT_OBJECTIVES) {
      expect(Math.abs(steps[o]! * per[o]! - budget)).toBeLessThanOrEqual(per[o]! / 2);
    }
    expect(steps.electra).toBeLessThan(600);
    expect(steps.drbert).toBeLessThan(steps.emd!);
    expect(stepsForBudget(1, 1e9)).toBe(1);
    expect(() => stepsForBudget(-1, 5)).toThrow('budget');
  });
});

describe('cloze bench text', () => {
  it('pre-trains every objective under one budget, fine-tunes each checkpoint, reports, and resumes only what it lacks', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cloze-text-'));
    const corpus = writeFixtureCorpus(join(root, 'corpus'));
    const all = readLabelledFile(join(__dirname, 'fixtures', 'finetune', 'who.jsonl')).examples;
    const { train, test } = stratifiedSplit(all, 0.2, 0);
    const task: TextTask = { name: 'who', train, test };
    const out = join(root, 'suite');
    const lines: string[] = [];
    const opts = {
      out, data: corpus, vocabSize: 200, taskData: [task], budgetSteps: 6, batchSize: 4, seqLength: 32, points: 2,
      seeds: [0], maxTrain: 0, maxLength: 24, finetuneEpochs: 1, lrs: [1e-3], log: (l: string) => lines.push(l),
    };
    const r = await runTextSuite(opts);
    expect(r.pretraining.map((p) => p.objective)).toEqual([...TEXT_OBJECTIVES]);
    const budget = r.pretraining.find((p) => p.objective === 'mlm')!.flops;
    for (const p of r.pretraining) {
      expect(Math.abs(p.flops - budget)).toBeLessThanOrEqual(p.flopsPerStep / 2);
      expect(p.points.length).toBe(2);
      expect(p.points.at(-1)!.step).toBe(p.steps);
      expect(p.seconds).toBeGreaterThan(0);
    }
    expect(r.records.length).toBe(5 * 2);
    for (const rec of r.records) expect(Number.isFinite(rec.testAccuracy)).toBe(true);
    const summary = readFileSync(join(out, 'summary.md'), 'utf8');
    for (const o of TEXT_OBJECTIVES) expect(summary).toMatch(new RegExp(`^\\| ${o} +\\|`, 'm'));
    expect(summary).toContain('## Score at intermediate checkpoints');
    expect(summary).not.toContain('NaN');
    const svg = readFileSync(join(out, 'downstream.svg'), 'utf8');
    expect(svg).toMatch(/^<svg/);
    for (const o of TEXT_OBJECTIVES) expect(svg).toContain(`>${o}<`);
    const timeSvg = readFileSync(join(out, 'downstream-time.svg'), 'utf8');
    expect(timeSvg).toMatch(/^<svg[\s\S]*pre-training minutes/);
    for (const o of TEXT_OBJECTIVES) expect(timeSvg).toContain(`>${o}<`);
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(saved.records).toEqual(JSON.parse(JSON.stringify(r.records)));

    // Everything done: the same settings again redo nothing.
    expect(lines.filter((l) => l.startsWith('training a 200-token WordPiece')).length).toBe(1);
    const again = await runTextSuite({ ...opts, log: (l: string) => { if (/pre-trained|fine-tuning|training a/.test(l)) throw new Error(`unexpected work: ${l}`); } });
    expect(again.records).toEqual(saved.records);

    // Interrupted: electra's pre-training and one fine-tuning of mlm are missing; only they are redone, and electra's
    // fine-tunings too (recorded from the encoder it replaces).
    const cut = { ...saved, pretraining: saved.pretraining.filter((p: { objective: string }) => p.objective !== 'electra'), records: saved.records.filter((x: { objective: string; step: number }) => !(x.objective === 'mlm' && x.step === r.pretraining[0]!.points[0]!.step)) };
    writeFileSync(join(out, 'results.json'), JSON.stringify(cut));
    const work: string[] = [];
    const third = await runTextSuite({ ...opts, log: (l: string) => { if (/pre-trained|fine-tuning/.test(l)) work.push(l); } });
    expect(work.filter((l) => l.includes('pre-trained')).length).toBe(1);
    expect(work.filter((l) => l.includes('fine-tuning')).map((l) => l.split(' ')[1])).toEqual(['mlm', 'electra', 'electra']);
    expect(third.records.length).toBe(10);
    expect(existsSync(join(out, 'tokenizer.json'))).toBe(true);

    // Another tokenizer size: the shared tokenizer is trained anew, and the runs that used the old one are redone.
    const fourth: string[] = [];
    const r4 = await runTextSuite({ ...opts, vocabSize: 150, objectives: ['mlm'], points: 1, log: (l: string) => fourth.push(l) });
    expect(fourth.some((l) => l.startsWith('training a 150-token WordPiece'))).toBe(true);
    expect(fourth.some((l) => l.includes('pre-trained'))).toBe(true);
    expect(r4.records.length).toBe(1);
  }, 240_000);

  it('chooses the fine-tuning rate per objective and task on a validation split held out of training, never on test', async () => {
    const root = mkdtempSync(join(tmpdir(), 'cloze-text-lr-'));
    const corpus = writeFixtureCorpus(join(root, 'corpus'));
    const all = readLabelledFile(join(__dirname, 'fixtures', 'finetune', 'who.jsonl')).examples;
    const { train, test } = stratifiedSplit(all, 0.2, 0);
    const out = join(root, 'suite');
    const lrs = [1e-5, 3e-3];
    const lines: string[] = [];
    const opts = {
      out, data: corpus, vocabSize: 200, taskData: [{ name: 'who', train, test }], objectives: ['mlm', 'electra'], budgetSteps: 4, batchSize: 4,
      seqLength: 32, points: 1, seeds: [1, 2], maxTrain: 0, maxLength: 24, finetuneEpochs: 2, lrs, valFraction: 0.25, log: (l: string) => lines.push(l),
    };
    const r = await runTextSuite(opts);
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    // Every objective at every rate, on the first seed, scored on validation.
    expect(saved.selections.map((x: { objective: string; lr: number }) => `${x.objective}@${x.lr}`).sort()).toEqual(lrs.flatMap((lr) => [`mlm@${lr}`, `electra@${lr}`]).sort());
    for (const o of ['mlm', 'electra']) {
      const mine = saved.selections.filter((x: { objective: string }) => x.objective === o);
      expect(mine.every((x: { seed: number }) => x.seed === 1)).toBe(true);
      const best = mine.reduce((a: { valAccuracy: number; lr: number }, b: { valAccuracy: number; lr: number }) => (b.valAccuracy > a.valAccuracy ? b : a));
      // The chosen rate is the best on validation (the first in lrs order on ties), and every test run of the objective uses it.
      const runs = r.records.filter((x) => x.objective === o);
      expect(runs.length).toBe(2);
      for (const x of runs) expect(x.lr).toBe(best.lr);
      expect(lines).toContain(`who ${o}: lr ${best.lr} chosen on validation`);
    }
    // Validation, training and test examples never overlap; validation is a quarter of the training split.
    const rows = (f: string) => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l).text as string);
    const texts = (f: string) => new Set(rows(f));
    const val = texts(join(out, 'finetune', 'who', 'validation.jsonl'));
    const testSet = texts(join(out, 'finetune', 'who', 'test.jsonl'));
    // The fixture repeats a few texts; those cannot tell the splits apart, so they are left out of the overlap checks.
    const seen = new Map<string, number>();
    for (const e of all) seen.set(e.text, (seen.get(e.text) ?? 0) + 1);
    const unique = (t: string) => seen.get(t) === 1;
    const valRows = rows(join(out, 'finetune', 'who', 'validation.jsonl')).length;
    expect(valRows).toBe(saved.selections[0].valExamples);
    expect(Math.abs(valRows - 0.25 * train.length)).toBeLessThanOrEqual(3);
    for (const s of [1, 2]) {
      const tr = texts(join(out, 'finetune', 'who', `train-seed${s}.jsonl`));
      expect(rows(join(out, 'finetune', 'who', `train-seed${s}.jsonl`)).length + valRows).toBe(train.length);
      for (const t of [...tr].filter(unique)) expect(val.has(t) || testSet.has(t)).toBe(false);
    }
    for (const t of [...val].filter(unique)) expect(testSet.has(t)).toBe(false);
    expect([...val].filter(unique).length).toBeGreaterThan(valRows / 2);
    const summary = readFileSync(join(out, 'summary.md'), 'utf8');
    expect(summary).toContain('## Learning rate chosen on validation');
    expect(summary).toMatch(/^\| mlm +\| who +\|.*\*\*/m);
    expect(summary).toContain('never on the test split');

    // Other rates: the pre-trainings are kept, the selections and fine-tunings redone.
    const work: string[] = [];
    await runTextSuite({ ...opts, lrs: [3e-3, 1e-2], log: (l: string) => work.push(l) });
    expect(work.some((l) => l.includes('pre-trained'))).toBe(false);
    expect(work.filter((l) => l.includes('for validation')).length).toBe(4);
    await expect(runTextSuite({ ...opts, lrs: [] })).rejects.toThrow('for lrs but received none');
    await expect(runTextSuite({ ...opts, lrs: [1e-3, 1e-3] })).rejects.toThrow('distinct learning rates');
    await expect(runTextSuite({ ...opts, valFraction: 1 })).rejects.toThrow('valFraction');
  }, 240_000);

  const bin = join(__dirname, '..', 'bin', 'cloze.js');
  it.skipIf(!existsSync(join(__dirname, '..', 'dist', 'src', 'cli.js')))('cloze bench text runs from the command line on a built-in task, and refuses the other suites\' --epochs', () => {
    const root = mkdtempSync(join(tmpdir(), 'cloze-text-cli-'));
    const corpus = writeFixtureCorpus(join(root, 'corpus'));
    const out = join(root, 'suite');
    const stdout = execFileSync(process.execPath, [bin, 'bench', 'text', '--out', out, '--data', corpus, '--vocab-size', '200', '--objectives', 'mlm', 'emd',
      '--budget-steps', '2', '--points', '1', '--batch-size', '4', '--seq-length', '32', '--tasks', 'spam', '--seeds', '0', '--max-train', '10', '--max-length', '24', '--finetune-epochs', '1', '--lrs', '1e-3'],
    { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'ignore'] });
    expect(stdout).toMatch(/^\| mlm +\|/m);
    expect(stdout).toMatch(/^\| emd +\|/m);
    expect(stdout).toContain(join(out, 'downstream.svg'));
    expect(JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')).records.length).toBe(2);
    const bad = spawnSync(process.execPath, [bin, 'bench', 'text', '--out', join(root, 'bad'), '--epochs', '1'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toContain('--finetune-epochs for suite text');
  }, 120_000);

  it('refuses an unknown objective, task or preset, naming it', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'cloze-text-bad-')), 's');
    await expect(runTextSuite({ out, objectives: ['gpt'] })).rejects.toThrow('for objectives but received "gpt"');
    await expect(runTextSuite({ out, tasks: ['imdb'] })).rejects.toThrow('for tasks but received "imdb"');
    await expect(runTextSuite({ out, preset: 'mosaic-bert-mini' })).rejects.toThrow('for preset but received "mosaic-bert-mini"');
    await expect(runTextSuite({ out, seeds: [] })).rejects.toThrow('seed');
    await expect(runTextSuite({ out, scale: 0 })).rejects.toThrow('scale');
  });
});
