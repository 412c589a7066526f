/** MIM patch selection: SimMIM blocks, SBAM's salience and adaptive ratio, HPM's easy-to-hard schedule. */
import { describe, expect, it } from 'vitest';
import { Rng, tensor } from '../src/index.js';
import { blockMask, hpmScores, keepCount, sbamScores, simmimMaskCount } from '../src/tasks/mim/masking.js';
import { maskFromScores } from '../src/ops/mim_tokens.js';
import { mimSettings } from '../src/tasks/mim/settings.js';
import { resolveConfig } from '../src/tasks/config.js';

/**
 * The count of SimMIM's MaskGenerator, restated: ceil(r · blocks) whole m×m blocks where m divides
 * the grid, else ceil(r · L) tokens (the same ceil per token).
 */
function officialCount(gh: number, gw: number, m: number, r: number): number {
  if (gh % m === 0 && gw % m === 0) return Math.ceil(r * (gh / m) * (gw / m) - 1e-9) * m * m;
  return Math.ceil(r * gh * gw - 1e-9);
}

/** The m×m tiles of a gh×gw grid (cropped at the far edges), each as its token indices. */
function tiles(gh: number, gw: number, m: number): number[][] {
  const out: number[][] = [];
  for (let by = 0; by < gh; by += m)
    for (let bx = 0; bx < gw; bx += m) {
      const t: number[] = [];
      for (let y = by; y < Math.min(gh, by + m); y++) for (let x = bx; x < Math.min(gw, bx + m); x++) t.push(y * gw + x);
      out.push(t);
    }
  return out;
}

describe('SimMIM block masks', () => {
  const cases: Array<[number, number, number, number]> = [
    [7, 7, 2, 0.6], [7, 7, 2, 0.45], [7, 7, 3, 0.6], [5, 9, 2, 0.33], [7, 7, 1, 0.6], [8, 8, 2, 0.6], [12, 6, 3, 0.7], [7, 7, 2, 0.99],
  ];
  for (const [gh, gw, m, r] of cases)
    it(`mask the same count in every image, in whole tiles but at most one: ${gh}×${gw}, m ${m}, ratio ${r}`, () => {
      const B = 16;
      const L = gh * gw;
      const mask = blockMask(B, gh, gw, m, r, 3, 11).toArray();
      const want = officialCount(gh, gw, m, r);
      for (let b = 0; b < B; b++) {
        let n = 0;
        let partial = 0;
        for (const t of tiles(gh, gw, m)) {
          const hit = t.reduce((a, i) => a + mask[b * L + i]!, 0);
          n += hit;
          if (hit > 0 && hit < t.length) partial++;
        }
        expect(n).toBe(want);
        expect(partial).toBeLessThanOrEqual(1);
        // Where m divides the grid, the count is a multiple of m², so no tile is partial (the official masks).
        if (gh % m === 0 && gw % m === 0) expect(partial).toBe(0);
      }
      // Share within 1/L of the ratio, from above: never the 45–73% of cropped whole blocks.
      if (gh % m !== 0 || gw % m !== 0) expect(want / L - r).toBeLessThan(1 / L);
    });

  it('are a pure function of (seed, k), and differ between images and micro-batches', () => {
    const a = blockMask(8, 7, 7, 2, 0.6, 3, 11).toArray();
    expect(blockMask(8, 7, 7, 2, 0.6, 3, 11).toArray()).toEqual(a);
    expect(blockMask(8, 7, 7, 2, 0.6, 3, 12).toArray()).not.toEqual(a);
    expect(blockMask(8, 7, 7, 2, 0.6, 4, 11).toArray()).not.toEqual(a);
    expect(a.subarray(0, 49)).not.toEqual(a.subarray(49, 98));
  });

  it('reach every token, the cropped edge tiles included', () => {
    const B = 64;
    const mask = blockMask(B, 7, 7, 2, 0.6, 0, 0).toArray();
    for (let i = 0; i < 49; i++) {
      let hits = 0;
      for (let b = 0; b < B; b++) hits += mask[b * 49 + i]!;
      expect(hits, `token ${i}`).toBeGreaterThan(0);
    }
  });

  it('mask nothing at ratio 0 and everything at ratio 1', () => {
    const count = (t: ReturnType<typeof blockMask>): number => Array.from(t.toArray()).reduce((a, v) => a + v, 0);
    for (const m of [1, 2, 3]) {
      expect(count(blockMask(3, 7, 7, m, 0, 0, 0))).toBe(0);
      expect(count(blockMask(3, 7, 7, m, 1, 0, 0))).toBe(3 * 49);
      expect(count(blockMask(2, 8, 6, m, 1, 0, 0))).toBe(2 * 48);
    }
    // The suite's 7×7 grid: 0.6·49 = 29.4 → 30 tokens (61.2%). ViT-B's 14×14 tokens with 32 px masks: the
    // official 7×7 blocks, ceil(0.6·49) = 30 of them, 120 tokens.
    expect(simmimMaskCount(7, 7, 2, 0.6)).toBe(30);
    expect(simmimMaskCount(14, 14, 2, 0.6)).toBe(120);
  });
});

