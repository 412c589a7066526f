/**
 * `cloze board [DIR]`: a local web page of the runs and suite outputs under DIR (default runs/), live while they
 * train (src/board/), or with --export FILE one self-contained HTML file of the same views.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Argv } from 'yargs';
import { ClozeError } from '../errors.js';
import { exportBoard } from '../board/export.js';
import { startBoard } from '../board/server.js';

export function boardOptions(y: Argv): Argv {
  return y
    .positional('dir', { type: 'string', default: 'runs', describe: 'Directory holding runs (metrics.jsonl) and suite outputs (summary.md), searched 6 levels deep' })
    .option('port', { type: 'number', default: 0, describe: 'Port on 127.0.0.1 (0: a free one)' })
    .option('export', { type: 'string', describe: 'Write one self-contained HTML file of the board to this path, and exit' });
}

export async function runBoard(args: { dir?: string; port?: number; export?: string }): Promise<void> {
  const dir = resolve(args.dir ?? 'runs');
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ClozeError('E_IO', `Expected a directory of runs for dir but received ${dir} (not found); train one first (npx cloze pretrain --preset bert-tiny writes runs/bert-tiny)`);
  const port = args.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ClozeError('E_VALUE', `Expected a port in [0, 65535] for --port but received ${port}`);
  if (args.export) {
    const r = exportBoard(dir, args.export);
    console.log(`cloze board: wrote ${args.export} (${r.runs} runs, ${r.suites} suites, ${(r.bytes / 1024).toFixed(0)} kB)`);
    return;
  }
  const board = await startBoard(dir, { port });
  console.log(`cloze board: ${board.url} (serving ${dir} on 127.0.0.1 only; Ctrl-C to stop)`);
  await new Promise<void>((done) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void board.close().then(done);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
