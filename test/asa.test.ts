/**
 * ASA fine-tuning (adversarial self-attention): the straight-through gradient
 * of the adversary's mask against finite differences of its sigmoid
 * surrogate, the gradient reversal, SymKL against plain TypeScript; inference
 * that never sees the adversary (bit for bit); an end-to-end `finetune` with
 * method asa and mvp + asa on the committed fixture (finite loss, exact
 * resume, an export without `asa.` tensors); and bad settings.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { backward } from '../src/autograd/backward.js';
import { loadSafetensors, readSafetensorsHeader } from '../src/checkpoint/safetensors.js';
import { noGrad } from '../src/autograd/mode.js';
import { exportCheckpoint } from '../src/commands/export.js';
import { add, asaMask, fromTypedArray, gradReverse, linear, mul, sum, symKl, tensor, type Tensor } from '../src/index.js';
import { BertForSequenceClassification } from '../src/models/bert/classification.js';
import { Parameter } from '../src/nn/parameter.js';
import { AdamW } from '../src/optim/adamw.js';
import { AsaAdversary, asaLoss, AsaTrainModel } from '../src/tasks/finetune/asa.js';
import { attack } from '../src/tasks/finetune/attack.js';
import { TextClassifier } from '../src/tasks/finetune/classifier.js';
import { evaluateFinetunedCheckpoint } from '../src/tasks/finetune/evaluate-checkpoint.js';
import { loadClassifier } from '../src/tasks/finetune/predict.js';
import { finetune, type StepInfo } from '../src/tasks/run-finetune.js';
import { values } from './helpers/cuda-ops.js';
import { pretrainTinyEncoder } from './helpers/tiny-encoder.js';
import { symKlRef } from './helpers/asa-ref.js';
import { straightAndResumed } from './helpers/resume.js';

const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

/** Central finite differences of f at x, in float64. */
function numericGrad(f: (x: number[]) => number, x: readonly number[], h = 1e-6): number[] {
  return x.map((_, i) => {
    const p = [...x];
    const m = [...x];
    p[i]! += h;
    m[i]! -= h;
    return (f(p) - f(m)) / (2 * h);
  });
}

function expectClose(got: ArrayLike<number>, ref: ArrayLike<number>, rtol: number, atol: number): void {
  expect(got.length).toBe(ref.length);
  for (let i = 0; i < ref.length; i++) {
    if (!(Math.abs(got[i]! - ref[i]!) <= atol + rtol * Math.abs(ref[i]!))) throw new Error(`element ${i}: got ${got[i]}, expected ${ref[i]}`);
  }
}

describe('asa: the straight-through mask', () => {
  const B = 2;
  const L = 4;
  const pad = [0, 0, 0, 0, 0, 0, 1, 1];
  it('∂/∂S is the gradient of the sigmoid surrogate (float64 finite differences)', () => {
    const s0 = values(B * L * L, 11, 2);
    const wb = values(B * L * L, 12, 1e-4);
    const wk = values(B * L, 13);
    const S = tensor(s0, [B, L, L], 'float64');
    S.requiresGrad = true;
    const r = asaMask(S, fromTypedArray(Uint8Array.from(pad), [B, L]));
    backward(add(sum(mul(r.bias, tensor(wb, [B, L, L], 'float64'))), sum(mul(r.kept, tensor(wk, [B, L], 'float64')))));
    const got = Array.from(S.grad!.toArray());
    // The same two uses with M replaced by σ(S) on real keys (padding keys stay 0: constant in S).
    const surrogate = (s: number[]): number => {
      let f = 0;
      for (let b = 0; b < B; b++)
        for (let q = 0; q < L; q++)
          for (let k = 0; k < L; k++) {
            if (pad[b * L + k]) continue;
            const i = (b * L + q) * L + k;
            const m = sigmoid(s[i]!);
            f += wb[i]! * (1 - m) * -1e4;
            if (!pad[b * L + q]) f += wk[b * L + q]! * m;
          }
      return f;
    };
    expectClose(got, numericGrad(surrogate, s0), 1e-6, 1e-9);
    // Padding keys get no gradient; some real pairs do.
    for (let b = 0; b < B; b++) for (let q = 0; q < L; q++) for (let k = 0; k < L; k++) if (pad[b * L + k]) expect(got[(b * L + q) * L + k]).toBe(0);
    expect(got.some((g) => g !== 0)).toBe(true);
  });
});

