/**
 * `cloze bench robust` on a tiny task (the who.jsonl fixture) and a tiny
 * pre-trained encoder: every method × seed is fine-tuned and attacked by
 * both attacks on the same examples, summary.md / robust-accuracy.svg /
 * results.json agree with the records, and a second run with the same
 * settings reuses the records instead of redoing them.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readLabelledFile, stratifiedSplit } from '../src/data/labelled.js';
import { runRobustSuite, type RobustTask } from '../src/commands/bench-robust.js';
import { pretrainTinyEncoder } from './helpers/tiny-encoder.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-robust-'));
let pre = '';
let task: RobustTask;

beforeAll(async () => {
  pre = await pretrainTinyEncoder(root);
  const all = readLabelledFile(join(__dirname, 'fixtures', 'finetune', 'who.jsonl')).examples;
  const { train, test } = stratifiedSplit(all, 0.2, 0);
  task = {
    name: 'who', train, test, templates: ['[MASK] :'], maxPerturb: 0.3,
    verbalizer: { animal: ['cat', 'dog', 'bird'], person: ['friend', 'teacher', 'farmer'] },
  };
}, 120_000);

describe('cloze bench robust', () => {
  it('fine-tunes and attacks every method and seed on the same examples, and reports what it measured', async () => {
    const out = join(root, 'suite');
    const opts = {
      out, initFrom: pre, taskData: [task], methods: ['mlp-ft', 'mvp+adv'], seeds: [0, 1], epochs: 2, maxTrain: 0, examples: 6, maxLength: 24, log: () => {},
    };
    const r = await runRobustSuite(opts);
    expect(r.records.map((x) => `${x.method}/${x.seed}`)).toEqual(['mlp-ft/0', 'mvp+adv/0', 'mlp-ft/1', 'mvp+adv/1']);
    for (const rec of r.records) {
      for (const a of ['pwws', 'bert-attack'] as const) {
        const m = rec.attacks[a]!;
        expect(m.examples).toBe(6);
        expect(m.skipped + m.succeeded + m.failed).toBe(6);
        expect(m.accuracyUnderAttack).toBeCloseTo(m.failed / 6, 12);
      }
      // Both attacks see the same examples: the same ones are skipped.
      expect(rec.attacks.pwws!.skipped).toBe(rec.attacks['bert-attack']!.skipped);
    }
    const summary = readFileSync(join(out, 'summary.md'), 'utf8');
    expect(summary).toContain('## who');
    expect(summary).toContain('| mvp+adv |');
    expect(readFileSync(join(out, 'robust-accuracy.svg'), 'utf8')).toMatch(/^<svg/);
    const saved = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    expect(saved.records).toEqual(JSON.parse(JSON.stringify(r.records)));
    // The same settings again: every record is reused, nothing is fine-tuned.
    const again = await runRobustSuite({ ...opts, log: (l: string) => { throw new Error(`unexpected work: ${l}`); } });
    expect(again.records).toEqual(saved.records);
    expect(existsSync(join(out, 'runs', 'who', 'mlp-ft-seed0'))).toBe(true);
  }, 240_000);

  it('refuses an unknown method or task, naming it', async () => {
    await expect(runRobustSuite({ out: join(root, 'bad'), initFrom: pre, taskData: [task], methods: ['nope'] })).rejects.toThrow('for methods but received "nope"');
    await expect(runRobustSuite({ out: join(root, 'bad'), initFrom: pre, tasks: ['imdb'] })).rejects.toThrow('for tasks but received "imdb"');
    await expect(runRobustSuite({ out: join(root, 'bad'), initFrom: pre, taskData: [task], seeds: [0, -1] })).rejects.toThrow('seeds[1]');
    await expect(runRobustSuite({ out: join(root, 'bad'), initFrom: pre, taskData: [task], examples: 0 })).rejects.toThrow('examples');
    await expect(runRobustSuite({ out: join(root, 'bad'), initFrom: pre, taskData: [task], scale: Number.NaN })).rejects.toThrow('Expected a positive number for scale but received NaN');
  });
});
