/** Run-config validation, lr schedules and the progress line of the trainer. */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadRunConfig, readRunFile, resolveConfig, RUN_FIELDS, RUN_SECTIONS } from '../src/tasks/config.js';
import { resolveRun } from '../src/tasks/pretrain.js';
import { learningRate } from '../src/train/schedule.js';
import { formatProgress, Progress } from '../src/train/progress.js';

describe('run config', () => {
  it('fills every default and keeps given values', () => {
    const c = resolveConfig({ preset: 'bert-mini', maxSteps: 50, betas: [0.9, 0.98] });
    expect(c.preset).toBe('bert-mini');
    expect(c.maxSteps).toBe(50);
    expect(c.betas).toEqual([0.9, 0.98]);
    for (const [k, spec] of Object.entries(RUN_FIELDS)) if (!['preset', 'maxSteps', 'betas'].includes(k)) expect(c[k as keyof typeof c]).toEqual(spec.default);
  });

  it('names the file and the field in every error', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloze-cfg-'));
    const p = join(dir, 'run.json');
    writeFileSync(p, JSON.stringify({ maxStep: 10 }));
    expect(() => loadRunConfig(p)).toThrow(`${p}: Expected a known setting for maxStep but received an unknown field`);
    writeFileSync(p, JSON.stringify({ batchSize: '32' }));
    expect(() => loadRunConfig(p)).toThrow(`${p}: Expected an integer in [1, ∞] for batchSize but received "32"`);
    writeFileSync(p, JSON.stringify({ masking: 'random' }));
    expect(() => loadRunConfig(p)).toThrow(`${p}: Expected one of token, whole-word, span, ngram for masking but received "random"`);
    writeFileSync(p, JSON.stringify({ betas: [0.9] }));
    expect(() => loadRunConfig(p)).toThrow(`${p}: Expected two numbers in [0, 0.999999] for betas but received [0.9]`);
    writeFileSync(p, '{ not json');
    expect(() => loadRunConfig(p)).toThrow(`${p}: Expected a JSON object but received text that is not JSON`);
    expect(() => loadRunConfig(join(dir, 'missing.json'))).toThrow(/missing\.json: could not read the run config/);
    expect(() => resolveConfig({ lr: -1 })).toThrow('options: Expected a number in [0, ∞] for lr but received -1');
  });

  it('keeps each task to its own section: a setting of another task is an error naming that task', () => {
    expect(() => resolveConfig({ task: 'mlm', method: 'simmim' })).toThrow(
      'options: Expected a setting of task mlm for method but received a setting of task mim (Masked image modeling (task mim)); set task to mim, or drop method',
    );
    expect(() => resolveConfig({ masking: 'span' }, 'run.json')).not.toThrow();
    expect(() => resolveConfig({ task: 'spark', masking: 'span' }, 'run.json')).toThrow(/^run\.json: Expected a setting of task spark for masking but received a setting of task mlm/);
    // The image section belongs to both image tasks.
    expect(resolveConfig({ task: 'spark', probeEvery: 2 }).probeEvery).toBe(2);
    expect(resolveConfig({ task: 'mim', probeEvery: 3, method: 'simmim' }).method).toBe('simmim');
    expect(() => resolveConfig({ task: 'mlm', probeEvery: 3 })).toThrow(/for probeEvery but received a setting of task mim or spark/);
  });

  it('takes back its own resolved settings (as checkpoints save them), and leaves the task of a file to a flag', () => {
    for (const task of ['mlm', 'mim', 'spark']) {
      const c = resolveRun({ task });
      expect(resolveConfig(JSON.parse(JSON.stringify(c)))).toEqual(c);
    }
    const dir = mkdtempSync(join(tmpdir(), 'cloze-cfg-'));
    const p = join(dir, 'run.json');
    writeFileSync(p, JSON.stringify({ method: 'simmim', maxSteps: 5 }));
    expect(readRunFile(p)).toEqual({ method: 'simmim', maxSteps: 5 });
    expect(loadRunConfig(p, { task: 'mim' }).method).toBe('simmim');
    expect(() => loadRunConfig(p)).toThrow(`${p}: Expected a setting of task mlm for method but received a setting of task mim`);
  });

  it.skipIf(!existsSync(join(__dirname, '..', 'dist', 'src', 'cli.js')))('names every field once across the sections, and --help lists them under their section', () => {
    const names = RUN_SECTIONS.flatMap((s) => Object.keys(s.fields));
    expect(new Set(names).size).toBe(names.length);
    expect(names.sort()).toEqual(Object.keys(RUN_FIELDS).sort());
    const help = execFileSync(process.execPath, [join(__dirname, '..', 'bin', 'cloze.js'), 'pretrain', '--help'], { encoding: 'utf8', timeout: 120_000 });
    for (const s of RUN_SECTIONS) {
      const at = help.indexOf(`${s.title}:`);
      expect(at, s.title).toBeGreaterThanOrEqual(0);
      const next = help.indexOf('\n\n', at);
      const block = help.slice(at, next < 0 ? undefined : next);
      for (const f of Object.keys(s.fields)) expect(block, `${f} under ${s.title}`).toContain(`--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} `);
    }
  });

  it('applies overrides from the command line over the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloze-cfg-'));
    const p = join(dir, 'run.json');
    writeFileSync(p, JSON.stringify({ maxSteps: 10, seed: 3 }));
    const c = loadRunConfig(p, { maxSteps: 20 });
    expect([c.maxSteps, c.seed]).toEqual([20, 3]);
  });
});

