/**
 * The initialisers against the reference code's: Google BERT's truncated normal (±2σ), timm's trunc_normal_
 * (absolute bounds, so at std 0.02 in effect untruncated), torch's normal_; and the ViT tokens drawn as MAE and
 * SimMIM draw them (issue 17: they were truncated at ±2σ; SimMIM's ViT cuts at ±1σ).
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../src/rng.js';
import { normal, truncNormal, truncNormalAbs } from '../src/nn/init.js';
import { VitEncoder } from '../src/models/vit/encoder.js';
import { MaeDecoder } from '../src/models/vit/decoder.js';
import { vitPreset } from '../src/models/vit/config.js';
import { MimModel } from '../src/tasks/mim/model.js';
import { mimSettings } from '../src/tasks/mim/settings.js';
import { resolveConfig } from '../src/tasks/config.js';

const values = (p: { toArray(): ArrayLike<number> }): number[] => Array.from(p.toArray());
/** Share of |x| beyond k·std. */
const beyond = (xs: number[], k: number, std: number): number => xs.filter((x) => Math.abs(x) > k * std).length / xs.length;

describe('initialisers', () => {
  const n = 200_000;
  const std = 0.02;
  it('truncNormal (BERT) never draws beyond 2σ; its sd is that of the truncated normal (0.880σ)', () => {
    const xs = values(truncNormal([n], std, new Rng(1)));
    expect(beyond(xs, 2, std)).toBe(0);
    const sd = Math.sqrt(xs.reduce((a, x) => a + x * x, 0) / n);
    expect(sd / std).toBeCloseTo(0.8796, 2);
  });
  it("truncNormalAbs(±2) (timm's default bounds) and normal draw N(0, σ²): 4.55% beyond 2σ, sd σ", () => {
    for (const xs of [values(truncNormalAbs([n], std, -2, 2, new Rng(2), false)), values(normal([n], std, new Rng(3), false))]) {
      // Binomial sd of the share at n = 200,000: 4.7e-4; 5 sd either side.
      expect(Math.abs(beyond(xs, 2, std) - 0.0455)).toBeLessThan(0.0024);
      const sd = Math.sqrt(xs.reduce((a, x) => a + x * x, 0) / n);
      expect(Math.abs(sd / std - 1)).toBeLessThan(0.01);
    }
  });
  it("truncNormalAbs keeps its absolute bounds (SparK's mask token: ±0.02 at std 0.02, i.e. ±1σ)", () => {
    const xs = values(truncNormalAbs([n], std, -0.02, 0.02, new Rng(4), false));
    expect(xs.every((x) => Math.abs(x) <= 0.02)).toBe(true);
    // Roughly uniform-ish inside ±1σ: a third of the mass is beyond 0.5σ.
    expect(beyond(xs, 0.5, std)).toBeGreaterThan(0.3);
  });
});

describe("ViT tokens (MAE: normal_(std=.02); SimMIM: trunc_normal_(std=.02, a=−std, b=std))", () => {
  // 64 values per token: P(none beyond 2σ) = 0.9545^64 ≈ 5% per seed under N(0, σ²), 0 under the old ±2σ
  // truncation; over 6 seeds the chance that no token shows one by luck is below 1e-7.
  const c = { ...vitPreset('vit-micro-fmnist').config, cls: true };
  const seeds = [0, 1, 2, 3, 4, 5];
  it('the CLS token and the MAE decoder mask token draw beyond 2σ (untruncated); the SimMIM mask token stays within ±1σ', () => {
    const cls: number[] = [];
    const mae: number[] = [];
    const sim: number[] = [];
    for (const seed of seeds) {
      const e = new VitEncoder(c, { seed });
      cls.push(...values(e.clsToken!));
      e.dispose();
      const d = new MaeDecoder(c, 16, new Rng(seed));
      mae.push(...values(d.maskToken));
      d.dispose();
      const cfg = resolveConfig({ task: 'mim', method: 'simmim', preset: 'vit-micro-fmnist', seed }, 'test');
      const m = new MimModel(vitPreset('vit-micro-fmnist').config, mimSettings(cfg as never, 4), seed);
      sim.push(...values((m as unknown as { maskToken: { toArray(): ArrayLike<number> } }).maskToken));
      m.dispose();
    }
    for (const xs of [cls, mae]) {
      expect(beyond(xs, 2, 0.02)).toBeGreaterThan(0);
      expect(Math.abs(xs.reduce((a, x) => a + x, 0) / xs.length)).toBeLessThan(0.01);
    }
    expect(sim.every((x) => Math.abs(x) <= 0.02)).toBe(true);
    expect(beyond(sim, 0.5, 0.02)).toBeGreaterThan(0.3);
  });
});
