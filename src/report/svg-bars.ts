/**
 * Grouped bar charts as self-contained SVG text, in the look of the line charts
 * of svg-plot.ts (palette, fonts, round ticks): one bar per (group, series), e.g.
 * accuracy per method (group) under each attack (series), optionally as several
 * panels side by side (one per task) on a shared y scale.
 */
import { expected } from '../errors.js';
import { checkInt } from '../validate.js';
import {
  CHAR_W, COLOURS, FONT, TITLE_FONT, c, checkText, escapeXml, fmtTick, niceTicks, svgOpen, yAxisMargin, yLabelSvg, yTicksSvg,
} from './svg-plot.js';

export interface BarGroup {
  name: string;
  /** One value per series, null = missing (no bar, a small "–" mark). */
  values: Array<number | null>;
  /** Optional ± error half-widths per series (drawn as whiskers). */
  errors?: Array<number | null>;
}

export interface GroupedBarChartOptions {
  title: string;
  yLabel: string;
  /** Series names (legend), e.g. attacks: ["clean", "pwws", "bert-attack"]. */
  series: string[];
  /** The groups along the x axis, e.g. methods: mlp-ft, mlp-ft+adv, mvp, mvp+adv. Ignored when `panels` is given. */
  groups?: BarGroup[];
  /** Optional panels: several charts side by side in one SVG, e.g. one per task. If given, `groups` is ignored. */
  panels?: Array<{ title: string; groups: BarGroup[] }>;
  /** Bottom of the y axis; default 0, or lower when some value (less its error) is negative. */
  yMin?: number;
  /** Top of the y axis; default a round ceiling of the data, errors included. Bars beyond it are clipped. */
  yMax?: number;
  /** Pixels; default 720, or wider when there are many bars. */
  width?: number;
  /** Pixels; default 440. */
  height?: number;
}

interface Panel {
  title: string | null;
  groups: BarGroup[];
}

/** Space between panels; only the first panel carries y tick labels (the scale is shared). */
const PANEL_GAP = 24;
/** Share of a group's slot left empty, half on each side, to separate neighbouring groups. */
const GROUP_PAD = 0.2;
const SWATCH = 12;
/** Group labels that do not fit their slot are turned by this much, anticlockwise. */
const LABEL_ANGLE = 45;
const SIN = Math.sin((LABEL_ANGLE * Math.PI) / 180);

function checkGroups(groups: unknown, name: string, nSeries: number): asserts groups is BarGroup[] {
  if (!Array.isArray(groups) || groups.length === 0) throw expected('a non-empty array of groups', name, groups);
  groups.forEach((g: unknown, i) => {
    const at = `${name}[${i}]`;
    if (typeof g !== 'object' || g === null) throw expected('a group { name, values }', at, g);
    const { name: gName, values, errors } = g as Partial<BarGroup>;
    checkText(gName, `${at}.name`);
    if (!Array.isArray(values) || values.length !== nSeries) {
      throw expected(`an array of ${nSeries} values (one per series, null if missing)`, `${at}.values`, values, 'E_SHAPE');
    }
    values.forEach((v: unknown, j) => {
      if (v !== null && (typeof v !== 'number' || !Number.isFinite(v))) {
        throw expected('a finite number or null', `${at}.values[${j}]`, v);
      }
    });
    if (errors === undefined) return;
    if (!Array.isArray(errors) || errors.length !== nSeries) {
      throw expected(`an array of ${nSeries} error half-widths (one per series, null if none)`, `${at}.errors`, errors, 'E_SHAPE');
    }
    errors.forEach((e: unknown, j) => {
      if (e !== null && (typeof e !== 'number' || !Number.isFinite(e) || e < 0)) {
        throw expected('a finite number ≥ 0 or null', `${at}.errors[${j}]`, e);
      }
    });
  });
}

function checkPanels(o: GroupedBarChartOptions, nSeries: number): Panel[] {
  const { panels, groups } = o;
  if (panels === undefined) {
    checkGroups(groups, 'groups', nSeries);
    return [{ title: null, groups }];
  }
  if (!Array.isArray(panels) || panels.length === 0) throw expected('a non-empty array of panels', 'panels', panels);
  return panels.map((p: unknown, i) => {
    if (typeof p !== 'object' || p === null) throw expected('a panel { title, groups }', `panels[${i}]`, p);
    const { title, groups: pg } = p as Partial<Panel>;
    checkText(title, `panels[${i}].title`);
    checkGroups(pg, `panels[${i}].groups`, nSeries);
    return { title, groups: pg };
  });
}

function checkOptionalFinite(v: unknown, name: string): asserts v is number | undefined {
  if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v))) throw expected('a finite number', name, v);
}

/** At most `max` characters (code points), the last one an ellipsis when cut. */
function truncate(s: string, max: number): string {
  const cps = [...s];
  return cps.length <= max ? s : `${cps.slice(0, Math.max(1, max - 1)).join('')}…`;
}

function fmtValue(v: number): string {
  return String(Number(v.toPrecision(6)));
}

