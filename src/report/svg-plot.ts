/**
 * Line charts as self-contained SVG text (no fonts, scripts or stylesheets to
 * fetch), so a report renders the same on GitHub, in a browser or offline.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { expected } from '../errors.js';
import { checkInt } from '../validate.js';

export interface Series {
  name: string;
  x: number[];
  y: number[];
  /** Optional spread at each point (e.g. mean ± sd over seeds), drawn as a whisker from lo[j] to hi[j]. */
  lo?: number[];
  hi?: number[];
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Pixels; default 720. */
  width?: number;
  /** Pixels; default 440. */
  height?: number;
}

// Okabe–Ito: told apart under the common colour-vision deficiencies. Its yellow is
// dropped (unreadable on white) and grey added; the marker shape separates series too.
export const COLOURS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#999999'];
// Seven shapes against eight colours: (colour, shape) pairs repeat only after 56 series.
const MARKERS = ['circle', 'square', 'triangle', 'diamond', 'triangle-down', 'cross', 'plus'] as const;
type Marker = (typeof MARKERS)[number];

export const FONT = 12;
export const TITLE_FONT = 15;
// Width of one character at FONT px in a sans-serif face, used to size margins
// without measuring text (there is no font engine here); generous on purpose.
export const CHAR_W = 0.62 * FONT;
const MARKER_R = 3.5;

/** Escapes text for XML content and attribute values, and drops characters XML 1.0 forbids. */
export function escapeXml(s: string): string {
  return s
    .replace(/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g, '')
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

/** 1, 2 or 5 times a power of ten near x (Heckbert's "nice numbers"). */
function niceNum(x: number, round: boolean): number {
  const exp = Math.floor(Math.log10(x));
  const f = x / 10 ** exp;
  const nf = round ? (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) : f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nf * 10 ** exp;
}

/** Decimals that print every multiple of `step` exactly (steps have one significant digit). */
function stepDecimals(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

/**
 * Round tick values covering [lo, hi]: multiples of a 1/2/5·10ᵏ step, the first
 * at or below lo and the last at or above hi, about `count` of them.
 */
export function niceTicks(lo: number, hi: number, count = 6): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || hi < lo) throw expected('finite lo ≤ hi', 'niceTicks range', [lo, hi]);
  if (hi === lo) {
    // One value has no scale of its own: widen to a tenth of its size either side (or [0, 1] around 0).
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    return niceTicks(lo === 0 ? 0 : lo - pad, hi + pad, count);
  }
  const step = niceNum(niceNum(hi - lo, false) / Math.max(1, count - 1), true);
  const dec = stepDecimals(step);
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const ticks: number[] = [];
  // Multiply rather than accumulate so 0.1 + 0.2 noise does not creep in; toFixed trims the rest.
  for (let k = first; k <= last; k++) ticks.push(Number((k * step).toFixed(dec)));
  return ticks;
}

/** A tick label with as many decimals as the tick step needs. */
export function fmtTick(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? ticks[1]! - ticks[0]! : 1;
  return v.toFixed(stepDecimals(step));
}

/** Coordinates to two decimals: sub-pixel enough, and keeps the text short. */
export function c(v: number): string {
  return String(Math.round(v * 100) / 100);
}

function markerSvg(shape: Marker, x: number, y: number, colour: string): string {
  const r = MARKER_R;
  const fill = `fill="${colour}"`;
  switch (shape) {
    case 'circle':
      return `<circle cx="${c(x)}" cy="${c(y)}" r="${r}" ${fill}/>`;
    case 'square':
      return `<rect x="${c(x - r)}" y="${c(y - r)}" width="${2 * r}" height="${2 * r}" ${fill}/>`;
    case 'triangle':
      return `<path d="M${c(x)},${c(y - r - 0.5)} L${c(x + r + 0.5)},${c(y + r)} L${c(x - r - 0.5)},${c(y + r)} Z" ${fill}/>`;
    case 'triangle-down':
      return `<path d="M${c(x)},${c(y + r + 0.5)} L${c(x + r + 0.5)},${c(y - r)} L${c(x - r - 0.5)},${c(y - r)} Z" ${fill}/>`;
    case 'diamond':
      return `<path d="M${c(x)},${c(y - r - 1)} L${c(x + r + 1)},${c(y)} L${c(x)},${c(y + r + 1)} L${c(x - r - 1)},${c(y)} Z" ${fill}/>`;
    case 'cross':
      return (
        `<path d="M${c(x - r)},${c(y - r)} L${c(x + r)},${c(y + r)} M${c(x - r)},${c(y + r)} L${c(x + r)},${c(y - r)}" ` +
        `fill="none" stroke="${colour}" stroke-width="2"/>`
      );
    case 'plus':
      return (
        `<path d="M${c(x - r - 1)},${c(y)} L${c(x + r + 1)},${c(y)} M${c(x)},${c(y - r - 1)} L${c(x)},${c(y + r + 1)}" ` +
        `fill="none" stroke="${colour}" stroke-width="2"/>`
      );
  }
}