/** Salience by the definition, in float64: column sums of row-softmax(X·Xᵀ), min–max normalised. */
function salienceRef(x: Float32Array, B: number, L: number, D: number): Float64Array {
  const out = new Float64Array(B * L);
  for (let b = 0; b < B; b++) {
    const col = new Float64Array(L);
    for (let i = 0; i < L; i++) {
      const row = new Float64Array(L);
      let mx = -Infinity;
      for (let j = 0; j < L; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += x[(b * L + i) * D + d]! * x[(b * L + j) * D + d]!;
        row[j] = s;
        mx = Math.max(mx, s);
      }
      let z = 0;
      for (let j = 0; j < L; j++) z += (row[j] = Math.exp(row[j]! - mx));
      for (let j = 0; j < L; j++) col[j] += row[j]! / z;
    }
    const lo = Math.min(...col);
    const hi = Math.max(...col);
    for (let j = 0; j < L; j++) out[b * L + j] = (col[j]! - lo) / (hi - lo + 1e-6);
  }
  return out;
}

describe('SBAM', () => {
  const [B, L, D] = [8, 16, 6];
  const rng = new Rng(5);
  const x = new Float32Array(B * L * D).map(() => rng.normal() * 0.7);

  it('has the adaptive ratio r = base − Δ + 2Δ·ρ of the reference salience, and scores ŝ + U(0, 0.5)', () => {
    const ref = salienceRef(x, B, L, D);
    const rho = ref.filter((s) => s > 0.5).length / (B * L);
    const d = sbamScores(tensor(x, [B, L, D]), { base: 0.75, delta: 0.1, threshold: 0.5, seed: 1, k: 0 });
    expect(d.rho).toBeCloseTo(rho, 12);
    expect(d.ratio).toBeCloseTo(0.75 - 0.1 + 0.2 * rho, 12);
    const scores = d.scores.toArray();
    for (let i = 0; i < B * L; i++) {
      const u = scores[i]! - ref[i]!;
      expect(u).toBeGreaterThanOrEqual(-1e-5);
      expect(u).toBeLessThan(0.5 + 1e-5);
    }
  });

  it('masks salient patches preferentially: masked patches are more salient on average than kept ones', () => {
    const ref = salienceRef(x, B, L, D);
    let maskedSum = 0;
    let maskedN = 0;
    let keptSum = 0;
    let keptN = 0;
    for (let k = 0; k < 20; k++) {
      const d = sbamScores(tensor(x, [B, L, D]), { base: 0.75, delta: 0.1, threshold: 0.5, seed: 1, k });
      const keep = keepCount(L, d.ratio);
      const m = maskFromScores(d.scores, keep).mask.toArray();
      for (let i = 0; i < B * L; i++) {
        if (m[i]) {
          maskedSum += ref[i]!;
          maskedN++;
        } else {
          keptSum += ref[i]!;
          keptN++;
        }
      }
    }
    expect(maskedSum / maskedN).toBeGreaterThan(keptSum / keptN + 0.1);
  });
});