/**
 * [groups of per-series values] → an SVG grouped bar chart: title, a y axis with
 * round ticks and gridlines, per group one bar per series (coloured by series,
 * as the legend on the right shows), ± whiskers where errors are given, a "–"
 * where a value is missing, and the group names under each group (turned 45°
 * when they do not fit). With `panels`, one such chart per panel side by side,
 * each under its own title, on one shared y scale. All text is escaped; bars
 * carry class="bar", whiskers class="whisker", missing marks class="missing".
 */
export function groupedBarChartSvg(o: GroupedBarChartOptions): string {
  if (typeof o !== 'object' || o === null) throw expected('an options object', 'groupedBarChartSvg options', o);
  const { title, yLabel, series, yMin, yMax, height = 440 } = o;
  checkText(title, 'title');
  checkText(yLabel, 'yLabel');
  if (!Array.isArray(series) || series.length === 0) throw expected('a non-empty array of series names', 'series', series);
  if (series.length > COLOURS.length) {
    throw expected(`at most ${COLOURS.length} series (one colour each)`, 'series', `${series.length} series`);
  }
  series.forEach((s: unknown, i) => checkText(s, `series[${i}]`));
  const panels = checkPanels(o, series.length);
  checkOptionalFinite(yMin, 'yMin');
  checkOptionalFinite(yMax, 'yMax');
  const nS = series.length;
  const totalGroups = panels.reduce((n, p) => n + p.groups.length, 0);
  const {
    width = Math.min(20_000, Math.max(720, 200 + totalGroups * (nS * 14 + 18) + PANEL_GAP * (panels.length - 1))),
  } = o;
  checkInt(width, 'width', 240, 20_000);
  checkInt(height, 'height', 180, 20_000);

  // The y scale, shared by all panels: from yMin (default 0, lower for negative data) to yMax (default a round ceiling).
  let dLo = 0;
  let dHi = 0;
  for (const p of panels) {
    for (const g of p.groups) {
      g.values.forEach((v, j) => {
        if (v === null) return;
        const e = g.errors?.[j] ?? 0;
        dLo = Math.min(dLo, v - e);
        dHi = Math.max(dHi, v + e);
      });
    }
  }
  const lo0 = yMin ?? dLo;
  const hi0 = yMax ?? Math.max(lo0, dHi);
  if (hi0 < lo0 || (yMin !== undefined && yMax !== undefined && yMax === yMin)) {
    throw expected(`a number above the bottom of the y axis (${lo0})`, 'yMax', yMax);
  }
  const rawTicks = niceTicks(lo0, hi0);
  const lo = yMin ?? rawTicks[0]!;
  const hi = yMax ?? rawTicks[rawTicks.length - 1]!;
  const eps = (hi - lo) * 1e-9;
  const yTicks = rawTicks.filter((t) => t >= lo - eps && t <= hi + eps);
  const yTickText = yTicks.map((v) => fmtTick(v, rawTicks));
  const clamp = (v: number): number => Math.min(hi, Math.max(lo, v));
  const base = clamp(0);

  // Margins, as in lineChartSvg; the legend is a swatch and a name per series.
  const longestSeries = Math.max(...series.map((s) => [...s].length));
  const legendW = Math.min(Math.round(width / 3), SWATCH + 6 + Math.ceil(longestSeries * CHAR_W) + 12);
  const right = 16 + legendW;
  const top = 16 + TITLE_FONT + 14 + (o.panels !== undefined ? FONT + 10 : 0);
  const nGaps = panels.length - 1;
  const slotFor = (left: number): number => (width - right - left - PANEL_GAP * nGaps) / totalGroups;

  let left = yAxisMargin(yTickText);
  let slot = slotFor(left);
  const names = panels.flatMap((p) => p.groups.map((g) => g.name));
  const rotate = names.some((n) => [...n].length * CHAR_W > slot - 6);
  let labels = names;
  let labelsH = FONT;
  if (rotate) {
    // Turned labels hang down to the left of their group; keep them within a third of the height.
    const maxChars = Math.max(4, Math.floor((height * 0.3 - FONT) / (CHAR_W * SIN)));
    labels = names.map((n) => truncate(n, maxChars));
    const longest = Math.max(...labels.map((n) => [...n].length));
    labelsH = Math.ceil(longest * CHAR_W * SIN + FONT);
    // The first label must not run into the y-axis label at the left edge.
    const firstW = [...labels[0]!].length * CHAR_W * Math.cos((LABEL_ANGLE * Math.PI) / 180);
    const need = 12 + FONT + 6 + firstW - slot / 2;
    if (need > left) {
      left = Math.ceil(need + 2);
      slot = slotFor(left);
    }
  }
  const bottom = 8 + labelsH + 12;
  const py0 = top;
  const py1 = height - bottom;
  const barW = (slot * (1 - GROUP_PAD)) / nS;
  if (slot < FONT + 4 || barW < 2 || py1 - py0 < 40) {
    throw expected(
      `a chart large enough for ${totalGroups} groups of ${nS} bars, their labels and the legend`,
      'width/height',
      `${width}×${height}`,
    );
  }
  const sy = (v: number): number => py1 - ((clamp(v) - lo) / (hi - lo)) * (py1 - py0);

  const out = svgOpen(width, height, title);
  let px0 = left;
  let labelIdx = 0;
  const groupLabels: string[] = ['<g class="group-labels">'];
  panels.forEach((p, pi) => {
    const px1 = px0 + slot * p.groups.length;
    out.push(p.title === null ? '<g class="panel">' : `<g class="panel" data-title="${escapeXml(p.title)}">`);
    if (p.title !== null) {
      out.push(
        `<text class="panel-title" x="${c((px0 + px1) / 2)}" y="${c(py0 - 8)}" text-anchor="middle" ` +
          `font-size="${FONT + 1}" font-weight="bold">${escapeXml(p.title)}</text>`,
      );
    }
    out.push('<g class="grid" stroke="#e6e6e6" stroke-width="1">');
    for (const v of yTicks) out.push(`<line x1="${c(px0)}" y1="${c(sy(v))}" x2="${c(px1)}" y2="${c(sy(v))}"/>`);
    out.push('</g>');
    out.push(
      `<rect class="plot-area" x="${c(px0)}" y="${c(py0)}" width="${c(px1 - px0)}" height="${c(py1 - py0)}" ` +
        `fill="none" stroke="#333333"/>`,
    );
    if (base > lo && base < hi) {
      out.push(`<line class="baseline" x1="${c(px0)}" y1="${c(sy(base))}" x2="${c(px1)}" y2="${c(sy(base))}" stroke="#333333"/>`);
    }
    if (pi === 0) out.push(...yTicksSvg(yTicks, yTickText, px0, sy));

    p.groups.forEach((g, gi) => {
      const gx = px0 + gi * slot;
      const cx = gx + slot / 2;
      out.push(`<g class="group" data-name="${escapeXml(g.name)}">`);
      g.values.forEach((v, j) => {
        const colour = COLOURS[j]!;
        const x = gx + (slot * GROUP_PAD) / 2 + j * barW;
        const bx = x + barW / 2;
        if (v === null) {
          const my = base >= hi ? sy(base) + FONT : sy(base) - 3;
          out.push(`<text class="missing" x="${c(bx)}" y="${c(my)}" text-anchor="middle" font-weight="bold" fill="${colour}">–</text>`);
          return;
        }
        const e = g.errors?.[j] ?? null;
        const y = Math.min(sy(v), sy(base));
        const h = Math.abs(sy(v) - sy(base));
        const tip = `${g.name} · ${series[j]!}: ${fmtValue(v)}${e === null ? '' : ` ± ${fmtValue(e)}`}`;
        out.push(
          `<rect class="bar" x="${c(x)}" y="${c(y)}" width="${c(barW)}" height="${c(h)}" fill="${colour}" ` +
            `data-series="${escapeXml(series[j]!)}"><title>${escapeXml(tip)}</title></rect>`,
        );
        if (e !== null) {
          const ya = sy(v - e);
          const yb = sy(v + e);
          const w = Math.min(4, barW / 3);
          out.push(
            `<path class="whisker" d="M${c(bx)},${c(ya)} L${c(bx)},${c(yb)} M${c(bx - w)},${c(ya)} L${c(bx + w)},${c(ya)} ` +
              `M${c(bx - w)},${c(yb)} L${c(bx + w)},${c(yb)}" fill="none" stroke="#333333" stroke-width="1.2"/>`,
          );
        }
      });
      out.push('</g>');
      const label = escapeXml(labels[labelIdx++]!);
      if (rotate) {
        const ly = py1 + 10;
        groupLabels.push(
          `<text x="${c(cx)}" y="${c(ly)}" text-anchor="end" transform="rotate(-${LABEL_ANGLE} ${c(cx)} ${c(ly)})">${label}</text>`,
        );
      } else {
        groupLabels.push(`<text x="${c(cx)}" y="${c(py1 + 8 + FONT)}" text-anchor="middle">${label}</text>`);
      }
    });
    out.push('</g>');
    px0 = px1 + PANEL_GAP;
  });
  groupLabels.push('</g>');
  out.push(...groupLabels);
  // Next to the tick labels, also when the left margin was widened for a turned group label.
  out.push(yLabelSvg(yLabel, py0, py1, 12 + FONT + left - yAxisMargin(yTickText)));

  out.push('<g class="legend">');
  const lx = width - right + 16;
  series.forEach((s, i) => {
    const ly = py0 + 8 + i * (FONT + 8);
    out.push(`<rect class="swatch" x="${c(lx)}" y="${c(ly - SWATCH / 2)}" width="${SWATCH}" height="${SWATCH}" fill="${COLOURS[i]!}"/>`);
    out.push(`<text x="${c(lx + SWATCH + 6)}" y="${c(ly + FONT / 3)}">${escapeXml(s)}</text>`);
  });
  out.push('</g>');
  out.push('</svg>');
  return out.join('\n') + '\n';
}
