/**
 * The README's screenshots of `cloze board`: serves DIR, opens it in Debian's chromium (playwright-core, headless,
 * nothing fetched from elsewhere), and writes the run list, the charts of the first RUNS runs and the first suite
 * to OUT/board-{runs,charts,suite}.png.
 *   node dist/bench/board-screenshots.js DIR OUT [RUNS]
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startBoard } from '../src/board/server.js';

const [dir, out, many] = process.argv.slice(2);
if (!dir || !out) {
  console.error('usage: node dist/bench/board-screenshots.js DIR OUT [RUNS]');
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const board = await startBoard(dir);
const browser = await chromium.launch({ executablePath: process.env.CLOZE_CHROMIUM ?? '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  await page.route('**/*', (r) => (r.request().url().startsWith(board.url) ? r.continue() : r.abort()));
  await page.goto(board.url);
  await page.waitForSelector('body[data-ready="1"]');
  await page.locator('#runs-section').screenshot({ path: join(out, 'board-runs.png') });
  const ids = await page.$$eval('#runs tbody input[type=checkbox]', (xs) => xs.map((x) => x.getAttribute('data-id')!));
  for (const id of ids.slice(0, Number(many ?? 4))) await page.check(`input[data-id="${id}"]`);
  await page.waitForSelector('.chart canvas');
  await page.fill('#smoothing', '0.6');
  await page.dispatchEvent('#smoothing', 'input');
  await page.waitForTimeout(300);
  await page.locator('#charts-section').screenshot({ path: join(out, 'board-charts.png') });
  const suite = page.locator('details.suite').first();
  if (await suite.count()) {
    await suite.locator('summary').click();
    await suite.locator('img').first().waitFor();
    await page.waitForTimeout(300);
    await suite.screenshot({ path: join(out, 'board-suite.png') });
  }
  console.log(`wrote ${out}/board-*.png`);
} finally {
  await browser.close();
  await board.close();
}
