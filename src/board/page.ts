/**
 * The board's page: one HTML shell for the live server (assets and data fetched from it) and for --export (the
 * same scripts and styles inlined, and the data embedded), so that both show the same views. Nothing is loaded
 * from anywhere else: uPlot comes from its npm package, served or inlined by the board.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
/** assets/board/ at the package root (dist/src/board → ../../..; src/board under vitest → ../..). */
function assetDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const up of [join(here, '..', '..', '..'), join(here, '..', '..')]) {
    try {
      readFileSync(join(up, 'assets', 'board', 'board.js'));
      return join(up, 'assets', 'board');
    } catch {
      // not this layout
    }
  }
  throw new Error(`cloze board: assets/board/board.js not found above ${here}`);
}

/** The files the page needs, by the name it asks for them under /assets/. */
export function boardAsset(name: string): { body: Buffer; type: string } | null {
  const uplotDir = dirname(require.resolve('uplot/package.json'));
  const files: Record<string, [string, string]> = {
    'uplot.js': [join(uplotDir, 'dist', 'uPlot.iife.min.js'), 'text/javascript; charset=utf-8'],
    'uplot.css': [join(uplotDir, 'dist', 'uPlot.min.css'), 'text/css; charset=utf-8'],
    'board.js': [join(assetDir(), 'board.js'), 'text/javascript; charset=utf-8'],
    'board.css': [join(assetDir(), 'board.css'), 'text/css; charset=utf-8'],
  };
  const f = files[name];
  return f ? { body: readFileSync(f[0]), type: f[1] } : null;
}

const escapeHtml = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** The page. `embedded`: the export's data, and the assets inlined; absent: the live page. */
export function boardPage(title: string, embedded?: unknown): string {
  const head = embedded === undefined
    ? '<link rel="stylesheet" href="/assets/uplot.css"><link rel="stylesheet" href="/assets/board.css">'
    : `<style>${boardAsset('uplot.css')!.body.toString('utf8')}</style><style>${boardAsset('board.css')!.body.toString('utf8')}</style>`;
  // JSON inside a script element: "<" escaped, so no "</script>" or "<!--" in the data can end it.
  const data = embedded === undefined ? '' : `<script>window.BOARD_DATA = ${JSON.stringify(embedded).replace(/</g, '\\u003c')};</script>`;
  const scripts = embedded === undefined
    ? '<script src="/assets/uplot.js"></script><script src="/assets/board.js"></script>'
    : `<script>${inlineScript(boardAsset('uplot.js')!.body.toString('utf8'))}</script><script>${inlineScript(boardAsset('board.js')!.body.toString('utf8'))}</script>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'self' 'unsafe-inline' data:; connect-src 'self'">
<title>${escapeHtml(title)}</title>${head}</head>
<body>
<header><h1>${escapeHtml(title)}</h1><span id="mode"></span></header>
<main>
<section id="runs-section"><h2>Runs</h2><div id="notes" role="status"></div><table id="runs"><thead><tr><th></th><th>run</th><th>task</th><th>preset</th><th>method</th><th>status</th><th>step</th><th>last loss</th><th>best eval</th></tr></thead><tbody></tbody></table></section>
<section id="charts-section"><h2>Charts</h2>
<div id="controls"><label>x axis <select id="x-axis"><option value="step">step</option><option value="examples">examples seen</option></select></label>
<label><input type="checkbox" id="log-scale"> log scale</label>
<label>smoothing <input type="range" id="smoothing" min="0" max="0.99" step="0.01" value="0"> <output id="smoothing-value">0</output></label></div>
<div id="charts"><p class="empty">Select runs above to plot them.</p></div></section>
<section id="suites-section"><h2>Suites</h2><div id="suites"></div></section>
</main>
${data}${scripts}
</body></html>
`;
}

/** A script's text made safe inside a script element. */
function inlineScript(js: string): string {
  return js.replace(/<\/script/gi, '<\\/script').replace(/<!--/g, '<\\!--');
}
