/** GitHub-flavoured Markdown tables and the number formats of the comparison reports. */
import { ClozeError, expected } from '../errors.js';
import type { Summary } from './curves.js';

export type Align = 'l' | 'r';

/** Shown for a missing or non-finite value, so a table never prints "NaN" or "null". */
export const MISSING = '–';

/**
 * Makes a cell safe inside a table row: a '|' would end the cell and a newline
 * the row. Other Markdown in a cell (emphasis, code) is kept on purpose.
 */
function escapeCell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n|\r/g, '<br>');
}

function cellText(v: string | number): string {
  if (typeof v === 'number') return Number.isFinite(v) ? String(v) : MISSING;
  return escapeCell(v);
}

/**
 * A Markdown table, columns padded to their widest cell so the source reads
 * as a table too. `align` gives 'l' or 'r' per column; without it a column is
 * right-aligned when every body cell is a number, left-aligned otherwise.
 */
export function markdownTable(header: string[], rows: Array<Array<string | number>>, align?: Align[]): string {
  if (!Array.isArray(header) || header.length === 0) throw expected('a non-empty array of column names', 'header', header);
  const n = header.length;
  if (!Array.isArray(rows)) throw expected('an array of rows', 'rows', rows);
  rows.forEach((r, i) => {
    if (!Array.isArray(r) || r.length !== n) {
      throw new ClozeError(
        'E_SHAPE',
        `Expected ${n} cells (one per header column) for rows[${i}] but received ${Array.isArray(r) ? `${r.length} cells` : typeof r}`,
      );
    }
    r.forEach((v, j) => {
      if (typeof v !== 'string' && typeof v !== 'number') throw expected('a string or number', `rows[${i}][${j}]`, v);
    });
  });
  if (align !== undefined) {
    if (!Array.isArray(align) || align.length !== n) {
      throw expected(`an array of ${n} alignments`, 'align', align, 'E_SHAPE');
    }
    align.forEach((a, j) => {
      if (a !== 'l' && a !== 'r') throw expected("'l' or 'r'", `align[${j}]`, a);
    });
  }
  const aligns: Align[] =
    align ?? header.map((_, j) => (rows.length > 0 && rows.every((r) => typeof r[j] === 'number') ? 'r' : 'l'));
  const head = header.map((h) => escapeCell(String(h)));
  const body = rows.map((r) => r.map(cellText));
  // A delimiter cell needs three characters at least ("---", ":--", "--:").
  const widths = head.map((h, j) => Math.max(3, h.length, ...body.map((r) => r[j]!.length)));
  const pad = (s: string, j: number): string => (aligns[j] === 'r' ? s.padStart(widths[j]!) : s.padEnd(widths[j]!));
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  const rule = widths.map((w, j) => (aligns[j] === 'r' ? `${'-'.repeat(w - 1)}:` : `:${'-'.repeat(w - 1)}`));
  return [line(head.map(pad)), line(rule), ...body.map((r) => line(r.map(pad)))].join('\n');
}

function isNum(x: number | null | undefined): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/** A fraction as a percentage, "83.4%"; `digits` is 1 or 2. */
export function fmtPercent(x: number | null | undefined, digits: 1 | 2 = 1): string {
  if (digits !== 1 && digits !== 2) throw expected('1 or 2', 'digits', digits);
  return isNum(x) ? `${(100 * x).toFixed(digits)}%` : MISSING;
}

/** A ratio with a multiplication sign, "1.07×". */
export function fmtRatio(x: number | null | undefined, digits = 2): string {
  return isNum(x) ? `${x.toFixed(digits)}×` : MISSING;
}

/** A plain number with fixed decimals; interpolated epochs are fractional. */
export function fmtNumber(x: number | null | undefined, digits = 1): string {
  return isNum(x) ? x.toFixed(digits) : MISSING;
}

/** The comparison table of `summarize`: one row per method, the reference's final accuracy in the header. */
export function summaryTable(s: Summary): string {
  const header = [
    'method',
    'final acc',
    'best acc',
    `RAUC vs ${s.reference}`,
    `epochs to ${fmtPercent(s.target)}`,
    `share of ${s.reference}'s epochs`,
  ];
  const rows = s.methods.map((m) => [
    m.method,
    fmtPercent(m.finalAccuracy),
    fmtPercent(m.bestAccuracy),
    fmtRatio(m.rauc, 3),
    m.epochsToReach === null ? 'never' : fmtNumber(m.epochsToReach),
    fmtPercent(m.epochsShare),
  ]);
  return markdownTable(header, rows, ['l', 'r', 'r', 'r', 'r', 'r']);
}

/** The mean and range of repeated measurements (seeds). */
export interface Spread {
  mean: number;
  min: number;
  max: number;
  n: number;
}

export function spread(xs: readonly number[]): Spread {
  if (xs.length === 0) throw expected('at least one value', 'xs', xs);
  return { mean: xs.reduce((s, x) => s + x, 0) / xs.length, min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/** Fractions as percent: "71.20 ± 0.40 (70.80–71.60)", mean ± half the range (min–max); one value alone. */
export function fmtSpread(s: Spread): string {
  const m = (100 * s.mean).toFixed(2);
  return s.n === 1 ? m : `${m} ± ${((100 * (s.max - s.min)) / 2).toFixed(2)} (${(100 * s.min).toFixed(2)}–${(100 * s.max).toFixed(2)})`;
}
