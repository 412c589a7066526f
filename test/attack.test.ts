/**
 * `cloze attack` end to end on tiny fine-tuned models (the who.jsonl fixture,
 * as in finetune.test.ts): every success really flips the re-scored
 * prediction, the word budget and the stopword rule hold on every example,
 * skipped examples are exactly the ones the model gets wrong, batched and
 * one-query-a-pass runs agree, and two runs give the same JSON.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readLabelledFile } from '../src/data/labelled.js';
import { maxChangedWords } from '../src/eval/attack/greedy.js';
import { isStopword } from '../src/eval/attack/stopwords.js';
import { splitWords } from '../src/eval/attack/words.js';
import { attack, attackSummary, type AttackReport } from '../src/tasks/finetune/attack.js';
import { loadClassifier } from '../src/tasks/finetune/predict.js';
import { finetune } from '../src/tasks/run-finetune.js';
import { pretrainTinyEncoder } from './helpers/tiny-encoder.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-attack-'));
const data = join(__dirname, 'fixtures', 'finetune', 'who.jsonl');
const hasWordNet = existsSync('/usr/share/wordnet/index.noun');
let pre = '';
const runs: Record<string, string> = {};

beforeAll(async () => {
  pre = await pretrainTinyEncoder(root);
  const verbalizer = join(root, 'verbalizer.json');
  writeFileSync(verbalizer, JSON.stringify({ animal: ['cat', 'dog', 'bird'], person: ['friend', 'teacher', 'farmer'] }));
  const base = { taskData: data, maxLength: 24, batchSize: 16, epochs: 4, lr: 1e-3, threads: 0, seed: 3, initFrom: pre };
  runs['mlp-ft'] = join(root, 'mlp');
  await finetune({ ...base, method: 'mlp-ft', out: runs['mlp-ft'] }, { output: null });
  runs.mvp = join(root, 'mvp');
  await finetune({ ...base, method: 'mvp', out: runs.mvp, template: ['[MASK] :', '[SEP] it is the [MASK]'], verbalizer }, { output: null });
}, 180_000);

/** The rules every outcome must keep, checked against the model afresh. */
async function checkInvariants(r: AttackReport, checkpoint: string): Promise<void> {
  const test = readLabelledFile(data).examples;
  const c = await loadClassifier(checkpoint);
  try {
    const before = await c.predict(r.outcomes.map((o) => o.original));
    const after = await c.predict(r.outcomes.map((o) => o.perturbed));
    r.outcomes.forEach((o, i) => {
      const truth = r.labels[o.label]!;
      expect(o.status === 'skipped').toBe(before[i]!.label !== truth);
      if (o.status === 'succeeded') expect(after[i]!.label).not.toBe(truth);
      if (o.status === 'failed') expect(after[i]!.label).toBe(truth);
      const w = splitWords(o.original);
      expect(o.changed.length).toBeLessThanOrEqual(maxChangedWords(w.words.length, r.maxPerturb));
      expect(new Set(o.changed.map((x) => x.index)).size).toBe(o.changed.length);
      const words = w.words.slice();
      for (const ch of o.changed) {
        expect(isStopword(ch.from)).toBe(false);
        expect(words[ch.index]).toBe(ch.from);
        words[ch.index] = ch.to;
      }
      expect(splitWords(o.perturbed).words).toEqual(words);
      expect(o.queries).toBeLessThanOrEqual(r.maxQueries);
    });
    expect(test.length).toBeGreaterThan(0);
  } finally {
    c.dispose();
  }
}