describe('asa: gradient reversal', () => {
  it('is the identity forward and flips the gradient of what feeds it (a tiny layer)', () => {
    const x = tensor(values(12, 21), [3, 4], 'float64');
    const c = tensor(values(6, 22), [3, 2], 'float64');
    const grads = (reverse: boolean): { y: number[]; g: number[] } => {
      const w = tensor(values(8, 23), [2, 4], 'float64');
      w.requiresGrad = true;
      const y = linear(x, w);
      const used = reverse ? gradReverse(y) : y;
      backward(sum(mul(used, c)));
      return { y: Array.from(used.toArray()), g: Array.from(w.grad!.toArray()) };
    };
    const plain = grads(false);
    const rev = grads(true);
    expect(rev.y).toEqual(plain.y);
    expect(rev.g).toEqual(plain.g.map((v) => -v));
    expect(plain.g.some((v) => v !== 0)).toBe(true);
  });
  it("flips the adversary's gradient through the mask (the adversary ascends what the model descends)", () => {
    const x = tensor(values(2 * 5 * 8, 24), [2, 5, 8], 'float64');
    const wb = tensor(values(50, 25, 1e-4), [2, 5, 5], 'float64');
    const grads = (reverse: boolean): number[] => {
      const adv = new AsaAdversary({ hidden: 8, layers: 1, initializerRange: 0.5 }, { seed: 1, dtype: 'float64' });
      const s = adv.scores(0, x);
      backward(sum(mul(asaMask(reverse ? gradReverse(s) : s).bias, wb)));
      const g = Array.from(adv.layer.items[0]!.query.weight.grad!.toArray());
      adv.dispose();
      return g;
    };
    const plain = grads(false);
    expect(grads(true)).toEqual(plain.map((v) => -v));
    expect(plain.some((v) => v !== 0)).toBe(true);
  });
});

describe('asa: the optimizer', () => {
  it("clips the model's gradients and leaves the adversary's group (clip: false) out of the norm", () => {
    const model = new Parameter(tensor([1, 1], [2]).native);
    const adversary = new Parameter(tensor([1, 1], [2]).native);
    const opt = new AdamW([{ params: [model] }, { params: [adversary], clip: false }], { lr: 0.1 });
    model.grad!.native.copyFrom(tensor([3, 4], [2]).native);
    adversary.grad!.native.copyFrom(tensor([300, 400], [2]).native);
    expect(opt.clipGradNorm(1)).toBeCloseTo(5, 6);
    expectClose(Array.from(model.grad!.toArray()), [0.6, 0.8], 1e-6, 0);
    expect(Array.from(adversary.grad!.toArray())).toEqual([300, 400]);
    // A non-finite gradient of the unclipped group still shows in the returned norm.
    adversary.grad!.native.copyFrom(tensor([NaN, 0], [2]).native);
    expect(opt.clipGradNorm(1)).toBeNaN();
    opt.dispose();
  });
});

describe('asa: SymKL', () => {
  it('value and gradient match plain TypeScript (float64)', () => {
    const a0 = values(15, 31, 3);
    const b0 = values(15, 32, 3);
    const a = tensor(a0, [5, 3], 'float64');
    const b = tensor(b0, [5, 3], 'float64');
    a.requiresGrad = true;
    b.requiresGrad = true;
    const v = symKl(a, b);
    expectClose([v.item()], [symKlRef(a0, b0, 3)], 1e-12, 1e-14);
    backward(v);
    expectClose(Array.from(a.grad!.toArray()), numericGrad((x) => symKlRef(x, b0, 3), a0), 1e-7, 1e-10);
    expectClose(Array.from(b.grad!.toArray()), numericGrad((x) => symKlRef(a0, x, 3), b0), 1e-7, 1e-10);
    // Symmetric in its arguments.
    expectClose([symKl(b.detach(), a.detach()).item()], [v.item()], 1e-12, 1e-14);
  });
});

const root = mkdtempSync(join(tmpdir(), 'cloze-asa-'));
const data = join(__dirname, 'fixtures', 'finetune', 'who.jsonl');
let pre = '';
const base = { taskData: data, maxLength: 24, batchSize: 16, epochs: 2, lr: 1e-3, logEvery: 5, threads: 0, seed: 3 };
const verbalizer = join(root, 'verbalizer.json');

beforeAll(async () => {
  pre = await pretrainTinyEncoder(root);
  writeFileSync(verbalizer, JSON.stringify({ animal: ['cat', 'dog', 'bird'], person: ['friend', 'teacher', 'farmer'] }));
}, 120_000);

const tok = { clsId: 2, sepId: 3, padId: 0, maskId: 4 };
const examples: Array<[Int32Array, null]> = [[Int32Array.from([7, 8, 9, 10, 11]), null], [Int32Array.from([12, 13]), null], [Int32Array.from([14, 15, 16]), null]];