describe('HPM', () => {
  const [B, L] = [5, 49];
  const keep = keepCount(L, 0.75);

  it('masks the int(α_t·N_mask) hardest patches for certain, with α_t = 0.5·(epoch+1)/T, and L − keep in all', () => {
    const rng = new Rng(9);
    const pred = new Float32Array(B * L).map(() => rng.uniform());
    for (const [epoch, epochs] of [[0, 10], [4, 10], [9, 10]] as const) {
      const h = hpmScores(pred, B, L, keep, { epoch, epochs, seed: 2, k: epoch });
      expect(h.hard).toBe(Math.floor(((0.5 * (epoch + 1)) / epochs) * (L - keep)));
      const m = maskFromScores(h.scores, keep).mask.toArray();
      for (let b = 0; b < B; b++) {
        const row = Array.from(pred.subarray(b * L, (b + 1) * L));
        const hardest = row.map((v, j) => [v, j] as const).sort((p, q) => q[0] - p[0]).slice(0, h.hard).map((p) => p[1]);
        for (const j of hardest) expect(m[b * L + j]).toBe(1);
        expect(Array.from(m.subarray(b * L, (b + 1) * L)).reduce((a, v) => a + v, 0)).toBe(L - keep);
      }
    }
  });

  it('draws the rest uniformly: over many draws every non-hard patch is masked at about the same rate', () => {
    const pred = new Float32Array(L).map((_, j) => j);
    const hits = new Float64Array(L);
    const draws = 400;
    let hard = 0;
    for (let k = 0; k < draws; k++) {
      const h = hpmScores(pred, 1, L, keep, { epoch: 0, epochs: 4, seed: 3, k });
      hard = h.hard;
      const m = maskFromScores(h.scores, keep).mask.toArray();
      for (let j = 0; j < L; j++) hits[j] += m[j]!;
    }
    const soft = Array.from(hits.subarray(0, L - hard)).map((v) => v / draws);
    const expected = (L - keep - hard) / (L - hard);
    for (const r of soft) expect(Math.abs(r - expected)).toBeLessThan(0.1);
    for (const r of Array.from(hits.subarray(L - hard))) expect(r).toBe(draws);
  });
});

describe('SBAM and HPM on a data-parallel rank', () => {
  const Bg = 6;
  const L = 16;
  const before = 2;
  const B = 3;
  const rows = (a: ArrayLike<number>) => Array.from(a).slice(before * L, (before + B) * L);
  it("SBAM: a rank's rows of the global batch get the global draw's scores and the global batch's ratio", () => {
    const rng = new Rng(5);
    const xs = Array.from({ length: Bg * L * 8 }, () => rng.uniform() * 2 - 1);
    const o = { base: 0.75, delta: 0.1, threshold: 0.5, seed: 4, k: 7 };
    const whole = sbamScores(tensor(xs, [Bg, L, 8]), o);
    const aboveAll = Math.round(whole.rho * Bg * L);
    let asked: number[] = [];
    const part = sbamScores(tensor(xs.slice(before * L * 8, (before + B) * L * 8), [B, L, 8]), { ...o, shard: { before, batch: Bg }, sumAcross: (v) => ((asked = [...v]), [aboveAll]) });
    expect(part.ratio).toBe(whole.ratio);
    expect(part.rho).toBe(whole.rho);
    expect(asked.length).toBe(1);
    expect(Array.from(part.scores.toArray())).toEqual(rows(whole.scores.toArray()));
  });
  it("HPM: a rank's rows get the global draw's scores (hard patches from its own predicted losses)", () => {
    const rng = new Rng(6);
    const pred = Float32Array.from({ length: Bg * L }, () => rng.uniform());
    const o = { epoch: 3, epochs: 10, seed: 2, k: 11 };
    const whole = hpmScores(pred, Bg, L, 4, o);
    const part = hpmScores(pred.subarray(before * L, (before + B) * L), B, L, 4, { ...o, shard: { before, batch: Bg } });
    expect(part.hard).toBe(whole.hard);
    expect(Array.from(part.scores.toArray())).toEqual(rows(whole.scores.toArray()));
  });
});

describe('MIM settings', () => {
  it('reject combinations a method does not define, naming the field', () => {
    const cfg = (o: Record<string, unknown>) => resolveConfig({ task: 'mim', ...o });
    expect(() => mimSettings(cfg({ method: 'simmim', imageMasking: 'sbam' }), 4)).toThrow(/Expected random or block with method simmim .* for imageMasking/);
    expect(() => mimSettings(cfg({ method: 'mae', imageMasking: 'block' }), 4)).toThrow(/for imageMasking/);
    expect(() => mimSettings(cfg({ method: 'mae', maskRatio: 1 }), 4)).toThrow(/for maskRatio/);
    expect(() => resolveConfig({ task: 'mim', method: 'beit' })).toThrow(/Expected one of mae, simmim for method but received "beit"/);
  });

  it('put MTO in the first half of the blocks that see mask tokens by default', () => {
    const s = mimSettings(resolveConfig({ task: 'mim', mto: true }), 6);
    expect(s.mto).toEqual({ exclusion: true, blocks: 3, singularityWeight: 0.1, singularityBlocks: 0, entropyWeight: 0.01 });
    expect(mimSettings(resolveConfig({ task: 'mim', mto: true }), 1).mto!.blocks).toBe(1);
    expect(mimSettings(resolveConfig({ task: 'mim' }), 6).mto).toBeNull();
  });
});