describe('learning-rate schedule', () => {
  const base = { lr: 1, totalSteps: 110, warmupSteps: 10, minLrRatio: 0 } as const;
  it('warms up linearly to the peak, then decays linearly or by cosine to the floor', () => {
    expect(learningRate(0, { ...base, decay: 'linear' })).toBeCloseTo(0.1, 12);
    expect(learningRate(9, { ...base, decay: 'linear' })).toBeCloseTo(1, 12);
    expect(learningRate(10, { ...base, decay: 'linear' })).toBeCloseTo(1, 12);
    expect(learningRate(60, { ...base, decay: 'linear' })).toBeCloseTo(0.5, 12);
    expect(learningRate(110, { ...base, decay: 'linear' })).toBeCloseTo(0, 12);
    expect(learningRate(60, { ...base, decay: 'cosine' })).toBeCloseTo(0.5, 12);
    expect(learningRate(35, { ...base, decay: 'cosine' })).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI / 4)), 12);
    expect(learningRate(110, { ...base, decay: 'linear', minLrRatio: 0.02 })).toBeCloseTo(0.02, 12);
    expect(learningRate(500, { ...base, decay: 'constant' })).toBe(1);
    expect(() => learningRate(-1, { ...base, decay: 'linear' })).toThrow('Expected a non-negative integer for step but received -1');
  });
});

describe('progress', () => {
  it('prints step, loss, lr, tokens/s and ETA; plain lines every N steps off a TTY', () => {
    expect(formatProgress({ step: 5, totalSteps: 10, loss: 2.5, tokensPerSec: 1234.4, lr: 1e-3 }, 2)).toBe(
      'step 5/10  loss 2.5000  lr 1.00e-3  1234 tok/s  eta 0m10s',
    );
    const out: string[] = [];
    const p = new Progress({ write: (s: string) => out.push(s), isTTY: false }, 3);
    for (let s = 1; s <= 7; s++) p.update({ step: s, totalSteps: 7, loss: 1, tokensPerSec: 1, lr: 1 }, 1);
    expect(out.map((l) => l.split('  ')[0])).toEqual(['step 3/7', 'step 6/7', 'step 7/7']);
    const tty: string[] = [];
    const t = new Progress({ write: (s: string) => tty.push(s), isTTY: true });
    t.update({ step: 1, totalSteps: 2, loss: 1, tokensPerSec: 1, lr: 1 }, 1);
    expect(tty[0]!.startsWith('\r[###############...............] step 1/2')).toBe(true);
  });
});