describe('asa: inference never sees the adversary', () => {
  it("an ASA step's adversary leaves the eval logits unchanged, bit for bit", () => {
    const model = new BertForSequenceClassification({ vocabSize: 40, hidden: 16, layers: 2, heads: 2, intermediate: 32, maxPosition: 32 }, { numLabels: 2, seed: 5 });
    const c = new TextClassifier({ method: 'mlp-ft', model }, ['a', 'b'], tok, 12);
    const { batch, maskRows } = c.batchOf(examples, { padded: true });
    model.eval();
    const before = Array.from(c.classLogits(batch, maskRows).toArray());
    const adv = new AsaAdversary(model.config, { seed: 1 });
    const wrapped = new AsaTrainModel(model, adv);
    expect(wrapped.namedParameters().filter(([n]) => n.startsWith('asa.')).map(([n]) => n)).toEqual(
      [0, 1].flatMap((i) => ['query', 'key'].flatMap((p) => [`asa.layer.${i}.${p}.weight`, `asa.layer.${i}.${p}.bias`])),
    );
    wrapped.train();
    const step = asaLoss(c, adv, batch, maskRows, fromTypedArray(Int32Array.from([0, 1, 0]), [3]));
    expect(Number.isFinite(step.loss.item())).toBe(true);
    // The masks change the training-time logits …
    expect(Array.from(step.advLogits.toArray())).not.toEqual(Array.from(step.logits.toArray()));
    wrapped.eval();
    // … and nothing of them reaches inference.
    expect(Array.from(c.classLogits(batch, maskRows).toArray())).toEqual(before);
    adv.dispose();
    c.dispose();
  });
});

describe('asa: the real step', () => {
  it('the adversary ascends its objective through asaLoss: with a large τ its optimizer steps keep more pairs', () => {
    const model = new BertForSequenceClassification({ vocabSize: 40, hidden: 16, layers: 2, heads: 2, intermediate: 32, maxPosition: 32 }, { numLabels: 2, seed: 5 });
    const c = new TextClassifier({ method: 'mlp-ft', model }, ['a', 'b'], tok, 12);
    const adv = new AsaAdversary(model.config, { seed: 1 });
    const opt = new AdamW(adv.parameters(), { lr: 1e-2 });
    try {
      const { batch, maskRows } = c.batchOf(examples, { padded: true });
      const labels = fromTypedArray(Int32Array.from([0, 1, 0]), [3]);
      const keptPairs = (): number => {
        const kept: Tensor[] = [];
        noGrad(() => c.classLogits({ ...batch, attentionBias: adv.biasHook(kept) }, maskRows));
        return kept.reduce((a, k) => a + sum(k).item(), 0);
      };
      const before = keptPairs();
      // τ = 30: τ²·ΣM/B outweighs the CE and SymKL terms, so the adversary's ascent shows as more kept pairs;
      // without the gradient reversal in biasHook its steps would descend and mask more.
      for (let i = 0; i < 5; i++) {
        opt.zeroGrad();
        backward(asaLoss(c, adv, batch, maskRows, labels, 30).loss);
        opt.step();
      }
      expect(keptPairs()).toBeGreaterThan(before);
    } finally {
      opt.dispose();
      adv.dispose();
      c.dispose();
    }
  });
});

