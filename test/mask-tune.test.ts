/**
 * Weight-mask tuning (issue 15) end to end on the committed fixture: the
 * initial masked fraction, frozen weights bit-identical through training,
 * exports (a plain classifier, and a mask file served over the base) that
 * predict what the run predicts, --apply-mask, exact resume, and the errors
 * for a mask over another base or of the wrong shapes.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../src/checkpoint/checkpoint.js';
import { fileSha256, readMaskFile, writeMaskFile } from '../src/checkpoint/mask-file.js';
import { exportCheckpoint } from '../src/commands/export.js';
import { readLabelledFile } from '../src/data/labelled.js';
import { BertForSequenceClassification } from '../src/models/bert/classification.js';
import { bertConfigFromHf } from '../src/models/bert/hf-config.js';
import { attachWeightMasks, initScoreRange, maskedLayers, maskedOutFraction } from '../src/tasks/finetune/mask-tune.js';
import { loadClassifier, loadMaskedClassifiers } from '../src/tasks/finetune/predict.js';
import { finetune } from '../src/tasks/run-finetune.js';
import { tensor } from '../src/tensor.js';
import { pretrainTinyEncoder } from './helpers/tiny-encoder.js';
import { straightAndResumed } from './helpers/resume.js';

const root = mkdtempSync(join(tmpdir(), 'cloze-mask-tune-'));
const data = join(__dirname, 'fixtures', 'finetune', 'who.jsonl');
let pre = '';
// lr 3e-2 rather than the default 5e-3: 300 steps must move scores that start up to 0.58 above τ
// (at 5e-3 the fixture needs about 500 steps before the mask separates the classes).
const base = { taskData: data, maxLength: 24, batchSize: 8, epochs: 10, lr: 5e-2, logEvery: 5, threads: 0, seed: 5, method: 'mask-tune' };
const texts = readLabelledFile(data).examples.map((x) => x.text);

beforeAll(async () => {
  pre = await pretrainTinyEncoder(root);
}, 120_000);

async function probabilities(path: string, mask?: string): Promise<number[][]> {
  const c = await loadClassifier(path, mask ? { mask } : {});
  try {
    return (await c.predict(texts)).map((p) => Object.values(p.probabilities));
  } finally {
    c.dispose();
  }
}

describe('weight-mask tuning', () => {
  it('starts with 5% ± 0.5% masked out, scores in [−α, (α+τ)/p − α], everything but the scores frozen', () => {
    const model = new BertForSequenceClassification({ vocabSize: 50, hidden: 64, layers: 2, heads: 2, intermediate: 256, maxPosition: 32 }, { numLabels: 3, seed: 1 });
    try {
      attachWeightMasks(model, { threshold: 0.01, initSparsity: 0.05, initScale: 0.02, seed: 1 });
      expect(maskedOutFraction(model)).toBeGreaterThan(0.045);
      expect(maskedOutFraction(model)).toBeLessThan(0.055);
      const [lo, hi] = initScoreRange({ threshold: 0.01, initSparsity: 0.05, initScale: 0.02 });
      expect(hi).toBeCloseTo(0.58, 12);
      // 2 layers × 6 linears, the pooler and the classifier.
      expect(maskedLayers(model).length).toBe(14);
      for (const [, l] of maskedLayers(model)) {
        const s = l.weightMask!.toArray();
        expect(Math.min(...s)).toBeGreaterThanOrEqual(lo);
        expect(Math.max(...s)).toBeLessThanOrEqual(hi);
      }
      const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([n]) => n);
      expect(trainable.length).toBe(14);
      expect(trainable.every((n) => n.endsWith('.weight_mask'))).toBe(true);
    } finally {
      model.dispose();
    }
  });

  it('learns a mask that beats the majority class with frozen weights bit-identical; both exports predict what the run predicts', async () => {
    const out = join(root, 'mask');
    const r = await finetune({ ...base, initFrom: pre, out }, { output: null });
    expect(r.method).toBe('mask-tune');
    // 48 test examples, 60% "person".
    expect(r.eval!.accuracy).toBeGreaterThan(0.7);
    const ck = loadCheckpoint(latestCheckpoint(out)!);
    const b = loadCheckpoint(latestCheckpoint(pre)!);
    try {
      let compared = 0;
      for (const [k, t] of Object.entries(b.model)) {
        if (!k.startsWith('bert.')) continue;
        expect(Buffer.from((ck.model[k]!.toArray() as Float32Array).buffer).equals(Buffer.from((t.toArray() as Float32Array).buffer)), k).toBe(true);
        compared++;
      }
      expect(compared).toBeGreaterThan(20);
      // The pooler and classifier (not in an MLM base) stay at the run's initialisation, which its seed fixes.
      const fresh = new BertForSequenceClassification(bertConfigFromHf(ck.config, 'config.json'), { numLabels: 2, seed: base.seed });
      try {
        for (const [k, t] of fresh.namedParameters().filter(([n]) => /^(bert\.pooler|classifier)\./.test(n))) {
          expect(Buffer.from((ck.model[k]!.toArray() as Float32Array).buffer).equals(Buffer.from((t.toArray() as Float32Array).buffer)), k).toBe(true);
          compared++;
        }
      } finally {
        fresh.dispose();
      }
      expect(compared).toBeGreaterThan(24);
      // The mask moved: some scores crossed τ.
      const s = ck.model['bert.encoder.layer.0.attention.self.query.weight_mask']!.toArray();
      expect(Array.from(s).some((v) => v <= 0.01)).toBe(true);
    } finally {
      ck.dispose();
      b.dispose();
    }
    const want = await probabilities(out);
    // A plain classifier: W ⊙ mask, no scores, loaded as mlp-ft.
    exportCheckpoint(out, join(root, 'mask-plain'));
    const plain = loadCheckpoint(join(root, 'mask-plain'));
    expect(Object.keys(plain.model).some((k) => k.endsWith('weight_mask'))).toBe(false);
    plain.dispose();
    const got = await probabilities(join(root, 'mask-plain'));
    // The mask file over the base: one bit per masked weight plus the head, served with packed bits.
    const file = join(root, 'task.mask');
    exportCheckpoint(out, file, { maskOnly: true });
    const served = await probabilities(latestCheckpoint(pre)!, file);
    for (let i = 0; i < want.length; i++) {
      for (let c = 0; c < 2; c++) {
        expect(got[i]![c]).toBeCloseTo(want[i]![c]!, 5);
        expect(served[i]![c]).toBeCloseTo(want[i]![c]!, 5);
      }
    }
    const mf = readMaskFile(file);
    const bits = mf.header.layers.reduce((a, l) => a + l.shape[0] * l.shape[1], 0);
    const heads = mf.header.tensors.reduce((a, t) => a + 4 * t.shape.reduce((x, y) => x * y, 1), 0);
    expect(statSync(file).size).toBeLessThan(bits / 8 + heads + 8192);
  }, 180_000);

  it('serves several tasks over one loaded base: the encoder weights are shared, each task keeps its bits and head', async () => {
    const other = join(root, 'mask-seed6');
    await finetune({ ...base, seed: 6, initFrom: pre, out: other }, { output: null });
    const files = [join(root, 'task.mask'), join(root, 'task-seed6.mask')];
    exportCheckpoint(other, files[1]!, { maskOnly: true });
    const want = [await probabilities(join(root, 'mask')), await probabilities(other)];
    expect(want[0]).not.toEqual(want[1]);
    const served = await loadMaskedClassifiers(latestCheckpoint(pre)!, files);
    try {
      const [pa, pb] = served.map((c) => new Map(c.classifier.module.namedParameters()));
      const shared = [...pa!].filter(([n, p]) => p.native.sharesStorage(pb!.get(n)!.native)).map(([n]) => n);
      expect(shared.length).toBeGreaterThan(20);
      expect(shared.every((n) => /^bert\.(embeddings|encoder)\./.test(n))).toBe(true);
      for (let t = 0; t < 2; t++) {
        const got = (await served[t]!.predict(texts)).map((p) => Object.values(p.probabilities));
        got.forEach((row, i) => row.forEach((v, c) => expect(v).toBeCloseTo(want[t]![i]![c]!, 5)));
      }
    } finally {
      for (const c of served) c.dispose();
    }
  }, 60_000);

  it.skipIf(!existsSync(join(__dirname, '..', 'dist', 'src', 'cli.js')))('cloze export --mask-only and cloze predict --mask on the command line', async () => {
    const bin = join(__dirname, '..', 'bin', 'cloze.js');
    const file = join(root, 'cli.mask');
    execFileSync(process.execPath, [bin, 'export', '--checkpoint', join(root, 'mask'), '--mask-only', '--out', file], { encoding: 'utf8', timeout: 60_000 });
    const line = JSON.parse(execFileSync(process.execPath, [bin, 'predict', '--checkpoint', latestCheckpoint(pre)!, '--mask', file, '--json', texts[0]!], { encoding: 'utf8', timeout: 60_000 }).trim());
    const c = await loadClassifier(join(root, 'mask'));
    const [want] = await c.predict([texts[0]!]);
    c.dispose();
    expect(line.label).toBe(want!.label);
    expect(line.probabilities.animal).toBeCloseTo(want!.probabilities.animal!, 5);
  });

  it('--apply-mask starts from the mask: with lr 0 both methods, and a run with another τ, score what the run scored', async () => {
    const file = join(root, 'task.mask');
    const want = await probabilities(join(root, 'mask'));
    // The same bits recorded under another τ (0.05): the run places its scores around its own τ (0.01), not the file's.
    const mf = readMaskFile(file);
    const other = join(root, 'task-tau.mask');
    writeMaskFile(other, { ...mf.header, threshold: 0.05 }, mf.bits, mf.tensors);
    const cases: Array<[string, Record<string, unknown>, string]> = [['mlp-ft', { method: 'mlp-ft' }, file], ['mask-tune', {}, file], ['mask-tune from τ 0.05', {}, other]];
    for (const [name, extra, mask] of cases) {
      const out = join(root, `apply-${name.replace(/[^a-z0-9.-]/g, '')}`);
      const r = await finetune({ ...base, ...extra, lr: 0, epochs: 1, initFrom: pre, applyMask: mask, out }, { output: null });
      expect(r.stopped).toBe('done');
      const got = await probabilities(out);
      got.forEach((row, i) => row.forEach((v, c) => expect(v, name).toBeCloseTo(want[i]![c]!, 5)));
    }
  }, 120_000);

  it('resumes exactly', async () => {
    const cfg = { ...base, initFrom: pre, epochs: 2, saveEvery: 5 };
    const r = await straightAndResumed(finetune, cfg, join(root, 'resume'), 7);
    expect(r.stoppedAt).toBe(7);
    expect(r.resumed).toEqual(r.straight);
  }, 120_000);

  it('refuses a mask over another base, of other shapes or layers, naming the file, the layer and both hashes', async () => {
    const file = join(root, 'task.mask');
    const baseDir = latestCheckpoint(pre)!;
    // Another base: the same model with one weight changed.
    const other = join(root, 'other-base');
    const ck = loadCheckpoint(baseDir);
    const w = Float32Array.from(ck.model['bert.encoder.layer.0.output.dense.weight']!.toArray());
    w[0]! += 1;
    ck.model['bert.encoder.layer.0.output.dense.weight'] = tensor(w, ck.model['bert.encoder.layer.0.output.dense.weight']!.shape);
    mkdirSync(other, { recursive: true });
    saveCheckpoint(other, { step: 0, model: ck.model, config: ck.config, tokenizerFiles: ck.tokenizerFiles });
    ck.dispose();
    const otherDir = latestCheckpoint(other) ?? other;
    const mine = fileSha256(join(baseDir, 'model.safetensors'));
    const theirs = fileSha256(join(otherDir, 'model.safetensors'));
    await expect(loadClassifier(otherDir, { mask: file })).rejects.toThrow(`${file}: Expected a mask over the base ${otherDir} (model.safetensors sha256 ${theirs}) but received one over the base with sha256 ${mine}`);
    await expect(finetune({ ...base, method: 'mlp-ft', initFrom: other, applyMask: file, out: join(root, 'wrong-base') }, { output: null })).rejects.toThrow(`but received one over the base with sha256 ${mine}`);
    // A layer of the wrong shape, and a layer the model does not have.
    const mf = readMaskFile(file);
    const bad = join(root, 'bad.mask');
    const layers = mf.header.layers.map((l, i) => (i === 0 ? { ...l, shape: [l.shape[0], l.shape[1] + 1] as [number, number] } : l));
    const bits = new Map(mf.bits);
    bits.set(layers[0]!.name, new Uint8Array(Math.ceil((layers[0]!.shape[0] * layers[0]!.shape[1]) / 8)));
    writeMaskFile(bad, { ...mf.header, layers }, bits, mf.tensors);
    await expect(loadClassifier(baseDir, { mask: bad })).rejects.toThrow(new RegExp(`${bad.replace(/[.]/g, '\\.')}: Expected shape \\[\\d+, \\d+\\] for layer ${layers[0]!.name}`));
    const renamed = mf.header.layers.map((l, i) => (i === 0 ? { ...l, name: 'bert.encoder.layer.9.output.dense' } : l));
    const bits2 = new Map([...mf.bits].map(([k, v]) => [k === mf.header.layers[0]!.name ? 'bert.encoder.layer.9.output.dense' : k, v]));
    writeMaskFile(bad, { ...mf.header, layers: renamed }, bits2, mf.tensors);
    await expect(loadClassifier(baseDir, { mask: bad })).rejects.toThrow('Expected only masked layers of this model but received layer bert.encoder.layer.9.output.dense');
    // A file without the head: the classifier would stay random.
    writeMaskFile(bad, { ...mf.header, tensors: mf.header.tensors.filter((t) => !t.name.startsWith('classifier.')) }, mf.bits, mf.tensors);
    await expect(loadClassifier(baseDir, { mask: bad })).rejects.toThrow(`${bad}: Expected the head tensors the base lacks but received none for classifier.weight, classifier.bias`);
    // --mask-only of a run that is not mask-tune.
    const mlp = join(root, 'mlp');
    await finetune({ ...base, method: 'mlp-ft', lr: 1e-3, epochs: 1, initFrom: pre, out: mlp }, { output: null });
    expect(() => exportCheckpoint(mlp, join(root, 'x.mask'), { maskOnly: true })).toThrow('Expected a mask-tune checkpoint');
    expect(readdirSync(root).includes('x.mask')).toBe(false);
  }, 120_000);
});
