/**
 * `cloze board` end to end in a real browser: Debian's chromium driven by playwright-core, headless, with every
 * request that is not to the board refused, against a board serving a fixture directory (two runs, one with an
 * unreadable line and one still running, and a suite output). Checked: the run list, a chart with the right number
 * of points, a live update after a line is appended, the unreadable line reported, a path-traversal request
 * refused, and the exported file showing the same views offline. Skipped, naming why, without chromium.
 */
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { exportBoard } from '../src/board/export.js';
import { readMetrics } from '../src/board/metrics-reader.js';
import { resolveUnder } from '../src/board/safe-path.js';
import { scanBoard } from '../src/board/scan.js';
import { startBoard, type BoardServer } from '../src/board/server.js';

const CHROMIUM = process.env.CLOZE_CHROMIUM ?? '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? '' : `(skipped: no ${CHROMIUM}; apt-get install chromium, or set CLOZE_CHROMIUM)`;

const root = mkdtempSync(join(tmpdir(), 'cloze-board-'));
const line = (o: Record<string, unknown>): string => `${JSON.stringify({ time: '2026-12-04T00:00:00.000Z', ...o })}\n`;
const status = (s: Record<string, unknown>): string => JSON.stringify({ pid: process.pid, host: hostname(), started: '2026-12-04T00:00:00Z', updated: '2026-12-04T00:00:00Z', ...s });

beforeAll(() => {
  // A finished MLM run: 5 training lines, an unreadable one between them, 2 evaluations.
  const a = join(root, 'bert-a');
  mkdirSync(a, { recursive: true });
  writeFileSync(join(a, 'run-status.json'), status({ status: 'done', totalSteps: 50, step: 50, task: 'mlm', preset: 'bert-tiny', method: 'mlm', examplesPerStep: 32 }));
  let m = '';
  for (let s = 10; s <= 50; s += 10) {
    m += line({ kind: 'train', step: s, loss: 8 - s / 10, lr: 1e-3, gradNorm: 1 + s / 100, tokensPerSec: 1000 });
    if (s === 20) m += '{"kind":"train","step":25,"loss":\n';
  }
  m += line({ kind: 'eval', step: 25, loss: 6.5, accuracy: 0.1 }) + line({ kind: 'eval', step: 50, loss: 5.5, accuracy: 0.2 });
  writeFileSync(join(a, 'metrics.jsonl'), m);
  // A run still training (this process stands in for it), 3 lines so far.
  const b = join(root, 'mim-b');
  mkdirSync(b, { recursive: true });
  writeFileSync(join(b, 'run-status.json'), status({ status: 'running', totalSteps: 100, task: 'mim', preset: 'vit-micro-fmnist', method: 'mae', examplesPerStep: 64 }));
  writeFileSync(join(b, 'metrics.jsonl'), [1, 2, 3].map((s) => line({ kind: 'train', step: s, loss: 1 / s, lr: 1e-4, gradNorm: 0.5, tokensPerSec: 200 })).join(''));
  // A suite output, and a file outside the root that a symbolic link points at.
  const suite = join(root, 'suite-mim');
  mkdirSync(suite, { recursive: true });
  writeFileSync(join(suite, 'summary.md'), '# MIM suite: fixture\n\n| method | top-1 |\n| :-- | --: |\n| mae | 75.00% |\n');
  writeFileSync(join(suite, 'probe.svg'), '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20"><rect width="40" height="20" fill="#1f77b4"/></svg>');
  const outside = mkdtempSync(join(tmpdir(), 'cloze-board-outside-'));
  writeFileSync(join(outside, 'secret.txt'), 'secret');
  symlinkSync(join(outside, 'secret.txt'), join(root, 'link.txt'));
});

