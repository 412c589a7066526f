/**
 * The parts of MAE's fine-tuning recipe (probe.ts's finetuneEncoder): layer-wise
 * lr decay's per-parameter lrs against a hand computation, applied through
 * AdamW's group lrScale; label smoothing's loss and gradient against a TS
 * reference; drop path's identity in eval, its per-sample 0 or x/(1 − p) in
 * training (so its expectation is x), and its gradient.
 */
import { describe, expect, it } from 'vitest';
import { AdamW, backward, crossEntropy, Linear, Rng, scope, tensor, type Tensor } from '../src/index.js';
import { labelSmoothingCrossEntropy } from '../src/ops/cross_entropy.js';
import { layerDecayGroups } from '../src/optim/layer-decay.js';
import { dropPath } from '../src/nn/drop-path.js';
import { VitEncoder } from '../src/models/vit/encoder.js';
import type { VitConfig } from '../src/models/vit/config.js';
import { gradcheck } from './helpers/gradcheck.js';
import { assertClose } from './helpers/tolerance.js';

const tiny: VitConfig = {
  imageSize: [8, 8], channels: 1, patch: 4, dim: 8, depth: 2, heads: 2, mlpRatio: 2, cls: false, lnEps: 1e-6, decoderDim: 8, decoderDepth: 1, decoderHeads: 2,
};

describe('layer-wise lr decay', () => {
  it('gives MAE\'s lr scale per parameter, and AdamW steps each with lr × scale', () => {
    const enc = new VitEncoder(tiny, { seed: 1 });
    const head = new Linear(8, 3, { rng: new Rng(2) });
    // By hand, depth 2 ⇒ layers = 3, scale = 0.5^(3 − id): embedding (id 0) 1/8,
    // blocks.0 (id 1) 1/4, blocks.1 (id 2) 1/2, the final norm and the head (id 3) 1.
    const byHand = (name: string): number =>
      name.startsWith('patch_embed.') ? 0.125 : name.startsWith('blocks.0.') ? 0.25 : name.startsWith('blocks.1.') ? 0.5 : 1;
    const named: Array<[string, Tensor]> = [...enc.namedParameters(), ...head.namedParameters().map(([n, p]) => [`head.${n}`, p] as [string, Tensor])];
    const groups = layerDecayGroups(enc.layerIds(), head.parameters(), { layerDecay: 0.5, weightDecay: 0.05 });
    for (const [name, p] of named) {
      const g = groups.find((x) => x.params.includes(p as never))!;
      expect(g.lrScale, name).toBe(byHand(name));
      expect(g.weightDecay, name).toBe((p as unknown as { decay: boolean }).decay ? 0.05 : 0);
    }
    expect(groups.reduce((a, g) => a + g.params.length, 0)).toBe(named.length);
    // Through the optimizer, weight decay off: Adam's first step with gradient 1 moves
    // every weight by lr·scale·1/(1 + eps), eps = 1e-8.
    const noWd = layerDecayGroups(enc.layerIds(), head.parameters(), { layerDecay: 0.5, weightDecay: 0 });
    const before = named.map(([, p]) => Float64Array.from(p.toArray()));
    const opt = new AdamW(noWd, { lr: 0.1 });
    for (const [, p] of named) p.grad!.native.fill(1);
    opt.step();
    named.forEach(([name, p], i) => {
      const after = p.toArray();
      const moved = Array.from(after, (v, j) => (before[i]![j]! - v) / 0.1);
      // float32 parameters of magnitude ≤ 2: the difference of two roundings is off by ≤ 2.4e-7, i.e. ≤ 2.4e-6
      // after /0.1 (atol); the native step's float32 bias correction √(1 − β₂) (0.999 rounds to 0.99900001)
      // scales the move by 1 ± 7e-6 (rtol). A wrong layer scale is off by at least a factor 2.
      assertClose(moved, moved.map(() => byHand(name)), { atol: 3e-6, rtol: 2e-5 }, name);
    });
    opt.dispose();
    head.dispose();
    enc.dispose();
  });

  it('rejects a decay outside (0, 1]', () => {
    expect(() => layerDecayGroups({ layers: 1, ids: [] }, [], { layerDecay: 1.5, weightDecay: 0 })).toThrow(/layerDecay/);
  });
});