describe('cloze attack', () => {
  it('bert-attack on mlp-ft: successes flip the re-scored prediction, budgets and stopwords hold, skips are the errors', async () => {
    const r = await attack({ checkpoint: runs['mlp-ft']!, attack: 'bert-attack', examples: 24, maxPerturb: 0.3 });
    expect(r.metrics.examples).toBe(24);
    expect(r.metrics.succeeded).toBeGreaterThan(0);
    expect(r.metrics.skipped + r.metrics.succeeded + r.metrics.failed).toBe(24);
    await checkInvariants(r, runs['mlp-ft']!);
    // One-query-a-pass scoring finds the same attacks.
    const single = await attack({ checkpoint: runs['mlp-ft']!, attack: 'bert-attack', examples: 8, maxPerturb: 0.3, batchSize: 1 });
    const batched = await attack({ checkpoint: runs['mlp-ft']!, attack: 'bert-attack', examples: 8, maxPerturb: 0.3 });
    expect(single.outcomes).toEqual(batched.outcomes);
    expect(single.forwardPasses).toBe(single.queries);
    expect(batched.forwardPasses).toBeLessThan(batched.queries);
  }, 120_000);

  it.skipIf(!hasWordNet)('pwws on mvp keeps the rules, and two runs give the same JSON', async () => {
    const out = join(root, 'pwws-mvp');
    const r = await attack({ checkpoint: runs.mvp!, attack: 'pwws', examples: 16, maxPerturb: 0.3, out });
    await checkInvariants(r, runs.mvp!);
    const again = await attack({ checkpoint: runs.mvp!, attack: 'pwws', examples: 16, maxPerturb: 0.3 });
    const strip = (x: AttackReport): unknown => ({ ...attackSummary(x), seconds: null, queriesPerSecond: null });
    expect(strip(again)).toEqual(strip(r));
    expect(again.outcomes).toEqual(r.outcomes);
    const lines = readFileSync(join(out, 'adversarial.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.length).toBe(16);
    expect(Object.keys(lines[0]).sort()).toEqual(['after', 'before', 'changed', 'label', 'original', 'perturbed', 'queries', 'status', 'words']);
    expect(JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')).examples).toBe(16);
  }, 120_000);

  it.skipIf(!existsSync(join(__dirname, '..', 'dist', 'src', 'cli.js')))('cloze attack --json prints one line with every metric', () => {
    const bin = join(__dirname, '..', 'bin', 'cloze.js');
    const line = execFileSync(process.execPath, [bin, 'attack', '--checkpoint', runs['mlp-ft']!, '--attack', 'bert-attack', '--examples', '6', '--json', '--quiet'], { encoding: 'utf8', timeout: 120_000 }).trim();
    const m = JSON.parse(line);
    for (const k of ['cleanAccuracy', 'accuracyUnderAttack', 'attackSuccessRate', 'avgWordsPerturbedPercent', 'avgQueries', 'queriesPerSecond', 'skipped', 'succeeded', 'failed']) expect(m).toHaveProperty(k);
    expect(m.examples).toBe(6);
    expect(m.maxPerturb).toBe(0.1);
  }, 120_000);

  it('attacks only the second text of a sentence pair', async () => {
    const pairs = join(root, 'pairs.jsonl');
    const rows = readLabelledFile(data).examples.map((e) => ({ text: 'who is it ?', text_pair: e.text, label: e.label }));
    writeFileSync(pairs, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const out = join(root, 'pair-mlp');
    await finetune({ taskData: pairs, maxLength: 32, batchSize: 16, epochs: 4, lr: 1e-3, threads: 0, seed: 3, initFrom: pre, method: 'mlp-ft', out }, { output: null });
    const r = await attack({ checkpoint: out, attack: 'bert-attack', examples: 12, maxPerturb: 0.3 });
    const seconds = new Set(rows.map((x) => x.text_pair));
    for (const o of r.outcomes) {
      expect(seconds.has(o.original)).toBe(true);
      expect(o.perturbed).not.toContain('who is it');
    }
    expect(r.metrics.examples).toBe(12);
  }, 120_000);

  it('refuses bad settings, naming them', async () => {
    await expect(attack({ checkpoint: runs['mlp-ft']!, attack: 'textfooler' as never })).rejects.toThrow('Expected one of pwws, bert-attack for attack but received "textfooler"');
    await expect(attack({ checkpoint: runs['mlp-ft']!, attack: 'pwws', examples: 0 })).rejects.toThrow('examples');
    await expect(attack({ checkpoint: runs['mlp-ft']!, attack: 'pwws', maxPerturb: 1.5 })).rejects.toThrow('Expected a fraction in (0, 1] for maxPerturb but received 1.5');
    await expect(attack({ checkpoint: runs['mlp-ft']!, attack: 'bert-attack', mlm: join(root, 'nowhere') })).rejects.toThrow('for mlm');
    await expect(attack({ checkpoint: pre, attack: 'pwws' })).rejects.toThrow('Expected a fine-tuned checkpoint');
  }, 60_000);
});
