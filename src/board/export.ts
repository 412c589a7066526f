/**
 * `cloze board DIR --export report.html`: the board's views as one self-contained HTML file. The runs' records,
 * the suites' summaries and their SVG charts (as data: URLs) are embedded with the page's script and uPlot, so the
 * file opens anywhere, offline, and shows what the live board showed when it was written.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { boardPage } from './page.js';
import { describeRunDir, scanBoard } from './scan.js';
import { suiteData } from './server.js';

export function exportBoard(rootDir: string, outFile: string): { runs: number; suites: number; bytes: number } {
  const root = resolve(rootDir);
  const list = scanBoard(root);
  const metrics: Record<string, unknown> = {};
  for (const r of list.runs) {
    const d = describeRunDir(root, join(root, r.id));
    metrics[r.id] = { records: d.records, skipped: d.skippedLines, examplesPerStep: d.examplesPerStep };
  }
  const suites: Record<string, unknown> = {};
  const images: Record<string, string> = {};
  for (const s of list.suites) {
    const data = suiteData(root, join(root, s.id), s.id);
    suites[s.id] = data;
    for (const c of data.charts) images[c] = `data:image/svg+xml;base64,${readFileSync(join(root, c)).toString('base64')}`;
  }
  const html = boardPage(`cloze board: ${root} (exported ${new Date().toISOString()})`, { list: { root, ...list }, metrics, suites, images });
  const tmp = `${outFile}.${process.pid}.tmp`;
  writeFileSync(tmp, html);
  renameSync(tmp, outFile);
  return { runs: list.runs.length, suites: list.suites.length, bytes: Buffer.byteLength(html) };
}