describe('label smoothing', () => {
  const N = 5, K = 4;
  const rng = new Rng(7);
  const z = Array.from({ length: N * K }, () => rng.uniform() * 6 - 3);
  const y = [0, 3, 1, 1, 2];
  /** timm's LabelSmoothingCrossEntropy in float64: mean_i [(1 − ε)·nll_i + ε·mean_k(−log p_ik)]. */
  const reference = (eps: number): number => {
    let total = 0;
    for (let i = 0; i < N; i++) {
      const row = z.slice(i * K, (i + 1) * K);
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((a, v) => a + Math.exp(v - m), 0));
      const logp = row.map((v) => v - lse);
      total += (1 - eps) * -logp[y[i]!]! + eps * -logp.reduce((a, v) => a + v, 0) / K;
    }
    return total / N;
  };

  it('matches a TS reference, and is plain cross-entropy at ε = 0', () => {
    scope(() => {
      const logits = tensor(z, [N, K], 'float64');
      const t = tensor(y, [N], 'int32');
      for (const eps of [0, 0.1, 0.5]) expect(labelSmoothingCrossEntropy(logits, t, eps).item()).toBeCloseTo(reference(eps), 12);
      expect(labelSmoothingCrossEntropy(logits, t, 0).item()).toBe(crossEntropy(logits, t).item());
    });
  });

  it('has the finite-difference gradient, and softmax − smoothed one-hot over N analytically', () => {
    const logits = tensor(z, [N, K], 'float64');
    logits.requiresGrad = true;
    const t = tensor(y, [N], 'int32');
    gradcheck(([l]) => labelSmoothingCrossEntropy(l!, t, 0.1), [logits]);
    scope(() => {
      logits.grad = null;
      backward(labelSmoothingCrossEntropy(logits, t, 0.1));
      const g = logits.grad!.toArray();
      const ref: number[] = [];
      for (let i = 0; i < N; i++) {
        const row = z.slice(i * K, (i + 1) * K);
        const s = row.reduce((a, v) => a + Math.exp(v), 0);
        for (let k = 0; k < K; k++) ref.push((Math.exp(row[k]!) / s - ((k === y[i] ? 0.9 : 0) + 0.1 / K)) / N);
      }
      assertClose(g, ref, { atol: 1e-14, rtol: 1e-10 }, 'gradient');
    });
    logits.dispose();
    t.dispose();
  });

  it('rejects ε outside [0, 1)', () => {
    scope(() => expect(() => labelSmoothingCrossEntropy(tensor([0, 0], [1, 2]), tensor([0], [1], 'int32'), 1)).toThrow(/smoothing/));
  });
});

describe('drop path', () => {
  it('is the identity in eval, and in training zeroes or scales each whole sample by 1/(1 − p)', () => {
    scope(() => {
      const B = 4000, F = 6, p = 0.3;
      const vals = Array.from({ length: B * F }, (_, i) => 1 + (i % 7));
      const x = tensor(vals, [B, 2, 3]);
      expect(Array.from(dropPath(x, p, new Rng(1), false).toArray())).toEqual(vals);
      const out = dropPath(x, p, new Rng(1), true).toArray();
      let kept = 0;
      const scaleF32 = Math.fround(1 / (1 - p));
      for (let b = 0; b < B; b++) {
        const row = Array.from(out.subarray(b * F, (b + 1) * F));
        const src = vals.slice(b * F, (b + 1) * F);
        if (row.every((v) => v === 0)) continue;
        // float32 x times float32 1/(1 − p), rounded once.
        expect(row).toEqual(src.map((v) => Math.fround(v * scaleF32)));
        kept++;
      }
      // Each sample is kept with probability 1 − p, so E[out] = (1 − p)·x/(1 − p) = x. The
      // kept count is Binomial(B, 0.7): 5 standard deviations (±145) bound a correct rng's draw.
      expect(Math.abs(kept - B * (1 - p))).toBeLessThan(5 * Math.sqrt(B * p * (1 - p)));
    });
  });

  it('passes the gradient through the kept samples only (finite differences)', () => {
    const x = tensor(Array.from({ length: 24 }, (_, i) => Math.sin(i)), [8, 3], 'float64');
    x.requiresGrad = true;
    // A fresh rng per call: every evaluation draws the same mask.
    gradcheck(([a]) => dropPath(a!, 0.5, new Rng(3), true), [x]);
    x.dispose();
  });

  it('grows linearly over the blocks from 0 (timm\'s linspace), and is off in eval', () => {
    const enc = new VitEncoder({ ...tiny, depth: 4 }, { seed: 1 });
    enc.setDropPath(0.3, 5);
    [0, 0.1, 0.2, 0.3].forEach((rate, i) => expect(enc.blocks.items[i]!.dropPath).toBeCloseTo(rate, 15));
    scope(() => {
      const images = tensor(Array.from({ length: 2 * 64 }, (_, i) => Math.cos(i)), [2, 1, 8, 8]);
      enc.eval();
      const a = enc.features(images).toArray();
      enc.setDropPath(0, 0);
      const b = enc.features(images).toArray();
      expect(Array.from(a)).toEqual(Array.from(b));
    });
    enc.dispose();
  });
});
