/** Plain-text tables and the number formats every section uses. */

export type Align = 'l' | 'r';

export interface Column {
  header: string;
  align?: Align;
}

/** Prints rows under headers, columns padded to their widest cell. */
export function printTable(columns: readonly Column[], rows: ReadonlyArray<readonly string[]>): void {
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)));
  const cell = (s: string, i: number): string =>
    (columns[i]!.align ?? 'r') === 'l' ? s.padEnd(widths[i]!) : s.padStart(widths[i]!);
  console.log(columns.map((c, i) => cell(c.header, i)).join('  '));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(r.map((s, i) => cell(s, i)).join('  '));
}

export function fmt(x: number | undefined, digits = 1): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  return x.toFixed(digits);
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '-';
  return ms < 1 ? ms.toFixed(3) : ms < 100 ? ms.toFixed(2) : ms.toFixed(1);
}

/** A speed ratio, "2.31×". */
export function fmtRatio(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : `${x.toFixed(2)}×`;
}

export function fmtPct(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? '-' : `${(100 * x).toFixed(0)}%`;
}

export function fmtMiB(bytes: number | undefined): string {
  return bytes === undefined || !Number.isFinite(bytes) ? '-' : (bytes / 2 ** 20).toFixed(1);
}

export function section(title: string): void {
  console.log(`\n== ${title} ==`);
}