describe('cloze finetune --method asa', () => {
  it('trains with a finite loss, keeps the adversary in its checkpoints, exports and serves a plain classifier', async () => {
    const out = join(root, 'asa');
    const steps: StepInfo[] = [];
    const r = await finetune({ ...base, epochs: 4, initFrom: pre, method: 'asa', out }, { output: null, onStep: (s) => steps.push(s) });
    expect(r.stopped).toBe('done');
    // As mlp-ft in test/finetune.test.ts: above the 60% majority class.
    expect(r.eval!.accuracy).toBeGreaterThan(0.75);
    expect(r.method).toBe('asa');
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.every((s) => Number.isFinite(s.loss))).toBe(true);
    const names = readSafetensorsHeader(join(r.checkpoint!, 'model.safetensors')).tensors.map((t) => t.name);
    const layers = new Set(names.map((n) => /^bert\.encoder\.layer\.(\d+)\./.exec(n)?.[1]).filter((x) => x !== undefined)).size;
    expect(layers).toBeGreaterThan(0);
    // query and key, weight and bias, per layer.
    expect(names.filter((n) => n.startsWith('asa.')).length).toBe(4 * layers);
    // The optimizer trained the adversary: its weights left their (seeded) initialisation.
    const saved = loadSafetensors(join(r.checkpoint!, 'model.safetensors'));
    const fresh = new AsaAdversary({ hidden: saved['asa.layer.0.query.weight']!.shape[1]!, layers, initializerRange: 0.02 }, { seed: base.seed });
    try {
      const w0 = fresh.namedParameters().find(([n]) => n === 'layer.0.query.weight')![1].toArray();
      expect(Array.from(saved['asa.layer.0.query.weight']!.toArray())).not.toEqual(Array.from(w0));
    } finally {
      fresh.dispose();
      for (const t of Object.values(saved)) t.dispose();
    }
    const exported = join(root, 'asa-export');
    const files = exportCheckpoint(out, exported);
    const plainNames = readSafetensorsHeader(files.find((f) => f.endsWith('model.safetensors'))!).tensors.map((t) => t.name);
    expect(plainNames.some((n) => n.startsWith('asa.'))).toBe(false);
    expect(plainNames.sort()).toEqual(names.filter((n) => !n.startsWith('asa.')).sort());
    // eval of the checkpoint reproduces the run's own last eval.
    const e = await evaluateFinetunedCheckpoint({ checkpoint: out });
    expect(e.method).toBe('asa');
    expect(e.accuracy).toBe(r.eval!.accuracy);
    expect(e.loss).toBe(r.eval!.loss);
    // The attack loads the plain classifier too.
    const att = await attack({ checkpoint: out, attack: 'bert-attack', examples: 4, maxPerturb: 0.3, mlm: pre });
    expect(att.method).toBe('asa');
    expect(att.metrics.skipped + att.metrics.succeeded + att.metrics.failed).toBe(4);
    // The checkpoint (adversary dropped at load) and the export (no adversary) classify bit for bit alike,
    // and so does a plain BertForSequenceClassification loaded from the export.
    const texts = ['the cat sees the ball .', 'my friend finds a small boat .'];
    const [ck, ex] = [await loadClassifier(out), await loadClassifier(exported)];
    try {
      const a = await ck.scores(texts);
      const b = await ex.scores(texts);
      expect(Array.from(a.probs)).toEqual(Array.from(b.probs));
      const { model } = BertForSequenceClassification.fromPretrained(exported, { numLabels: 2 });
      model.eval();
      const { batch, maskRows } = ck.classifier.batchOf([[Int32Array.from([7, 8, 9]), null]]);
      ck.classifier.module.eval();
      const want = Array.from(ck.classifier.classLogits(batch, maskRows).toArray());
      const plain = new TextClassifier({ method: 'mlp-ft', model }, ['animal', 'person'], tok, 24);
      expect(Array.from(plain.classLogits(batch, maskRows).toArray())).toEqual(want);
      plain.dispose();
    } finally {
      ck.dispose();
      ex.dispose();
    }
  }, 180_000);

  it('resumes exactly: the losses after an interruption equal those of an uninterrupted run', async () => {
    const cfg = { ...base, initFrom: pre, method: 'asa', saveEvery: 5 };
    const r = await straightAndResumed(finetune, cfg, join(root, 'resume'), 7);
    expect(r.stoppedAt).toBe(7);
    expect(r.resumed).toEqual(r.straight);
    await expect(finetune({ ...cfg, asaTau: 0.3, out: join(root, 'resume', 'resumed'), resume: true }, { output: null })).rejects.toThrow(/asaTau/);
  }, 240_000);

  it('mvp --asa trains with a finite loss and exports a plain BertForMaskedLM', async () => {
    const out = join(root, 'mvp-asa');
    const steps: StepInfo[] = [];
    const r = await finetune({ ...base, epochs: 1, initFrom: pre, method: 'mvp', asa: true, template: ['[MASK] :'], verbalizer, out }, { output: null, onStep: (s) => steps.push(s) });
    expect(steps.every((s) => Number.isFinite(s.loss))).toBe(true);
    expect(readSafetensorsHeader(join(r.checkpoint!, 'model.safetensors')).tensors.some((t) => t.name.startsWith('asa.'))).toBe(true);
    const files = exportCheckpoint(out, join(root, 'mvp-asa-export'));
    expect(readSafetensorsHeader(files.find((f) => f.endsWith('model.safetensors'))!).tensors.some((t) => t.name.startsWith('asa.'))).toBe(false);
    const [fromRun, fromExport] = [await evaluateFinetunedCheckpoint({ checkpoint: out, taskData: data }), await evaluateFinetunedCheckpoint({ checkpoint: join(root, 'mvp-asa-export'), taskData: data })];
    expect(fromExport.accuracy).toBe(fromRun.accuracy);
    expect(fromExport.loss).toBe(fromRun.loss);
    expect(Number.isFinite(r.lastLoss)).toBe(true);
  }, 180_000);

  it('refuses bad settings, naming the field', async () => {
    await expect(finetune({ taskData: data, method: 'mlp-ft', asa: true })).rejects.toThrow(
      'Expected asa only with method mvp (method asa is mlp-ft with ASA) but received asa with method mlp-ft');
    await expect(finetune({ taskData: data, method: 'asa', asaTau: 0 })).rejects.toThrow(/asaTau/);
    await expect(finetune({ taskData: data, method: 'asa', asaTau: -1 })).rejects.toThrow(/asaTau/);
    await expect(finetune({ taskData: data, method: 'asa', adv: true })).rejects.toThrow(/adv off with ASA/);
  });
});

