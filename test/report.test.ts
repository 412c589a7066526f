/** Report pieces: RAUC and epochs-to-reach on hand-computed curves, SVG well-formedness and layout, Markdown tables. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  epochsToReach, fmtNumber, fmtPercent, fmtRatio, groupedBarChartSvg, lineChartSvg, markdownTable, niceTicks, rauc, summarize,
  summaryTable, writeSvg, type BarGroup, type Curve, type GroupedBarChartOptions, type Series,
} from '../src/report/index.js';

describe('rauc', () => {
  const grid = [0, 1, 2, 4];
  // Trapezoids: 1·(0 + .5)/2 + 1·(.5 + .7)/2 + 2·(.7 + .8)/2 = .25 + .6 + 1.5 = 2.35.
  const method: Curve = { epochs: grid, accuracy: [0, 0.5, 0.7, 0.8] };
  // .125 + .375 + 1.2 = 1.7.
  const baseline: Curve = { epochs: [...grid], accuracy: [0, 0.25, 0.5, 0.7] };

  it('is 1 for identical curves', () => {
    expect(rauc(method, { epochs: [...grid], accuracy: [...method.accuracy] })).toBe(1);
  });

  it('is the ratio of the trapezoidal areas', () => {
    expect(rauc(method, baseline)).toBeCloseTo(2.35 / 1.7, 14);
    expect(rauc(baseline, method)).toBeCloseTo(1.7 / 2.35, 14);
  });

  it('refuses different epoch grids, naming both curves', () => {
    const other: Curve = { epochs: [0, 1, 2, 3], accuracy: [0, 0.5, 0.7, 0.8] };
    expect(() => rauc(other, baseline)).toThrow(/same epoch grid for method and baseline.*method\.epochs \[0, 1, 2, 3\].*baseline\.epochs \[0, 1, 2, 4\]/);
    const shorter: Curve = { epochs: [0, 1, 2], accuracy: [0, 0.5, 0.7] };
    expect(() => rauc(shorter, baseline)).toThrow(/same epoch grid/);
  });

  it('refuses a baseline with zero area', () => {
    expect(() => rauc(method, { epochs: [...grid], accuracy: [0, 0, 0, 0] })).toThrow(/positive area.* for baseline/);
    expect(() => rauc({ epochs: [3], accuracy: [0.5] }, { epochs: [3], accuracy: [0.5] })).toThrow(/for baseline/);
  });

  it('validates the curves, naming the bad entry', () => {
    expect(() => rauc({ epochs: grid, accuracy: [0, 1.2, 0.7, 0.8] }, baseline)).toThrow(/for method\.accuracy\[1\] but received 1\.2/);
    expect(() => rauc(method, { epochs: [0, 2, 1, 4], accuracy: [0, 0, 0, 0] })).toThrow(/for baseline\.epochs\[2\]/);
    expect(() => rauc(method, { epochs: grid, accuracy: [0, 0.5] })).toThrow(/for baseline\.accuracy/);
    expect(() => rauc(method, { epochs: [], accuracy: [] })).toThrow(/non-empty array for baseline\.epochs/);
    expect(() => rauc(null as unknown as Curve, baseline)).toThrow(/for method but received null/);
  });
});

describe('epochsToReach', () => {
  const curve: Curve = { epochs: [0, 2, 4, 8], accuracy: [0.1, 0.4, 0.6, 0.9] };

  it('interpolates linearly between the two probes around the crossing', () => {
    // .5 lies halfway from .4 (epoch 2) to .6 (epoch 4); .75 halfway from .6 (epoch 4) to .9 (epoch 8).
    expect(epochsToReach(curve, 0.5)).toBeCloseTo(3, 12);
    expect(epochsToReach(curve, 0.75)).toBeCloseTo(6, 12);
    // .46: 30% of the way from .4 to .6.
    expect(epochsToReach(curve, 0.46)).toBeCloseTo(2.6, 12);
  });

  it('returns the probe epoch when a probe meets the target exactly', () => {
    expect(epochsToReach(curve, 0.6)).toBe(4);
    expect(epochsToReach(curve, 0.9)).toBe(8);
  });

  it('returns the first probe when the curve starts at or above the target', () => {
    expect(epochsToReach(curve, 0.05)).toBe(0);
    expect(epochsToReach({ epochs: [1, 2], accuracy: [0.3, 0.5] }, 0.2)).toBe(1);
  });

  it('is null when the target is never reached', () => {
    expect(epochsToReach(curve, 0.95)).toBeNull();
  });

  it('takes the first crossing of a curve that dips', () => {
    // (.5 − .1)/(.6 − .1) = .8 of the way from epoch 0 to epoch 1; the later dip and recovery do not count.
    expect(epochsToReach({ epochs: [0, 1, 2, 3], accuracy: [0.1, 0.6, 0.4, 0.7] }, 0.5)).toBeCloseTo(0.8, 12);
  });

  it('rejects a non-finite target and a bad curve', () => {
    expect(() => epochsToReach(curve, Number.NaN)).toThrow(/for target but received NaN/);
    expect(() => epochsToReach({ epochs: [0, 1], accuracy: [0.1, -0.1] }, 0.5)).toThrow(/for curve\.accuracy\[1\]/);
  });
});

describe('summarize', () => {
  const epochs = [0, 10, 20, 30, 40];
  const curves: Record<string, Curve> = {
    simmim: { epochs, accuracy: [0.1, 0.5, 0.7, 0.78, 0.8] },
    mto: { epochs, accuracy: [0.1, 0.6, 0.85, 0.86, 0.88] },
    mae: { epochs, accuracy: [0.1, 0.4, 0.6, 0.76, 0.75] },
  };
  // Areas, 10 epochs per trapezoid: simmim 3 + 6 + 7.4 + 7.9 = 24.3; mto 3.5 + 7.25 + 8.55 + 8.7 = 28;
  // mae 2.5 + 5 + 6.8 + 7.55 = 21.85. Target .8 (simmim's final): simmim reaches it at its last probe (40),
  // mto 80% of the way from epoch 10 (.6) to 20 (.85) = 18, so 18/40 = 45% of simmim's epochs; mae never.
  it('gives final, best, RAUC, epochs to reach and the share of the reference per method', () => {
    const s = summarize(curves, 'simmim');
    expect(s.reference).toBe('simmim');
    expect(s.target).toBe(0.8);
    expect(s.methods.map((m) => m.method)).toEqual(['simmim', 'mto', 'mae']);
    const [simmim, mto, mae] = s.methods;
    expect(simmim).toEqual({ method: 'simmim', finalAccuracy: 0.8, bestAccuracy: 0.8, rauc: 1, epochsToReach: 40, epochsShare: 1 });
    expect(mto!.finalAccuracy).toBe(0.88);
    expect(mto!.bestAccuracy).toBe(0.88);
    expect(mto!.rauc).toBeCloseTo(28 / 24.3, 12);
    expect(mto!.epochsToReach).toBeCloseTo(18, 12);
    expect(mto!.epochsShare).toBeCloseTo(0.45, 12);
    expect(mae!.finalAccuracy).toBe(0.75);
    expect(mae!.bestAccuracy).toBe(0.76);
    expect(mae!.rauc).toBeCloseTo(21.85 / 24.3, 12);
    expect(mae!.epochsToReach).toBeNull();
    expect(mae!.epochsShare).toBeNull();
  });

  it('renders as a Markdown table', () => {
    const table = summaryTable(summarize(curves, 'simmim')).split('\n');
    expect(table).toHaveLength(5);
    expect(table[0]).toMatch(/RAUC vs simmim/);
    expect(table[0]).toMatch(/epochs to 80\.0%/);
    expect(table[3]).toMatch(/^\| mto +\| +88\.0% \| +88\.0% \| +1\.152× \| +18\.0 \| +45\.0% \|$/);
    expect(table[4]).toMatch(/^\| mae +\| +75\.0% \| +76\.0% \| +0\.899× \| +never \| +– \|$/);
  });

  it('names the curves whose grids differ, and an unknown reference', () => {
    const bad = { ...curves, spark: { epochs: [0, 10, 20, 30], accuracy: [0.1, 0.2, 0.3, 0.4] } };
    expect(() => summarize(bad, 'simmim')).toThrow(/for curves\.spark and curves\.simmim/);
    expect(() => summarize(curves, 'beit')).toThrow(/one of the curve names \['simmim', 'mto', 'mae'\] for reference but received 'beit'/);
  });
});

/** Element names in document order; throws unless every tag is closed in order and all text/attributes are escaped. */
function checkWellFormed(xml: string): string[] {
  const tag = /<(\/?)([A-Za-z][\w.:-]*)((?:\s+[A-Za-z_][\w.:-]*="[^"]*")*)\s*(\/?)>/y;
  const entityOk = (s: string): boolean => !/&(?!(?:amp|lt|gt|quot|#39|#\d+);)/.test(s);
  const stack: string[] = [];
  const names: string[] = [];
  let roots = 0;
  let i = 0;
  for (;;) {
    const lt = xml.indexOf('<', i);
    const text = xml.slice(i, lt < 0 ? xml.length : lt);
    if (text.includes('>') || !entityOk(text)) throw new Error(`unescaped text at ${i}: ${text.slice(0, 40)}`);
    if (stack.length === 0 && text.trim() !== '') throw new Error(`text outside the root: ${text.slice(0, 40)}`);
    if (lt < 0) break;
    tag.lastIndex = lt;
    const m = tag.exec(xml);
    if (!m) throw new Error(`malformed tag at ${lt}: ${xml.slice(lt, lt + 60)}`);
    const [, close, name, attrs, self] = m as unknown as [string, string, string, string, string];
    const attrNames = [...attrs.matchAll(/([\w.:-]+)="([^"]*)"/g)].map((a) => {
      if (a[2]!.includes('<') || !entityOk(a[2]!)) throw new Error(`unescaped attribute ${a[1]} of <${name}>`);
      return a[1]!;
    });
    if (new Set(attrNames).size !== attrNames.length) throw new Error(`duplicate attribute in <${name}>`);
    if (close) {
      if (attrs || self) throw new Error(`bad closing tag </${name}>`);
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open}>`);
    } else {
      if (stack.length === 0) roots++;
      names.push(name);
      if (!self) stack.push(name);
    }
    i = tag.lastIndex;
  }
  if (stack.length) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return names;
}

const num = (s: string): number => Number(s);

function plotArea(svg: string): { x: number; y: number; w: number; h: number } {
  const m = /<rect class="plot-area" x="([^"]+)" y="([^"]+)" width="([^"]+)" height="([^"]+)"/.exec(svg);
  if (!m) throw new Error('no plot-area rect');
  return { x: num(m[1]!), y: num(m[2]!), w: num(m[3]!), h: num(m[4]!) };
}

function polylines(svg: string): Array<{ stroke: string; pts: Array<[number, number]> }> {
  return [...svg.matchAll(/<polyline points="([^"]*)" fill="none" stroke="([^"]+)"/g)].map((m) => ({
    stroke: m[2]!,
    pts: m[1]!.split(' ').map((p) => p.split(',').map(num) as [number, number]),
  }));
}

describe('lineChartSvg', () => {
  const names = ['MAE <base> & "ours"', "SimMIM 'p32'", 'MTO', 'SBAM', 'HPM', 'SparK', 'plain', 'a|b'];
  const escaped = [
    'MAE &lt;base&gt; &amp; &quot;ours&quot;', 'SimMIM &#39;p32&#39;', 'MTO', 'SBAM', 'HPM', 'SparK', 'plain', 'a|b',
  ];
  const series: Series[] = names.map((name, i) => ({
    name,
    x: [0, 5, 10, 20, 37],
    y: [0.1, 0.3 + 0.02 * i, 0.5 + 0.03 * i, 0.6 + 0.03 * i, 0.62 + 0.035 * i],
  }));
  const svg = lineChartSvg({ title: 'Probe <acc> & epochs', xLabel: 'epoch', yLabel: 'top-1 "probe"', series });

  it('is well-formed XML with one svg root', () => {
    const elements = checkWellFormed(svg);
    expect(elements[0]).toBe('svg');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(elements.filter((e) => e === 'polyline')).toHaveLength(series.length);
  });

  it('contains every series name and label, escaped', () => {
    for (const e of escaped) expect(svg).toContain(`>${e}</text>`);
    expect(svg).toContain('Probe &lt;acc&gt; &amp; epochs');
    expect(svg).toContain('top-1 &quot;probe&quot;');
    expect(svg).not.toContain('<base>');
  });

  it('puts every point inside the plot area, in the right order', () => {
    const area = plotArea(svg);
    const lines = polylines(svg);
    expect(lines).toHaveLength(series.length);
    lines.forEach((l, i) => {
      expect(l.pts).toHaveLength(series[i]!.x.length);
      for (const [x, y] of l.pts) {
        expect(x).toBeGreaterThanOrEqual(area.x);
        expect(x).toBeLessThanOrEqual(area.x + area.w);
        expect(y).toBeGreaterThanOrEqual(area.y);
        expect(y).toBeLessThanOrEqual(area.y + area.h);
      }
      // x grows rightwards and, as every y here increases, the SVG y (which grows downwards) decreases.
      for (let k = 1; k < l.pts.length; k++) {
        expect(l.pts[k]![0]).toBeGreaterThan(l.pts[k - 1]![0]);
        expect(l.pts[k]![1]).toBeLessThan(l.pts[k - 1]![1]);
      }
    });
    // Equal data values land on equal coordinates across series (all start at (0, .1)).
    expect(new Set(lines.map((l) => l.pts[0]!.join(','))).size).toBe(1);
  });

  it('gives each series its own colour and marker shape', () => {
    const lines = polylines(svg);
    expect(new Set(lines.map((l) => l.stroke)).size).toBe(series.length);
    // A marker's shape: its element and its coordinates relative to the point it marks.
    const groups = [...svg.matchAll(/<g class="series"[^>]*>\n<polyline[^>]*\/>\n(<[^\n]*\/>)/g)].map((m) => m[1]!);
    expect(groups).toHaveLength(series.length);
    const shapes = groups.map((markup, i) => {
      const [cx, cy] = lines[i]!.pts[0]!;
      const el = /^<(\w+)/.exec(markup)![1]!;
      const d = /d="([^"]+)"/.exec(markup)?.[1];
      if (!d) return el;
      const rel = [...d.matchAll(/([ML])(-?[\d.]+),(-?[\d.]+)/g)].map((p) => `${p[1]}${(num(p[2]!) - cx).toFixed(1)},${(num(p[3]!) - cy).toFixed(1)}`);
      return `${el} ${rel.join(' ')}`;
    });
    expect(new Set(shapes.slice(0, 7)).size).toBe(7);
  });

  it('labels round ticks without floating-point noise', () => {
    const ticks = [...svg.matchAll(/<g class="x-ticks"[^>]*>([\s\S]*?)<\/g>/g)][0]![1]!;
    expect([...ticks.matchAll(/>([^<]+)<\/text>/g)].map((m) => m[1])).toEqual(['0', '10', '20', '30', '40']);
    const small = lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', x: [1, 2], y: [0.1, 0.3] }] });
    const yTicks = [...small.matchAll(/<g class="y-ticks"[^>]*>([\s\S]*?)<\/g>/g)][0]![1]!;
    expect([...yTicks.matchAll(/>([^<]+)<\/text>/g)].map((m) => m[1])).toEqual(['0.10', '0.15', '0.20', '0.25', '0.30']);
  });

  it('draws a single point and a flat series', () => {
    const one = lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'dot', x: [3], y: [0.5] }] });
    checkWellFormed(one);
    const area = plotArea(one);
    const [[x, y]] = polylines(one)[0]!.pts as [[number, number]];
    expect(x).toBeGreaterThan(area.x);
    expect(x).toBeLessThan(area.x + area.w);
    expect(y).toBeGreaterThan(area.y);
    expect(y).toBeLessThan(area.y + area.h);
    const flat = lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'f', x: [0, 1, 2], y: [0, 0, 0] }] });
    checkWellFormed(flat);
  });

  it('rejects bad input, naming the argument', () => {
    const base = { title: 't', xLabel: 'x', yLabel: 'y' };
    expect(() => lineChartSvg({ ...base, series: [] })).toThrow(/non-empty array of series for series/);
    expect(() => lineChartSvg({ ...base, series: [{ name: 'a', x: [0, 1], y: [1] }] })).toThrow(/for series\[0\]\.y/);
    expect(() => lineChartSvg({ ...base, series: [series[0]!, { name: 'b', x: [0, 1, Number.NaN], y: [1, 2, 3] }] })).toThrow(
      /finite number for series\[1\]\.x\[2\] but received NaN/,
    );
    expect(() => lineChartSvg({ ...base, series: [{ name: 3 as unknown as string, x: [0], y: [1] }] })).toThrow(/for series\[0\]\.name/);
    expect(() => lineChartSvg({ ...base, series, width: 10 })).toThrow(/for width but received 10/);
    expect(() => lineChartSvg({ ...base, title: undefined as unknown as string, series })).toThrow(/for title/);
  });
});

describe('niceTicks', () => {
  it('covers the range with 1/2/5 steps', () => {
    expect(niceTicks(0, 0.87)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(niceTicks(0, 40)).toEqual([0, 10, 20, 30, 40]);
    expect(niceTicks(3, 97)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(-0.3, 0.3)).toEqual([-0.4, -0.2, 0, 0.2, 0.4]);
    expect(niceTicks(0.1, 0.3)).toEqual([0.1, 0.15, 0.2, 0.25, 0.3]);
    // A single value is widened by a tenth of itself either side: [4.5, 5.5] in steps of .2.
    expect(niceTicks(5, 5)).toEqual([4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]);
    expect(niceTicks(0, 0)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
  });
});

describe('writeSvg', () => {
  it('creates the folder and writes the text', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloze-report-'));
    try {
      const svg = lineChartSvg({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 's', x: [0, 1], y: [0, 1] }] });
      const path = join(dir, 'plots', 'probe.svg');
      writeSvg(path, svg);
      expect(readFileSync(path, 'utf8')).toBe(svg);
      expect(() => writeSvg(join(dir, 'x.svg'), 'hello')).toThrow(/for svg but received 'hello/);
      expect(() => writeSvg('', svg)).toThrow(/for path/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('markdownTable', () => {
  it('writes the alignment row and pads columns', () => {
    expect(markdownTable(['method', 'acc'], [['mae', 0.5], ['simmim', 0.75]], ['l', 'r'])).toBe(
      ['| method |  acc |', '| :----- | ---: |', '| mae    |  0.5 |', '| simmim | 0.75 |'].join('\n'),
    );
  });

  it('right-aligns all-number columns by default', () => {
    const lines = markdownTable(['m', 'n', 'mixed'], [['a', 1, 2], ['b', 22, 'x']]).split('\n');
    expect(lines[1]).toBe('| :-- | --: | :---- |');
  });

  it('escapes pipes and newlines, and shows non-finite numbers as a dash', () => {
    const lines = markdownTable(['k', 'v'], [['a|b', Number.NaN], ['two\nlines', Infinity]], ['l', 'r']).split('\n');
    expect(lines[2]).toBe('| a\\|b         |   – |');
    expect(lines[3]).toBe('| two<br>lines |   – |');
  });

  it('rejects ragged rows and bad alignments, naming them', () => {
    expect(() => markdownTable(['a', 'b'], [['x', 1], ['y']])).toThrow(/2 cells .* for rows\[1\] but received 1 cells/);
    expect(() => markdownTable(['a', 'b'], [], ['l'])).toThrow(/for align/);
    expect(() => markdownTable(['a', 'b'], [], ['l', 'c' as 'l'])).toThrow(/for align\[1\] but received 'c'/);
    expect(() => markdownTable([], [])).toThrow(/for header/);
    expect(() => markdownTable(['a'], [[null as unknown as string]])).toThrow(/for rows\[0\]\[0\]/);
  });
});

describe('number formats', () => {
  it('formats percents, ratios and epochs', () => {
    expect(fmtPercent(0.8342)).toBe('83.4%');
    expect(fmtPercent(0.8342, 2)).toBe('83.42%');
    expect(fmtPercent(1)).toBe('100.0%');
    expect(fmtPercent(null)).toBe('–');
    expect(fmtRatio(1.5)).toBe('1.50×');
    expect(fmtRatio(28 / 24.3, 3)).toBe('1.152×');
    expect(fmtRatio(Number.NaN)).toBe('–');
    expect(fmtNumber(18)).toBe('18.0');
    expect(fmtNumber(undefined)).toBe('–');
    expect(() => fmtPercent(0.5, 3 as 1)).toThrow(/for digits/);
  });
});

describe('groupedBarChartSvg', () => {
  const series = ['clean', 'pwws <syn>', "bert-attack & 'mlm'"];
  const seriesEsc = ['clean', 'pwws &lt;syn&gt;', 'bert-attack &amp; &#39;mlm&#39;'];
  const groups: BarGroup[] = [
    { name: 'mlp-ft', values: [80, 20, 10], errors: [1, 2, null] },
    { name: 'mlp-ft+adv', values: [78, 40, null], errors: [null, 1.5, 3] },
    { name: 'mvp "prompt"', values: [90, 45, 30] },
    { name: 'mvp+adv', values: [88, null, 50], errors: [0.5, null, 2] },
  ];
  const groupsEsc = ['mlp-ft', 'mlp-ft+adv', 'mvp &quot;prompt&quot;', 'mvp+adv'];
  const svg = groupedBarChartSvg({ title: 'Robust accuracy <SST-2>', yLabel: 'accuracy (%)', series, groups });

  function bars(text: string): Array<{ x: number; y: number; w: number; h: number; fill: string; series: string }> {
    const re = /<rect class="bar" x="([^"]+)" y="([^"]+)" width="([^"]+)" height="([^"]+)" fill="([^"]+)" data-series="([^"]*)"/g;
    return [...text.matchAll(re)].map((m) => ({ x: num(m[1]!), y: num(m[2]!), w: num(m[3]!), h: num(m[4]!), fill: m[5]!, series: m[6]! }));
  }
  const count = (text: string, re: RegExp): number => [...text.matchAll(re)].length;
  const yTickLabels = (text: string): string[] => {
    const g = /<g class="y-ticks"[^>]*>([\s\S]*?)<\/g>/.exec(text)![1]!;
    return [...g.matchAll(/>([^<]+)<\/text>/g)].map((m) => m[1]!);
  };

  it('is well-formed XML with one svg root, every name escaped', () => {
    const elements = checkWellFormed(svg);
    expect(elements[0]).toBe('svg');
    expect(svg).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    for (const e of [...seriesEsc, ...groupsEsc]) expect(svg).toContain(`>${e}</text>`);
    expect(svg).toContain('>Robust accuracy &lt;SST-2&gt;</text>');
    expect(svg).toContain('>accuracy (%)</text>');
    expect(svg).not.toMatch(/<syn>|<SST-2>/);
    // Self-contained: nothing fetched.
    expect(svg).not.toMatch(/<script|<style|@import|href=|url\(/);
  });

  it('draws one bar per value, whiskers per error and a mark per missing value', () => {
    // 12 slots, 2 missing; errors on present values: 1, 2, 1.5, 0.5, 2 (the 3 on a missing value is not drawn).
    expect(count(svg, /<rect class="bar"/g)).toBe(10);
    expect(count(svg, /<path class="whisker"/g)).toBe(5);
    expect(count(svg, /<text class="missing"[^>]*>–<\/text>/g)).toBe(2);
    // Each group holds its own bars: mlp-ft+adv and mvp+adv lack one each.
    const perGroup = [...svg.matchAll(/<g class="group"[^>]*>([\s\S]*?)<\/g>/g)].map((m) => count(m[1]!, /<rect class="bar"/g));
    expect(perGroup).toEqual([3, 2, 3, 2]);
  });

  it('sizes bars in proportion to their values, from a shared baseline, inside the plot', () => {
    const area = plotArea(svg);
    const bs = bars(svg);
    // Default axis: 0 to a round ceiling (100 here), so bars stand on the bottom of the plot.
    expect(yTickLabels(svg)).toEqual(['0', '20', '40', '60', '80', '100']);
    const [b80, b20, b10] = bs as [typeof bs[0], typeof bs[0], typeof bs[0]];
    expect(b80.h / b20.h).toBeCloseTo(4, 2);
    expect(b80.h / b10.h).toBeCloseTo(8, 2);
    expect(b80.h).toBeCloseTo((80 / 100) * area.h, 1);
    for (const b of bs) {
      expect(b.y + b.h).toBeCloseTo(area.y + area.h, 1);
      expect(b.y).toBeGreaterThanOrEqual(area.y);
      expect(b.x).toBeGreaterThanOrEqual(area.x);
      expect(b.x + b.w).toBeLessThanOrEqual(area.x + area.w + 0.01);
    }
    // Left to right in group then series order, each series in its own colour, as in the legend.
    for (let k = 1; k < bs.length; k++) expect(bs[k]!.x).toBeGreaterThan(bs[k - 1]!.x);
    expect(bs.slice(0, 3).map((b) => b.series)).toEqual(seriesEsc);
    const swatches = [...svg.matchAll(/<rect class="swatch"[^>]* fill="([^"]+)"/g)].map((m) => m[1]!);
    expect(new Set(swatches).size).toBe(3);
    for (const b of bs) expect(b.fill).toBe(swatches[seriesEsc.indexOf(b.series)]);
  });

  it('takes the errors into the default ceiling and honours yMin/yMax', () => {
    const g = [{ name: 'a', values: [95, 50], errors: [8, null] }];
    // 95 + 8 = 103: the ticks are niceTicks(0, 103), whose last one covers the top whisker.
    const auto = yTickLabels(groupedBarChartSvg({ title: 't', yLabel: 'y', series: ['s', 'u'], groups: g }));
    expect(auto).toEqual(niceTicks(0, 103).map(String));
    expect(Number(auto.at(-1))).toBeGreaterThanOrEqual(103);
    const fixed = groupedBarChartSvg({ title: 't', yLabel: 'y', series: ['s', 'u'], groups: g, yMin: 0, yMax: 100 });
    expect(yTickLabels(fixed)).toEqual(['0', '20', '40', '60', '80', '100']);
    const [hi, mid] = bars(fixed);
    // 95 of 100 and 50 of 100 of the plot height.
    expect(hi!.h / mid!.h).toBeCloseTo(95 / 50, 2);
  });

  it('hangs negative values below a zero line', () => {
    const neg = groupedBarChartSvg({ title: 't', yLabel: 'Δ', series: ['s', 'u'], groups: [{ name: 'a', values: [-3, 6] }] });
    checkWellFormed(neg);
    const zero = num(/<line class="baseline" x1="[^"]+" y1="([^"]+)"/.exec(neg)![1]!);
    const [down, up] = bars(neg);
    expect(down!.y).toBeCloseTo(zero, 1);
    expect(up!.y + up!.h).toBeCloseTo(zero, 1);
    expect(up!.h / down!.h).toBeCloseTo(2, 2);
  });

  it('draws panels side by side on one scale, each under its title', () => {
    const opts: GroupedBarChartOptions = {
      title: 'Per task',
      yLabel: 'acc',
      series: ['clean', 'pwws'],
      groups: [{ name: 'ignored-group', values: [1, 2] }],
      panels: [
        { title: 'SST-2', groups: [{ name: 'mlp-ft', values: [80, 20] }, { name: 'mvp', values: [90, null] }] },
        { title: 'AG <News>', groups: [{ name: 'mlp-ft', values: [40, 10], errors: [1, 1] }] },
      ],
    };
    const out = groupedBarChartSvg(opts);
    checkWellFormed(out);
    expect(out).toContain('<text class="panel-title"');
    expect(out).toMatch(/class="panel-title"[^>]*>SST-2<\/text>/);
    expect(out).toMatch(/class="panel-title"[^>]*>AG &lt;News&gt;<\/text>/);
    expect(out).not.toContain('ignored-group');
    expect(count(out, /<rect class="plot-area"/g)).toBe(2);
    expect(count(out, /<rect class="bar"/g)).toBe(5);
    expect(count(out, /<path class="whisker"/g)).toBe(2);
    // One y scale: 80 in the first panel is twice 40 in the second; tick labels only once.
    const bs = bars(out);
    expect(bs[0]!.h / bs[3]!.h).toBeCloseTo(2, 2);
    expect(count(out, /<g class="y-ticks"/g)).toBe(1);
    // Equal bar widths across panels, the second panel to the right of the first.
    expect(bs[3]!.w).toBeCloseTo(bs[0]!.w, 1);
    expect(bs[3]!.x).toBeGreaterThan(bs[2]!.x);
    // A chart without panels has no panel titles.
    expect(svg).not.toContain('panel-title');
  });

  it('turns group labels that do not fit, and shortens very long ones', () => {
    expect(/<g class="group-labels">([\s\S]*?)<\/g>/.exec(svg)![1]).not.toContain('rotate(');
    const long = 'a very long method name that cannot fit under its group at all, not even turned';
    const out = groupedBarChartSvg({
      title: 't', yLabel: 'y', series: ['s', 'u'],
      groups: [{ name: long, values: [1, 2] }, { name: 'b', values: [3, 4] }],
      width: 300,
    });
    checkWellFormed(out);
    const labels = /<g class="group-labels">([\s\S]*?)<\/g>/.exec(out)![1]!;
    expect(count(labels, /transform="rotate\(-45 /g)).toBe(2);
    expect(labels).toMatch(/>a very long[^<]*…<\/text>/);
    // The whole name stays in the group's data-name.
    expect(out).toContain(`data-name="${long}"`);
  });

  it('rejects bad input, naming the field', () => {
    const base = { title: 't', yLabel: 'y', series: ['a', 'b'] };
    expect(() => groupedBarChartSvg({ ...base, groups: [{ name: 'g', values: [1, 2] }, { name: 'h', values: [1] }] })).toThrow(
      /array of 2 values .*for groups\[1\]\.values but received \[1\]/,
    );
    expect(() => groupedBarChartSvg({ ...base, groups: [{ name: 'g', values: [1, Number.NaN] }] })).toThrow(
      /finite number or null for groups\[0\]\.values\[1\] but received NaN/,
    );
    expect(() => groupedBarChartSvg({ ...base, groups: [{ name: 'g', values: [Infinity, 1] }] })).toThrow(/for groups\[0\]\.values\[0\]/);
    expect(() => groupedBarChartSvg({ ...base, groups: [{ name: 'g', values: [1, 2], errors: [1] }] })).toThrow(/for groups\[0\]\.errors/);
    expect(() => groupedBarChartSvg({ ...base, groups: [{ name: 'g', values: [1, 2], errors: [null, -1] }] })).toThrow(
      /≥ 0 or null for groups\[0\]\.errors\[1\] but received -1/,
    );
    expect(() => groupedBarChartSvg({ ...base, series: [], groups: [{ name: 'g', values: [] }] })).toThrow(/non-empty array of series names for series/);
    expect(() => groupedBarChartSvg({ ...base, series: ['a', 7 as unknown as string], groups: [] })).toThrow(/for series\[1\]/);
    expect(() => groupedBarChartSvg({ ...base, series: Array.from({ length: 9 }, (_, i) => `s${i}`), groups: [] })).toThrow(/at most 8 series/);
    expect(() => groupedBarChartSvg({ ...base, groups: [] })).toThrow(/non-empty array of groups for groups/);
    expect(() => groupedBarChartSvg(base)).toThrow(/for groups but received undefined/);
    expect(() => groupedBarChartSvg({ ...base, groups: [{ name: 3 as unknown as string, values: [1, 2] }] })).toThrow(/for groups\[0\]\.name/);
    const ok = [{ name: 'g', values: [1, 2] }];
    expect(() => groupedBarChartSvg({ ...base, panels: [] })).toThrow(/non-empty array of panels for panels/);
    expect(() => groupedBarChartSvg({ ...base, panels: [{ title: 'p', groups: ok }, { title: 'q', groups: [{ name: 'g', values: [1, 2, 3] }] }] })).toThrow(
      /for panels\[1\]\.groups\[0\]\.values/,
    );
    expect(() => groupedBarChartSvg({ ...base, panels: [{ title: undefined as unknown as string, groups: ok }] })).toThrow(/for panels\[0\]\.title/);
    expect(() => groupedBarChartSvg({ ...base, groups: ok, yMin: 10, yMax: 5 })).toThrow(/for yMax but received 5/);
    expect(() => groupedBarChartSvg({ ...base, groups: ok, yMax: Number.NaN })).toThrow(/finite number for yMax/);
    expect(() => groupedBarChartSvg({ ...base, groups: ok, width: 10 })).toThrow(/for width but received 10/);
    const many = Array.from({ length: 60 }, (_, i) => ({ name: `g${i}`, values: [1, 2] }));
    expect(() => groupedBarChartSvg({ ...base, groups: many, width: 300 })).toThrow(/large enough .* for width\/height/);
    expect(() => groupedBarChartSvg({ ...base, title: undefined as unknown as string, groups: ok })).toThrow(/for title/);
  });

  it('can be written with writeSvg', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cloze-bars-'));
    try {
      writeSvg(join(dir, 'bars.svg'), svg);
      expect(readFileSync(join(dir, 'bars.svg'), 'utf8')).toBe(svg);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
