/**
 * bench:finetune-step's pieces: the case spec (the [MASK] positions handed to
 * the PyTorch reference are the classifier's own), our step through the real
 * task and loop on a small model, the baseline runner (runBaseline) with node
 * standing in for python, and, where /usr/bin/python3 has torch, that the
 * reference builds the same number of parameters as cloze.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runBaseline } from '../bench/lib/torch.js';
import { finetuneStepSpec, ourFinetuneStep, runTorchFinetune, torchFinetuneArgs, type FinetuneCase } from '../bench/suites/finetune_step.js';
import { buildSequence, padSequences } from '../src/tasks/finetune/mvp-inputs.js';

const SMALL = { vocabSize: 1100, hidden: 16, layers: 1, heads: 2, intermediate: 32 };
const SHAPE = { config: SMALL, B: 3, L: 24 };
const mvp: FinetuneCase = { preset: 'bert-tiny', method: 'mvp', adv: false };
const mlp: FinetuneCase = { preset: 'bert-tiny', method: 'mlp-ft', adv: false };

describe('finetuneStepSpec', () => {
  it('gives the torch side the [MASK] rows the classifier builds, and cloze finetune\'s optimizer settings', () => {
    const spec = finetuneStepSpec(mvp, SHAPE);
    expect(spec.templates).toHaveLength(4);
    expect(spec.words).toHaveLength(6);
    expect(spec.classOf).toEqual([0, 0, 0, 1, 1, 1]);
    // Full-length inputs (more tokens than fit): every sequence is L long, its [MASK] where the spec says.
    const a = Int32Array.from({ length: 40 }, (_, i) => 2000 - i);
    const seqs = spec.templates.map((t) => buildSequence({ padId: 0, clsId: 101, sepId: 102, maskId: 103 }, a, null, t, spec.L));
    expect(seqs.map((s) => s.ids.length)).toEqual([24, 24, 24, 24]);
    const { maskRows } = padSequences(seqs, 0);
    expect(Array.from(maskRows!.toArray() as Int32Array, (r, t) => r - t * spec.L)).toEqual(spec.maskPositions);
    for (const [t, p] of spec.maskPositions.entries()) expect(seqs[t]!.ids[p]).toBe(103);
    expect(spec.cfg.batchSize).toBe(3);
    expect(spec.cfg.maxLength).toBe(24);

    const args = torchFinetuneArgs(spec, mvp, 1, 2);
    const val = (k: string): string => args[args.indexOf(k) + 1]!;
    expect(val('--mask-pos')).toBe(spec.maskPositions.join(','));
    expect(val('--words')).toBe(spec.words.join(','));
    expect(Number(val('--lr'))).toBe(spec.cfg.lr);
    expect(Number(val('--eps'))).toBe(spec.cfg.eps);
    expect(Number(val('--clip'))).toBe(spec.cfg.gradClip);
    expect(Number(val('--hidden'))).toBe(16);
    expect(args).not.toContain('--adv');
  });

  it('has no prompts for mlp-ft, and the preset\'s shape by default', () => {
    const spec = finetuneStepSpec(mlp);
    expect(spec.words).toEqual([]);
    expect(spec.maskPositions).toEqual([]);
    expect(spec.config).toMatchObject({ hidden: 128, layers: 2, heads: 2, intermediate: 512, vocabSize: 30522, hiddenDropout: 0.1 });
    expect(torchFinetuneArgs(spec, { ...mlp, adv: true }, 1, 1)).toContain('--adv');
    expect(torchFinetuneArgs(spec, mlp, 1, 1)).not.toContain('--mask-pos');
  });
});

describe('ourFinetuneStep', () => {
  for (const c of [mlp, mvp, { ...mvp, adv: true }, { ...mlp, adv: true }]) {
    it(`times the real step through the loop: ${c.method}${c.adv ? ' --adv' : ''}`, async () => {
      const r = await ourFinetuneStep(c, 2, 1, 2, finetuneStepSpec(c, SHAPE));
      expect(r.ok).toBe(true);
      expect(r.samplesMs).toHaveLength(2);
      expect(r.losses).toHaveLength(3);
      for (const l of r.losses) expect(Number.isFinite(l)).toBe(true);
      expect(r.sequences).toBe(c.method === 'mvp' ? 12 : 3);
      expect(r.medianMs).toBeGreaterThan(0);
      expect(r.examplesPerS).toBeCloseTo(3 / (r.medianMs / 1e3), 6);
    });
  }
});

describe('runBaseline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cloze-baseline-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const script = (name: string, body: string): string => {
    const p = join(dir, name);
    writeFileSync(p, body);
    return p;
  };

  it('passes --threads and the thread variables, and reads the last line', () => {
    const p = script('ok.mjs', "console.log('noise');\nconsole.log(JSON.stringify({ ok: true, argv: process.argv.slice(2), omp: process.env.OMP_NUM_THREADS, blas: process.env.OPENBLAS_NUM_THREADS }));\n");
    const r = runBaseline<{ ok: true; argv: string[]; omp: string; blas: string }>({ python: process.execPath, script: p, args: ['--x', '1'], threads: 3 });
    expect(r).toEqual({ ok: true, argv: ['--threads', '3', '--x', '1'], omp: '3', blas: '3' });
  });

  it('sets no threads when none are given', () => {
    const p = script('nothreads.mjs', 'console.log(JSON.stringify({ ok: true, argv: process.argv.slice(2) }));\n');
    expect(runBaseline<{ ok: true; argv: string[] }>({ python: process.execPath, script: p, args: ['--y'] })).toEqual({ ok: true, argv: ['--y'] });
  });

  it('turns every failure into a reason', () => {
    expect(runBaseline({ python: '', script: 'mlm_torch.py', args: [] })).toEqual({ ok: false, error: 'disabled (--no-torch)' });
    expect(runBaseline({ python: process.execPath, script: 'no_such_baseline.py', args: [] })).toEqual({ ok: false, error: 'bench/baselines/no_such_baseline.py not found' });
    const crash = script('crash.mjs', "console.error('boom: no torch');\nprocess.exit(3);\n");
    const r1 = runBaseline({ python: process.execPath, script: crash, args: [] });
    expect(r1.ok).toBe(false);
    expect(!r1.ok && r1.error).toMatch(/crash\.mjs exited with status 3: boom: no torch/);
    const bare = script('bare.mjs', 'console.log(JSON.stringify({ ok: false }));\n');
    expect(runBaseline({ python: process.execPath, script: bare, args: [] })).toEqual({ ok: false, error: 'no result' });
    const said = script('said.mjs', "console.log(JSON.stringify({ ok: false, error: 'cannot import torch' }));\n");
    expect(runBaseline({ python: process.execPath, script: said, args: [] })).toEqual({ ok: false, error: 'cannot import torch' });
    expect(runBaseline({ python: join(dir, 'no-python'), script: bare, args: [] })).toMatchObject({ ok: false, error: expect.stringMatching(/^could not run/) });
  });
});

const hasTorch = spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!hasTorch)('finetune_torch.py (needs /usr/bin/python3 with torch)', () => {
  for (const c of [mlp, { ...mvp, adv: true }]) {
    it(`builds as many parameters as cloze and trains: ${c.method}${c.adv ? ' --adv' : ''}`, async () => {
      const spec = finetuneStepSpec(c, SHAPE);
      const ours = await ourFinetuneStep(c, 1, 1, 1, spec);
      const t = runTorchFinetune('/usr/bin/python3', 1, spec, c, 1, 1);
      if (!t.ok) throw new Error(t.error);
      expect(t.params).toBe(ours.params);
      expect(t.sequences).toBe(ours.sequences);
      expect(t.threads).toBe(1);
      for (const l of t.losses) expect(Number.isFinite(l)).toBe(true);
    });
  }
});