describe('the board without a browser', () => {
  it('reads metrics from an offset, waits for a line without its newline, and skips unreadable lines by number', () => {
    const f = join(root, 'partial.jsonl');
    writeFileSync(f, line({ kind: 'train', step: 1, loss: 1 }) + 'not json\n' + '{"kind":"train","step":2');
    const a = readMetrics(f);
    expect(a.records.map((r) => r.step)).toEqual([1]);
    expect(a.skipped).toEqual([{ line: 2, reason: expect.stringMatching(/^not JSON/) }]);
    appendFileSync(f, ',"loss":2}\n');
    const b = readMetrics(f, a.offset, a.lines);
    expect(b.records.map((r) => r.step)).toEqual([2]);
    expect(b.lines).toBe(3);
    writeFileSync(f, line({ kind: 'train', step: 1, loss: 1 }) + '{"kind":"tr');
    expect(readMetrics(f, 0, 0, true).skipped[0]!.reason).toMatch(/^truncated last line/);
  });

  it('counts offsets in bytes of the file, so an invalid UTF-8 byte cannot shift the next read, and reads past any chunk size', () => {
    const f = join(root, 'bytes.jsonl');
    writeFileSync(f, Buffer.concat([Buffer.from('{"kind":"train","step":1,"loss":1,"note":"'), Buffer.from([0xff]), Buffer.from('"}\n')]));
    const a = readMetrics(f);
    expect(a.offset).toBe(readFileSync(f).length);
    appendFileSync(f, line({ kind: 'train', step: 2, loss: 2 }));
    expect(readMetrics(f, a.offset, a.lines).records.map((r) => r.step)).toEqual([2]);
    // 40 lines read 64 bytes at a time: every line once, none cut at a chunk's edge.
    writeFileSync(f, Array.from({ length: 40 }, (_, i) => line({ kind: 'train', step: i + 1, loss: 1 })).join(''));
    const c = readMetrics(f, 0, 0, true, 64);
    expect(c.records.map((r) => r.step)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(c.skipped).toEqual([]);
  });

  it('reads no file that is a symbolic link: a linked metrics.jsonl, summary.md or chart is not listed', () => {
    const d = mkdtempSync(join(tmpdir(), 'cloze-board-links-'));
    const outside = mkdtempSync(join(tmpdir(), 'cloze-board-out-'));
    writeFileSync(join(outside, 'metrics.jsonl'), line({ kind: 'train', step: 1, loss: 1 }));
    writeFileSync(join(outside, 'summary.md'), '# secret\n');
    writeFileSync(join(outside, 'c.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
    mkdirSync(join(d, 'run'));
    symlinkSync(join(outside, 'metrics.jsonl'), join(d, 'run', 'metrics.jsonl'));
    mkdirSync(join(d, 'suite'));
    symlinkSync(join(outside, 'summary.md'), join(d, 'suite', 'summary.md'));
    mkdirSync(join(d, 'suite2'));
    writeFileSync(join(d, 'suite2', 'summary.md'), '# mine\n');
    symlinkSync(join(outside, 'c.svg'), join(d, 'suite2', 'c.svg'));
    expect(scanBoard(d)).toEqual({ runs: [], suites: [{ id: 'suite2', title: 'mine', charts: [] }] });
  });

  it('lists runs with their status, step, last loss and best evaluation, and suites with their charts', () => {
    const { runs, suites } = scanBoard(root);
    expect(runs.map((r) => [r.id, r.status, r.step, r.lastLoss, r.best?.value, r.skipped])).toEqual([
      ['bert-a', 'done', 50, 3, 0.2, 1],
      ['mim-b', 'running', 3, 1 / 3, undefined, 0],
    ]);
    expect(suites).toEqual([{ id: 'suite-mim', title: 'MIM suite: fixture', charts: ['suite-mim/probe.svg'] }]);
  });

  it('refuses paths out of the root: "..", NUL, and symbolic links that leave it', () => {
    expect(resolveUnder(root, 'suite-mim/probe.svg')).toMatch(/probe\.svg$/);
    expect(resolveUnder(root, '../etc/passwd')).toBeNull();
    expect(resolveUnder(root, 'suite-mim/../../x')).toBeNull();
    expect(resolveUnder(root, 'link.txt')).toBeNull();
    expect(resolveUnder(root, 'a\0b')).toBeNull();
  });

  it('marks a "running" run whose process is gone as failed, naming the pid', () => {
    const c = join(root, 'gone');
    mkdirSync(c, { recursive: true });
    writeFileSync(join(c, 'run-status.json'), status({ status: 'running', totalSteps: 10, pid: 2 ** 22 + 12345 }));
    writeFileSync(join(c, 'metrics.jsonl'), line({ kind: 'train', step: 1, loss: 1 }));
    const r = scanBoard(c).runs[0]!;
    expect(r.status).toBe('failed');
    expect(r.statusNote).toMatch(/process \d+ ended/);
  });
});

/** A raw GET (the browser and the URL class would normalise the "..").  */
function rawGet(url: string, path: string, hostHeader?: string): Promise<{ code: number; body: string }> {
  const u = new URL(url);
  return new Promise((ok, fail) => {
    const r = request({ host: u.hostname, port: u.port, path, method: 'GET', ...(hostHeader ? { headers: { host: hostHeader } } : {}) }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => ok({ code: res.statusCode ?? 0, body }));
    });
    r.on('error', fail);
    r.end();
  });
}

describe.skipIf(skip !== '')(`cloze board in chromium ${skip}`, () => {
  let browser: Browser;
  let board: BoardServer;
  let page: Page;
  let outside: string[] = [];
  beforeAll(async () => {
    board = await startBoard(root, { pollMs: 100 });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--no-first-run', '--disable-extensions'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    // No network: every request that is not to the board (or a data: URL) is refused, and recorded.
    await page.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith(board.url) || u.startsWith('data:')) return route.continue();
      outside.push(u);
      return route.abort();
    });
    await page.goto(board.url);
    await page.waitForSelector('body[data-ready="1"]');
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await board?.close();
  });

  it('lists the runs with task, status, step, last loss and best evaluation', async () => {
    const rows = await page.$$eval('#runs tbody tr', (trs) => trs.map((tr) => Array.from(tr.querySelectorAll('td')).slice(1).map((td) => td.textContent)));
    expect(rows.find((r) => r[0] === 'bert-a')).toEqual(['bert-a', 'mlm', 'bert-tiny', 'mlm', 'done', '50 / 50', '3.0000', 'accuracy 0.2000 (step 50)']);
    expect(rows.find((r) => r[0] === 'mim-b')!.slice(4, 6)).toEqual(['running', '3 / 100']);
    expect(await page.textContent('#notes')).toContain('bert-a: 1 unreadable metrics.jsonl line skipped');
  });

  it('plots a selected run (one point per logged step) and reports its unreadable line by number', async () => {
    await page.check('input[data-id="bert-a"]');
    const loss = page.locator('.chart[data-key="train:loss"]');
    await expect.poll(() => loss.getAttribute('data-points')).toBe('5');
    expect(await page.locator('.chart[data-key="eval:accuracy"]').getAttribute('data-points')).toBe('2');
    expect(await loss.locator('canvas').count()).toBe(1);
    expect(await page.textContent('#notes')).toContain('bert-a: metrics.jsonl line 3 unreadable, skipped (not JSON');
    // Against examples seen (32 a step), and in log scale: the same points.
    await page.selectOption('#x-axis', 'examples');
    await page.check('#log-scale');
    await expect.poll(() => page.locator('.chart[data-key="train:loss"]').getAttribute('data-points')).toBe('5');
    await page.selectOption('#x-axis', 'step');
    await page.uncheck('#log-scale');
    await page.uncheck('input[data-id="bert-a"]');
  });

  it('updates live: a line appended to a running run reaches its chart', async () => {
    await page.check('input[data-id="mim-b"]');
    const loss = page.locator('.chart[data-key="train:loss"]');
    await expect.poll(() => loss.getAttribute('data-points')).toBe('3');
    appendFileSync(join(root, 'mim-b', 'metrics.jsonl'), line({ kind: 'train', step: 4, loss: 0.25, lr: 1e-4, gradNorm: 0.5, tokensPerSec: 200 }));
    await expect.poll(() => page.locator('.chart[data-key="train:loss"]').getAttribute('data-points'), { timeout: 10_000 }).toBe('4');
    // Both runs overlaid on one chart.
    await page.check('input[data-id="bert-a"]');
    await expect.poll(() => page.locator('.chart[data-key="train:loss"]').getAttribute('data-series')).toBe('2');
  });

  it("shows a suite's summary table and its charts", async () => {
    await page.click('details.suite[data-id="suite-mim"] summary');
    await page.waitForSelector('details.suite[data-id="suite-mim"] table.md');
    expect(await page.textContent('details.suite[data-id="suite-mim"] table.md')).toContain('75.00%');
    const img = page.locator('details.suite[data-id="suite-mim"] img');
    await expect.poll(() => img.evaluate((i: HTMLImageElement) => i.naturalWidth)).toBe(40);
  });

  it('refuses path traversal and links out of the directory, and fetched nothing from elsewhere', async () => {
    for (const p of ['/files/..%2f..%2fetc%2fpasswd', '/files/suite-mim%2f..%2f..%2fetc%2fpasswd', '/files/link.txt']) {
      const r = await rawGet(board.url, p);
      expect(r.code, p).toBe(403);
      expect(r.body).not.toContain('secret');
    }
    expect((await rawGet(board.url, '/files/../../etc/passwd')).code).not.toBe(200);
    expect((await rawGet(board.url, '/files/suite-mim/probe.svg')).code).toBe(200);
    // Another Host (a rebinding page's own name for 127.0.0.1) is refused.
    expect((await rawGet(board.url, '/api/list', 'evil.example:80')).code).toBe(403);
    expect(outside).toEqual([]);
  });

  it('a metrics.jsonl replaced under a live run (a resume rewrites it) is sent again whole, not appended', async () => {
    await page.uncheck('input[data-id="bert-a"]');
    const f = join(root, 'mim-b', 'metrics.jsonl');
    await expect.poll(() => page.locator('.chart[data-key="train:loss"]').getAttribute('data-points')).toBe('4');
    // As truncateMetrics does: a new file with the lines up to the checkpoint (steps 1-2), renamed over the old one.
    writeFileSync(`${f}.tmp`, [1, 2].map((s) => line({ kind: 'train', step: s, loss: 1 / s, lr: 1e-4, gradNorm: 0.5, tokensPerSec: 200 })).join(''));
    renameSync(`${f}.tmp`, f);
    await expect.poll(() => page.locator('.chart[data-key="train:loss"]').getAttribute('data-points'), { timeout: 10_000 }).toBe('2');
    appendFileSync(f, [3, 4, 5].map((s) => line({ kind: 'train', step: s, loss: 1 / s, lr: 1e-4, gradNorm: 0.5, tokensPerSec: 200 })).join(''));
    await expect.poll(() => page.locator('.chart[data-key="train:loss"]').getAttribute('data-points'), { timeout: 10_000 }).toBe('5');
  });

  it('--export writes one file that shows the same views offline', async () => {
    const file = join(root, 'report.html');
    const r = exportBoard(root, file);
    expect(r.runs).toBeGreaterThanOrEqual(2);
    const html = readFileSync(file, 'utf8');
    expect(html).not.toMatch(/(src|href)="https?:/);
    const p = await browser.newPage();
    const requested: string[] = [];
    await p.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith('file:') || u.startsWith('data:')) return route.continue();
      requested.push(u);
      return route.abort();
    });
    await p.goto(`file://${file}`);
    await p.waitForSelector('body[data-ready="1"]');
    expect(await p.textContent('#mode')).toBe('exported snapshot');
    await p.check('input[data-id="bert-a"]');
    await expect.poll(() => p.locator('.chart[data-key="train:loss"]').getAttribute('data-points')).toBe('5');
    await p.click('details.suite[data-id="suite-mim"] summary');
    await expect.poll(() => p.locator('details.suite[data-id="suite-mim"] img').evaluate((i: HTMLImageElement) => i.naturalWidth)).toBe(40);
    expect(requested).toEqual([]);
    await p.close();
  });
});
