/**
 * vitest's globalSetup: every test run gets its own temporary directory (TMPDIR, which os.tmpdir() and the
 * child processes the tests start read), removed when the run ends. The tests make their run directories,
 * corpora and checkpoints with mkdtempSync(tmpdir()) and leave them; before this, repeated local runs filled
 * the disk (77 GB of them under /tmp, and then ENOSPC failures). CLOZE_KEEP_TEST_TMP=1 keeps the directory for
 * a look afterwards; its path is printed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'cloze-test-run-'));
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    if (process.env.CLOZE_KEEP_TEST_TMP === '1') console.log(`test files kept in ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  };
}