export function checkText(v: unknown, name: string): asserts v is string {
  if (typeof v !== 'string') throw expected('a string', name, v);
}

/** The opening of a chart: the svg root, its <title>, a white background and the centred title text. */
export function svgOpen(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `role="img" font-family="sans-serif" font-size="${FONT}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text class="title" x="${c(width / 2)}" y="${16 + TITLE_FONT}" text-anchor="middle" font-size="${TITLE_FONT}" ` +
      `font-weight="bold">${escapeXml(title)}</text>`,
  ];
}

/** Left margin that fits the y-axis label and the widest tick label. */
export function yAxisMargin(tickText: string[]): number {
  return 12 + FONT + 10 + Math.ceil(Math.max(...tickText.map((t) => t.length)) * CHAR_W) + 8;
}

/** Tick marks and labels on a y axis at x = px0; `sy` maps a value to its SVG y. */
export function yTicksSvg(ticks: number[], tickText: string[], px0: number, sy: (v: number) => number): string[] {
  const out = ['<g class="y-ticks" text-anchor="end">'];
  ticks.forEach((v, k) => {
    out.push(`<line x1="${c(px0 - 4)}" y1="${c(sy(v))}" x2="${c(px0)}" y2="${c(sy(v))}" stroke="#333333"/>`);
    out.push(`<text x="${c(px0 - 8)}" y="${c(sy(v) + FONT / 3)}">${escapeXml(tickText[k]!)}</text>`);
  });
  out.push('</g>');
  return out;
}

/** The y-axis label, rotated, its baseline at x = ylx (default: by the left edge), centred on [py0, py1]. */
export function yLabelSvg(label: string, py0: number, py1: number, ylx = 12 + FONT): string {
  const yly = (py0 + py1) / 2;
  return (
    `<text class="y-label" x="${c(ylx)}" y="${c(yly)}" text-anchor="middle" transform="rotate(-90 ${c(ylx)} ${c(yly)})">` +
    `${escapeXml(label)}</text>`
  );
}

function checkSeries(series: unknown): asserts series is Series[] {
  if (!Array.isArray(series) || series.length === 0) throw expected('a non-empty array of series', 'series', series);
  series.forEach((s: unknown, i) => {
    if (typeof s !== 'object' || s === null) throw expected('a series { name, x, y }', `series[${i}]`, s);
    const { name, x, y } = s as Partial<Series>;
    checkText(name, `series[${i}].name`);
    if (!Array.isArray(x) || x.length === 0) throw expected('a non-empty array of numbers', `series[${i}].x`, x);
    if (!Array.isArray(y) || y.length !== x.length) {
      throw expected(`an array of ${x.length} numbers (as many as x)`, `series[${i}].y`, y, 'E_SHAPE');
    }
    const { lo, hi } = s as Partial<Series>;
    for (const [k, arr] of [['lo', lo], ['hi', hi]] as const) {
      if (arr !== undefined && (!Array.isArray(arr) || arr.length !== x.length)) {
        throw expected(`an array of ${x.length} numbers (as many as x)`, `series[${i}].${k}`, arr, 'E_SHAPE');
      }
    }
    for (const [axis, arr] of [['x', x], ['y', y], ['lo', lo ?? []], ['hi', hi ?? []]] as const) {
      arr.forEach((v: unknown, j: number) => {
        if (typeof v !== 'number' || !Number.isFinite(v)) throw expected('a finite number', `series[${i}].${axis}[${j}]`, v);
      });
    }
  });
}

/**
 * [series of (x, y) points] → an SVG line chart: title, axes with round ticks
 * and gridlines, one polyline with markers per series, and a legend on the
 * right. Each series gets its own colour and marker shape. All text is escaped.
 */
