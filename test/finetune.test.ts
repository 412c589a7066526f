/**
 * cloze finetune end to end on a committed fixture (test/fixtures/finetune/who.jsonl: who does something, an
 * animal or a person; 60% person): both methods beat the majority class from a tiny pre-trained encoder, resume is
 * exact, predict agrees with eval, export writes what BertForSequenceClassification loads.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { exportCheckpoint } from '../src/commands/export.js';
import { readLabelledFile } from '../src/data/labelled.js';
import { evaluateFinetunedCheckpoint } from '../src/tasks/finetune/evaluate-checkpoint.js';
import type { FinetuneEval } from '../src/tasks/finetune/evaluate.js';
import { loadClassifier } from '../src/tasks/finetune/predict.js';
import { finetune, type StepInfo } from '../src/tasks/run-finetune.js';
import { pretrainTinyEncoder } from './helpers/tiny-encoder.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-finetune-'));
const data = join(__dirname, 'fixtures', 'finetune', 'who.jsonl');
let pre = '';
const base = { taskData: data, maxLength: 24, batchSize: 16, epochs: 4, lr: 1e-3, logEvery: 5, threads: 0, seed: 3 };
const verbalizer = join(root, 'verbalizer.json');

beforeAll(async () => {
  pre = await pretrainTinyEncoder(root);
  writeFileSync(verbalizer, JSON.stringify({ animal: ['cat', 'dog', 'bird'], person: ['friend', 'teacher', 'farmer'] }));
}, 120_000);

describe('cloze finetune', () => {
  it('mlp-ft beats the majority class, evaluates every epoch, and export writes an HF sequence-classification config', async () => {
    const evals: FinetuneEval[] = [];
    const out = join(root, 'mlp');
    const r = await finetune({ ...base, initFrom: pre, method: 'mlp-ft', out }, { output: null, onEval: (e) => evals.push(e) });
    expect(r.stopped).toBe('done');
    expect(evals.map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
    expect(r.labels).toEqual(['animal', 'person']);
    // The test split is a stratified 20%: 48 examples, 29 of them "person" (the majority, 60%).
    expect(r.eval!.examples).toBe(48);
    expect(r.eval!.accuracy).toBeGreaterThan(0.75);
    expect(r.eval!.macroF1).toBeGreaterThan(0.7);
    const files = exportCheckpoint(out, join(root, 'mlp-export'));
    const config = JSON.parse(readFileSync(files.find((f) => f.endsWith('config.json'))!, 'utf8'));
    expect(config.architectures).toEqual(['BertForSequenceClassification']);
    expect(config.id2label).toEqual({ 0: 'animal', 1: 'person' });
    expect(config.label2id).toEqual({ animal: 0, person: 1 });
    expect(config.num_labels).toBe(2);
  }, 120_000);

  it('mvp (label words at [MASK], no head) beats the majority class, and predict agrees with eval', async () => {
    const out = join(root, 'mvp');
    const r = await finetune(
      { ...base, initFrom: pre, method: 'mvp', out, template: ['[MASK] :', '[SEP] it is the [MASK]'], verbalizer },
      { output: null },
    );
    expect(r.eval!.accuracy).toBeGreaterThan(0.75);
    const e = await evaluateFinetunedCheckpoint({ checkpoint: out });
    expect(e.method).toBe('mvp');
    expect(e.accuracy).toBeCloseTo(r.eval!.accuracy, 12);
    expect(e.macroF1).toBeCloseTo(r.eval!.macroF1, 12);
    // predict over the whole file agrees with eval over the same file.
    const all = readLabelledFile(data).examples;
    const c = await loadClassifier(out);
    try {
      const preds = await c.predict(all.map((x) => x.text));
      const acc = preds.filter((p, i) => p.label === all[i]!.label).length / all.length;
      const onFile = await evaluateFinetunedCheckpoint({ checkpoint: out, taskData: data });
      expect(acc).toBeCloseTo(onFile.accuracy, 12);
      for (const p of preds) expect(Object.values(p.probabilities).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
    } finally {
      c.dispose();
    }
  }, 120_000);

  it('resumes exactly: the losses after an interruption equal those of an uninterrupted run (mvp with PGD)', async () => {
    const cfg = { ...base, initFrom: pre, method: 'mvp', adv: true, epochs: 2, template: ['[MASK] :'], verbalizer, saveEvery: 5 };
    const full: StepInfo[] = [];
    await finetune({ ...cfg, out: join(root, 'full') }, { output: null, onStep: (s) => full.push(s) });
    const ac = new AbortController();
    const first: StepInfo[] = [];
    const part = await finetune({ ...cfg, out: join(root, 'part') }, { output: null, signal: ac.signal, onStep: (s) => { first.push(s); if (s.step === 7) ac.abort(); } });
    expect(part.stopped).toBe('aborted');
    expect(part.step).toBe(7);
    const rest: StepInfo[] = [];
    await finetune({ ...cfg, out: join(root, 'part'), resume: true }, { output: null, onStep: (s) => rest.push(s) });
    expect([...first, ...rest].map((s) => s.loss)).toEqual(full.map((s) => s.loss));
    expect(full.every((s) => Number.isFinite(s.loss))).toBe(true);
  }, 180_000);

  it('records its batch layout, and a run saved before packing resumes with a note that it is no longer bit-exact', async () => {
    const out = join(root, 'layout');
    const cfg = { ...base, initFrom: pre, epochs: 1, saveEvery: 3, keepLast: 5 };
    const ac = new AbortController();
    await finetune({ ...cfg, out }, { output: null, signal: ac.signal, onStep: (s) => { if (s.step === 3) ac.abort(); } });
    const ck = join(out, 'checkpoint-3', 'trainer_state.json');
    const text = readFileSync(ck, 'utf8');
    const state = JSON.parse(text);
    expect(state.extra.run.batchLayout).toBe('packed');
    // As a checkpoint from before packing: no layout recorded (padded to its size, which the checkpoint's list holds).
    delete state.extra.run.batchLayout;
    const edited = JSON.stringify(state);
    writeFileSync(ck, edited + ' '.repeat(Buffer.byteLength(text) - Buffer.byteLength(edited)));
    const said: string[] = [];
    await finetune({ ...cfg, out, resume: true }, { output: { write: (t: string) => said.push(t) } });
    expect(said.join('')).toContain('trained on padded batches (before fine-tuning packed them)');
  }, 120_000);

  it.skipIf(!existsSync(join(__dirname, '..', 'dist', 'src', 'cli.js')))('cloze predict and cloze eval print what the library returns', () => {
    const bin = join(__dirname, '..', 'bin', 'cloze.js');
    const out = join(root, 'mlp');
    const lines = execFileSync(process.execPath, [bin, 'predict', '--checkpoint', out, '--json', 'the cat sees the ball .', 'my friend finds a small boat .'], { encoding: 'utf8', timeout: 120_000 })
      .trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.text)).toEqual(['the cat sees the ball .', 'my friend finds a small boat .']);
    for (const l of lines) expect(Object.keys(l.probabilities)).toEqual(['animal', 'person']);
    const piped = execFileSync(process.execPath, [bin, 'predict', '--checkpoint', out], { input: 'the cat sees the ball .\n', encoding: 'utf8', timeout: 120_000 });
    expect(piped.split('\t')[0]).toBe(lines[0].label);
    const e = JSON.parse(execFileSync(process.execPath, [bin, 'eval', '--checkpoint', out, '--json'], { encoding: 'utf8', timeout: 120_000 }).trim());
    expect(e).toMatchObject({ method: 'mlp-ft', examples: 48, split: 'test' });
    expect(e.accuracy).toBeGreaterThan(0.75);
  });

  it('mvp starts from a stock Hugging Face BERT directory (with its pooler and next-sentence head)', async () => {
    const { loadCheckpoint, saveCheckpoint } = await import('../src/checkpoint/checkpoint.js');
    const { tensor } = await import('../src/index.js');
    const ck = loadCheckpoint(join(pre, 'checkpoint-60'));
    const D = (ck.config.hidden_size as number);
    const extra = {
      'bert.pooler.dense.weight': tensor(new Float32Array(D * D), [D, D]), 'bert.pooler.dense.bias': tensor(new Float32Array(D), [D]),
      'cls.seq_relationship.weight': tensor(new Float32Array(2 * D), [2, D]), 'cls.seq_relationship.bias': tensor(new Float32Array(2), [2]),
    };
    const hf = join(root, 'hf-bert');
    saveCheckpoint(hf, { step: 0, model: { ...ck.model, ...extra }, config: { ...ck.config, architectures: ['BertForPreTraining'] }, tokenizerFiles: [join(pre, 'checkpoint-60', 'tokenizer.json')] });
    ck.dispose();
    const r = await finetune({ ...base, epochs: 1, initFrom: hf, method: 'mvp', template: ['[MASK] :'], verbalizer, out: join(root, 'from-hf') }, { output: null });
    expect(r.stopped).toBe('done');
  });

  it('refuses bad settings, naming the field', async () => {
    await expect(finetune({ method: 'mlp-ft' })).rejects.toThrow('Expected one of task (spam, wordnet-topics, wordnet-defs) or taskData for the data to fine-tune on but received neither');
    await expect(finetune({ taskData: data, method: 'mvp', template: ['no mask here'] })).rejects.toThrow('Expected a template with exactly one [MASK] for template but received "no mask here"');
    await expect(finetune({ taskData: data, method: 'mlp-ft', template: ['[MASK] .'] })).rejects.toThrow('Expected template and verbalizer only with method mvp');
    await expect(finetune({ ...base, initFrom: pre, method: 'mlp-ft', maxLength: 4096, out: join(root, 'long') }, { output: null })).rejects.toThrow(
      'options: Expected maxLength at most 512 (the model\'s max_position_embeddings in',
    );
    await expect(finetune({ ...base, initFrom: pre, method: 'mvp', template: ['[MASK] :'], verbalizer, out: join(root, 'mlp'), resume: true }, { output: null })).rejects.toThrow(
      /Expected method mlp-ft \(the setting of the run in .*\) for resume but received mvp/,
    );
  });
});
