/** The MIM suite's selection and seed aggregation, against hand-computed values. */
import { describe, expect, it } from 'vitest';
import { compareOverSeeds, fmtReach, meanCurve, selectOnValidation, spread, type Curve } from '../src/report/curves.js';
import { lineChartSvg } from '../src/report/svg-plot.js';

describe('selectOnValidation', () => {
  it('reports the test figure at the point validation chooses, not the best test figure', () => {
    const points = [
      { epoch: 0, validation: 0.50, test: 0.52 },
      { epoch: 2, validation: 0.71, test: 0.64 }, // chosen on validation
      { epoch: 4, validation: 0.69, test: 0.70 }, // best on test: choosing here would overstate
      { epoch: 6, validation: 0.71, test: 0.66 }, // ties the chosen one: the earlier wins
    ];
    const p = selectOnValidation(points);
    expect(p.epoch).toBe(2);
    expect(p.test).toBe(0.64);
    expect(Math.max(...points.map((q) => q.test))).toBe(0.70);
  });

  it('refuses an empty curve, naming it', () => {
    expect(() => selectOnValidation([])).toThrow(/non-empty array of points for points/);
  });
});

describe('spread', () => {
  it('is the mean and the sample sd (n − 1)', () => {
    // mean 2; squared deviations 1 + 0 + 1 = 2; 2 / (3 − 1) = 1.
    expect(spread([1, 2, 3])).toEqual({ mean: 2, sd: 1, min: 1, max: 3, n: 3 });
    expect(spread([0.4])).toEqual({ mean: 0.4, sd: 0, min: 0.4, max: 0.4, n: 1 });
    expect(() => spread([1, Number.NaN])).toThrow(/finite number for values\[1\]/);
  });
});

describe('compareOverSeeds', () => {
  const grid = [0, 1, 2];
  const base: Curve[] = [{ epochs: grid, accuracy: [0.5, 0.6, 0.7] }, { epochs: grid, accuracy: [0.4, 0.8, 0.6] }];
  const method: Curve[] = [{ epochs: grid, accuracy: [0.5, 0.7, 0.8] }, { epochs: grid, accuracy: [0.4, 0.5, 0.55] }];

  it('pairs RAUC by seed and gives its mean and spread', () => {
    const c = compareOverSeeds('m', 'b', [0, 1], method, base);
    // Seed 0: (.5 + .7)/2 + (.7 + .8)/2 = 1.35 over .55 + .65 = 1.2 → 1.125.
    // Seed 1: .45 + .525 = .975 over .6 + .7 = 1.3 → .75.
    expect(c.raucBySeed[0]).toBeCloseTo(1.125, 12);
    expect(c.raucBySeed[1]).toBeCloseTo(0.75, 12);
    expect(c.rauc.mean).toBeCloseTo(0.9375, 12);
    // Deviations ±.1875: sd = sqrt(2 · .1875² / 1) = .1875·√2.
    expect(c.rauc.sd).toBeCloseTo(0.1875 * Math.SQRT2, 12);
    // Pairing matters: the pooled ratio (1.35 + .975) / (1.2 + 1.3) = .93 is not it.
    expect(c.rauc.mean).not.toBeCloseTo(2.325 / 2.5, 3);
  });

  it('counts epochs to the base\'s final accuracy of the same seed, and says when a seed never gets there', () => {
    const c = compareOverSeeds('m', 'b', [0, 1], method, base);
    // Seed 0: target .7 reached exactly at epoch 1. Seed 1: target .6, the method peaks at .55.
    expect(c.reach.map((r) => r.epochs)).toEqual([1, null]);
    expect(c.reach.map((r) => r.target)).toEqual([0.7, 0.6]);
    expect(c.reached).toEqual({ mean: 1, sd: 0, min: 1, max: 1, n: 1 });
    expect(fmtReach(c)).toBe('1.00 (1/2 seeds)');
    // The base: seed 0 gets to .7 at epoch 2; seed 1 crosses .6 halfway from (0, .4) to (1, .8).
    expect(c.baseReach[0]!.epochs).toBe(2);
    expect(c.baseReach[1]!.epochs).toBeCloseTo(0.5, 12);
    expect(c.final.mean).toBeCloseTo(0.675, 12);
    const never = compareOverSeeds('m', 'b', [1], [method[1]!], [base[1]!]);
    expect(never.reached).toBeNull();
    expect(fmtReach(never)).toBe('not reached');
  });

  it('marks a seed whose untrained encoder already scores the target as degenerate, never as 0 epochs', () => {
    const b: Curve = { epochs: grid, accuracy: [0.7, 0.65, 0.6] };
    const m: Curve = { epochs: grid, accuracy: [0.7, 0.75, 0.8] };
    const c = compareOverSeeds('m', 'b', [3], [m], [b]);
    expect(c.reach[0]).toEqual({ seed: 3, target: 0.6, untrained: 0.7, epochs: null, degenerate: true });
    expect(c.reached).toBeNull();
    expect(fmtReach(c)).toMatch(/^degenerate on every seed/);
  });

  it('refuses a missing seed and mismatched grids, naming them', () => {
    expect(() => compareOverSeeds('m', 'b', [0, 1], [method[0]!], base)).toThrow(/2 curves \(one per seed\) for curves of m/);
    const odd = [{ epochs: [0, 1, 3], accuracy: [0.5, 0.6, 0.7] }, base[1]!];
    expect(() => compareOverSeeds('m', 'b', [0, 1], method, odd)).toThrow(/m \(seed 0\) and b \(seed 0\)/);
  });
});

describe('meanCurve and the spread in the plot', () => {
  it('averages curves pointwise with the sample sd, and draws a whisker per point', () => {
    const mc = meanCurve([{ epochs: [0, 2], accuracy: [0.2, 0.5] }, { epochs: [0, 2], accuracy: [0.4, 0.5] }]);
    expect(mc.epochs).toEqual([0, 2]);
    expect(mc.mean[0]).toBeCloseTo(0.3, 12);
    expect(mc.sd[0]).toBeCloseTo(Math.sqrt(0.02), 12);
    expect(mc.sd[1]).toBe(0);
    const svg = lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', x: mc.epochs, y: mc.mean, lo: [0.1, 0.5], hi: [0.5, 0.5] }] });
    expect(svg.match(/class="spread"/g)).toHaveLength(2);
    expect(() => lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', x: [0, 1], y: [0, 1], lo: [0] }] })).toThrow(/2 numbers \(as many as x\) for series\[0\]\.lo/);
  });
});
