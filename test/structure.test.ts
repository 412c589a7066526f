/**
 * The shape of src/ (issue: one shape for every task): tasks live in
 * src/tasks/<name>/, none imports another, nothing below the tasks imports
 * them, and no folder imports from a folder above it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RUN_SECTIONS } from '../src/tasks/config.js';
import { TASKS } from '../src/tasks/registry.js';
import { SHARED_FIELDS } from '../src/train/config.js';

const SRC = resolve(__dirname, '..', 'src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports of a file (static and dynamic), as paths under src/. */
function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.[^']+)'/g)].map((m) => m[1]!);
  return specs.map((s) => relative(SRC, resolve(dirname(file), s)).split(sep).join('/'));
}

const files = sources(SRC).map((f) => ({ path: relative(SRC, f).split(sep).join('/'), imports: imports(f) }));
const taskOf = (p: string): string | null => (/^tasks\/([^/]+)\//.exec(p)?.[1] ?? null);

describe('src layout', () => {
  it('has a folder per task of the table, with its task, config, data and evaluation, and the task field offers them all', () => {
    const folders = readdirSync(join(SRC, 'tasks')).filter((f) => statSync(join(SRC, 'tasks', f)).isDirectory()).sort();
    // The pre-training tasks are the table's (cloze pretrain --task); fine-tuning is a command of its own (cloze finetune).
    expect(folders).toEqual([...Object.keys(TASKS), 'finetune'].sort());
    expect([...SHARED_FIELDS.task.choices].sort()).toEqual(Object.keys(TASKS).sort());
    expect(RUN_SECTIONS.flatMap((s) => s.tasks).filter((t) => !folders.includes(t))).toEqual([]);
    for (const t of folders) {
      for (const f of ['task.ts', 'config.ts', 'data.ts']) expect(files.map((x) => x.path)).toContain(`tasks/${t}/${f}`);
      expect(files.some((x) => x.path.startsWith(`tasks/${t}/evaluate`))).toBe(true);
    }
  });

  it('no task imports another task', () => {
    const bad = files.flatMap((f) => f.imports.filter((i) => taskOf(f.path) && taskOf(i) && taskOf(i) !== taskOf(f.path)).map((i) => `${f.path} -> ${i}`));
    expect(bad).toEqual([]);
  });

  it('nothing below the tasks imports them or the commands', () => {
    const below = /^(train|eval|models|data|masking|ops|nn|optim|autograd|checkpoint|report|native|board)\//;
    const bad = files.filter((f) => below.test(f.path)).flatMap((f) => f.imports.filter((i) => /^(tasks|commands)\//.test(i) || i === 'cli.js' || i === 'index.js').map((i) => `${f.path} -> ${i}`));
    expect(bad).toEqual([]);
  });

  it('no folder imports from a folder above it (src/ itself holds the shared basics)', () => {
    const bad = files.flatMap((f) => {
      const parts = f.path.split('/').slice(0, -1);
      // Ancestor folders below src/: tasks for tasks/mlm, data for data/images.
      const ancestors = parts.slice(0, -1).map((_, k) => parts.slice(0, k + 1).join('/'));
      return f.imports.filter((i) => ancestors.includes(i.split('/').slice(0, -1).join('/'))).map((i) => `${f.path} -> ${i}`);
    });
    expect(bad).toEqual([]);
  });
});