export function lineChartSvg(opts: LineChartOptions): string {
  if (typeof opts !== 'object' || opts === null) throw expected('an options object', 'lineChartSvg options', opts);
  const { title, xLabel, yLabel, series, width = 720, height = 440 } = opts;
  checkText(title, 'title');
  checkText(xLabel, 'xLabel');
  checkText(yLabel, 'yLabel');
  checkSeries(series);
  checkInt(width, 'width', 240, 20_000);
  checkInt(height, 'height', 180, 20_000);

  const xs = series.flatMap((s) => s.x);
  const ys = series.flatMap((s) => [...s.y, ...(s.lo ?? []), ...(s.hi ?? [])]);
  const xTicks = niceTicks(Math.min(...xs), Math.max(...xs));
  const yTicks = niceTicks(Math.min(...ys), Math.max(...ys));
  const xMin = xTicks[0]!;
  const xMax = xTicks[xTicks.length - 1]!;
  const yMin = yTicks[0]!;
  const yMax = yTicks[yTicks.length - 1]!;

  const yTickText = yTicks.map((v) => fmtTick(v, yTicks));
  const longestName = Math.max(...series.map((s) => [...s.name].length));
  // Legend: a 22 px line sample with its marker, a gap, the name; never more than a third of the chart.
  const legendW = Math.min(Math.round(width / 3), 22 + 8 + Math.ceil(longestName * CHAR_W) + 12);
  const left = yAxisMargin(yTickText);
  const right = 16 + legendW;
  const top = 16 + TITLE_FONT + 14;
  const bottom = 8 + FONT + 8 + FONT + 14;
  const px0 = left;
  const px1 = width - right;
  const py0 = top;
  const py1 = height - bottom;
  if (px1 - px0 < 40 || py1 - py0 < 40) {
    throw expected('a chart large enough for its labels and legend', 'width/height', `${width}×${height}`);
  }
  const sx = (v: number): number => px0 + ((v - xMin) / (xMax - xMin)) * (px1 - px0);
  // SVG's y grows downwards.
  const sy = (v: number): number => py1 - ((v - yMin) / (yMax - yMin)) * (py1 - py0);

  const out: string[] = [];
  out.push(...svgOpen(width, height, title));

  out.push('<g class="grid" stroke="#e6e6e6" stroke-width="1">');
  for (const v of xTicks) out.push(`<line x1="${c(sx(v))}" y1="${c(py0)}" x2="${c(sx(v))}" y2="${c(py1)}"/>`);
  for (const v of yTicks) out.push(`<line x1="${c(px0)}" y1="${c(sy(v))}" x2="${c(px1)}" y2="${c(sy(v))}"/>`);
  out.push('</g>');
  out.push(
    `<rect class="plot-area" x="${c(px0)}" y="${c(py0)}" width="${c(px1 - px0)}" height="${c(py1 - py0)}" ` +
      `fill="none" stroke="#333333"/>`,
  );

  out.push('<g class="x-ticks" text-anchor="middle">');
  for (const v of xTicks) {
    out.push(`<line x1="${c(sx(v))}" y1="${c(py1)}" x2="${c(sx(v))}" y2="${c(py1 + 4)}" stroke="#333333"/>`);
    out.push(`<text x="${c(sx(v))}" y="${c(py1 + 8 + FONT)}">${escapeXml(fmtTick(v, xTicks))}</text>`);
  }
  out.push('</g>');
  out.push(...yTicksSvg(yTicks, yTickText, px0, sy));
  out.push(
    `<text class="x-label" x="${c((px0 + px1) / 2)}" y="${c(height - 12)}" text-anchor="middle">${escapeXml(xLabel)}</text>`,
  );
  out.push(yLabelSvg(yLabel, py0, py1));

  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const shape = MARKERS[i % MARKERS.length]!;
    const pts = s.x.map((x, j) => [sx(x), sy(s.y[j]!)] as const);
    out.push(`<g class="series" data-name="${escapeXml(s.name)}">`);
    out.push(
      `<polyline points="${pts.map(([x, y]) => `${c(x)},${c(y)}`).join(' ')}" fill="none" stroke="${colour}" ` +
        `stroke-width="2" stroke-linejoin="round"/>`,
    );
    for (const [x, y] of pts) out.push(markerSvg(shape, x, y, colour));
    if (s.lo && s.hi) {
      s.x.forEach((x, j) => {
        const [X, a, b] = [sx(x), sy(s.lo![j]!), sy(s.hi![j]!)];
        out.push(`<path class="spread" d="M${c(X)},${c(a)} L${c(X)},${c(b)} M${c(X - 3)},${c(a)} L${c(X + 3)},${c(a)} M${c(X - 3)},${c(b)} L${c(X + 3)},${c(b)}" fill="none" stroke="${colour}" stroke-width="1"/>`);
      });
    }
    out.push('</g>');
  });

  out.push('<g class="legend">');
  const lx = px1 + 16;
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length]!;
    const ly = py0 + 8 + i * (FONT + 8);
    out.push(`<line x1="${c(lx)}" y1="${c(ly)}" x2="${c(lx + 22)}" y2="${c(ly)}" stroke="${colour}" stroke-width="2"/>`);
    out.push(markerSvg(MARKERS[i % MARKERS.length]!, lx + 11, ly, colour));
    out.push(`<text x="${c(lx + 30)}" y="${c(ly + FONT / 3)}">${escapeXml(s.name)}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}

/** Writes an SVG document, creating its folder; the text is written as given. */
export function writeSvg(path: string, svg: string): void {
  if (typeof path !== 'string' || path.length === 0) throw expected('a non-empty file path', 'path', path);
  if (typeof svg !== 'string' || !/^\s*(<\?xml[^>]*>\s*)?<svg[\s>]/.test(svg)) {
    throw expected('SVG text starting with <svg', 'svg', typeof svg === 'string' ? `${svg.slice(0, 20)}…` : svg);
  }
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, svg);
}
