/**
 * `cloze board`'s server: node:http on 127.0.0.1 only. Routes:
 *   /                      the page
 *   /assets/<name>         uPlot (from its npm package) and the board's own script and style
 *   /api/list              the runs and suites under the root (scan.ts)
 *   /api/metrics?id=RUN    a run's records and skipped lines, and the byte offset they end at
 *   /api/stream?id=RUN&offset=N&lines=K   server-sent events: each time metrics.jsonl grows, the records
 *                          after `offset` (only the new bytes are read), as `records` events
 *   /api/suite?id=SUITE    a suite's summary.md and its charts
 *   /files/<path>          a file under the root (refused: "..", NUL, symbolic links out of the root)
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { readFileSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import type { AddressInfo } from 'node:net';
import { METRICS_FILE } from '../train/run-dir.js';
import { readMetrics } from './metrics-reader.js';
import { boardAsset, boardPage } from './page.js';
import { resolveUnder } from './safe-path.js';
import { describeRunDir, plainFile, scanBoard } from './scan.js';

const TYPES: Record<string, string> = {
  '.svg': 'image/svg+xml', '.png': 'image/png', '.json': 'application/json; charset=utf-8', '.jsonl': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8', '.txt': 'text/plain; charset=utf-8', '.log': 'text/plain; charset=utf-8', '.html': 'text/plain; charset=utf-8',
};

export interface BoardServer {
  url: string;
  close(): Promise<void>;
}

export interface BoardOptions {
  /** 0 (default): a free port. */
  port?: number;
  /** How often a streamed metrics.jsonl is checked for growth (ms); default 500. */
  pollMs?: number;
}

function send(res: ServerResponse, code: number, body: string | Buffer, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(body);
}

const json = (res: ServerResponse, v: unknown): void => send(res, 200, JSON.stringify(v), 'application/json; charset=utf-8');

/** A run or suite directory named by id, or null when it is not one under the root. */
function dirOf(root: string, id: string | null, marker: string): string | null {
  if (id === null) return null;
  const d = resolveUnder(root, id);
  return d && plainFile(join(d, marker)) ? d : null;
}

/** The SUITE data the page shows: summary.md and the SVG charts next to it. */
export function suiteData(root: string, dir: string, id: string): { id: string; markdown: string; charts: string[] } {
  const { suites } = scanBoard(dir);
  const self = suites.find((s) => s.id === '.');
  return { id, markdown: readFileSync(join(dir, 'summary.md'), 'utf8'), charts: (self?.charts ?? []).map((c) => (id === '.' ? c : `${id}/${c}`)) };
}

export function startBoard(rootDir: string, opts: BoardOptions = {}): Promise<BoardServer> {
  const root = resolve(rootDir);
  const pollMs = opts.pollMs ?? 500;
  const streams = new Set<() => void>();
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    // DNS rebinding: a page of another site whose name resolves to 127.0.0.1 would send its own Host.
    const host = (req.headers.host ?? '').toLowerCase();
    if (!/^(127\.0\.0\.1|localhost)(:\d+)?$/.test(host)) return send(res, 403, `refused: Host ${host || '(none)'} (the board answers 127.0.0.1 and localhost only)`);
    const u = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = u.pathname;
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'GET only');
    if (path === '/') return send(res, 200, boardPage(`cloze board: ${root}`), 'text/html; charset=utf-8');
    if (path.startsWith('/assets/')) {
      const a = boardAsset(path.slice('/assets/'.length));
      return a ? send(res, 200, a.body, a.type) : send(res, 404, 'no such asset');
    }
    if (path === '/api/list') return json(res, { root, ...scanBoard(root) });
    if (path === '/api/metrics') {
      const dir = dirOf(root, u.searchParams.get('id'), METRICS_FILE);
      if (!dir) return send(res, 404, 'no such run');
      const d = describeRunDir(root, dir);
      const m = readMetrics(join(dir, METRICS_FILE), 0, 0, d.status !== 'running');
      return json(res, { id: d.id, records: m.records, skipped: m.skipped, offset: m.offset, lines: m.lines, examplesPerStep: d.examplesPerStep });
    }
    if (path === '/api/stream') {
      const dir = dirOf(root, u.searchParams.get('id'), METRICS_FILE);
      if (!dir) return send(res, 404, 'no such run');
      const file = join(dir, METRICS_FILE);
      let offset = Number(u.searchParams.get('offset') ?? 0);
      let lines = Number(u.searchParams.get('lines') ?? 0);
      if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(lines) || lines < 0) return send(res, 400, 'offset and lines: whole numbers >= 0');
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(': streaming\n\n');
      // Only the bytes after `offset` are read, when the file's size changes (stat every pollMs). A file
      // replaced (a resumed run rewrites metrics.jsonl without the lines after its checkpoint: another inode) or cut
      // back is sent whole again as a `reset`, which replaces what the page holds.
      let ino = statSync(file).ino;
      const push = (): void => {
        try {
          const st = statSync(file);
          const replaced = st.ino !== ino || st.size < offset;
          if (!replaced && st.size === offset) return;
          if (replaced) {
            ino = st.ino;
            offset = 0;
            lines = 0;
          }
          const c = readMetrics(file, offset, lines);
          offset = c.offset;
          lines = c.lines;
          if (replaced || c.records.length || c.skipped.length) res.write(`event: ${replaced ? 'reset' : 'records'}\ndata: ${JSON.stringify({ records: c.records, skipped: c.skipped, offset, lines })}\n\n`);
        } catch (e) {
          res.write(`event: problem\ndata: ${JSON.stringify({ message: (e as Error).message })}\n\n`);
        }
      };
      // A timer of this stream's own, not fs.watchFile: that shares one watcher per file name among all streams,
      // and a CI run (2026-12-05) saw a stream whose appended line never arrived in 10 s, which this cannot share.
      const timer = setInterval(push, pollMs);
      const stop = (): void => {
        clearInterval(timer);
        streams.delete(stop);
        res.end();
      };
      streams.add(stop);
      req.on('close', stop);
      push();
      return;
    }
    if (path === '/api/suite') {
      const id = u.searchParams.get('id');
      const dir = dirOf(root, id, 'summary.md');
      if (!dir) return send(res, 404, 'no such suite');
      return json(res, suiteData(root, dir, id!));
    }
    if (path.startsWith('/files/')) {
      let rel: string;
      try {
        rel = decodeURIComponent(path.slice('/files/'.length));
      } catch {
        return send(res, 400, 'bad path');
      }
      const f = resolveUnder(root, rel);
      if (!f) return send(res, 403, `refused: ${rel} is not a file under the board's directory`);
      let st;
      try {
        st = statSync(f);
      } catch {
        return send(res, 404, 'no such file');
      }
      if (!st.isFile()) return send(res, 404, 'not a file');
      return send(res, 200, readFileSync(f), TYPES[extname(f).toLowerCase()] ?? 'application/octet-stream');
    }
    return send(res, 404, 'not found');
  };
  const server: Server = createServer((req, res) => {
    try {
      handle(req, res);
    } catch (e) {
      if (!res.headersSent) send(res, 500, `cloze board: ${(e as Error).message}`);
      else res.end();
    }
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    // Loopback only: the board is for this machine's user.
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      ok({
        url: `http://127.0.0.1:${port}/`,
        close: () => new Promise<void>((done) => {
          for (const s of [...streams]) s();
          server.close(() => done());
          server.closeAllConnections();
        }),
      });
    });
  });
}
