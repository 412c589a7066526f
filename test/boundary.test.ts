/**
 * Memory safety at the public API (issue 14, section 1): every reproduction
 * and a sweep of every exported op with hostile arguments, each in a child
 * process, so that a crash fails a test here instead of killing vitest.
 * The bar is 0 crashes: the child exits normally, and each call either works
 * or throws an error with a `code` (E_SHAPE, E_INDEX, ...).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { allOps } from '../src/ops/list.js';
import { loadAddon } from '../src/native/loader.js';

const cpuAddon = loadAddon().variant === 'cpu' && process.platform === 'linux';

const here = __dirname;
const child = join(here, 'helpers', 'boundary-child.cjs');
const fixtures = join(here, 'fixtures', 'cgroup');
const addonPath = loadAddon().path;
const tmp = mkdtempSync(join(tmpdir(), 'cloze-boundary-'));

interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  out: Record<string, unknown>;
  stderr: string;
  progress: string;
}

/** Runs the child; CLOZE_CGROUP_ROOT caps its memory (1 GiB unless given) so a runaway size is refused, not granted. */
function runChild(args: string[], opts: { cgroup?: string | null; nodeFlags?: string[]; timeout?: number; env?: NodeJS.ProcessEnv; vmLimitKiB?: number } = {}): ChildResult {
  const progress = join(tmp, `progress-${Math.random().toString(36).slice(2)}.txt`);
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, BOUNDARY_PROGRESS: progress };
  if (opts.cgroup !== null) env.CLOZE_CGROUP_ROOT = opts.cgroup ?? join(fixtures, 'v2-1g');
  else delete env.CLOZE_CGROUP_ROOT;
  const argv = [...(opts.nodeFlags ?? []), child, addonPath, ...args];
  // Under `ulimit -v`, a scratch vector no guard sized (std::vector is not Storage) fails as E_OOM instead of taking the machine's memory.
  const [cmd, cmdArgs] = opts.vmLimitKiB
    ? ['/bin/sh', ['-c', `ulimit -v ${opts.vmLimitKiB} && exec "$0" "$@"`, process.execPath, ...argv]]
    : [process.execPath, argv];
  const r = spawnSync(cmd, cmdArgs, {
    encoding: 'utf8',
    env,
    timeout: opts.timeout ?? 120_000,
    maxBuffer: 64 << 20,
  });
  let last = '';
  try {
    last = readFileSync(progress, 'utf8').trim().split('\n').pop() ?? '';
  } catch {
    // never started
  }
  const line = r.stdout.trim().split('\n').pop() ?? '';
  let out: Record<string, unknown> = {};
  try {
    out = JSON.parse(line) as Record<string, unknown>;
  } catch {
    // a crash before the result
  }
  return { status: r.status, signal: r.signal, out, stderr: r.stderr, progress: last };
}

/** The child exited normally (a crash names the case it was running). */
function expectNoCrash(r: ChildResult): void {
  expect({ status: r.status, signal: r.signal, crashedIn: r.status === 0 ? '' : r.progress, stderr: r.status === 0 ? '' : r.stderr.slice(-2000) }).toEqual({
    status: 0,
    signal: null,
    crashedIn: '',
    stderr: '',
  });
}

const repro = (name: string, opts?: Parameters<typeof runChild>[1]): ChildResult => runChild(['repro', name], opts);

describe('shape products that overflow int64 are refused', () => {
  it('fromTypedArray(new Float32Array(0), [1, 2^21, 2^21, 2^22]) throws instead of wrapping to 0 elements', () => {
    const r = repro('fromTypedArray overflow');
    expectNoCrash(r);
    expect(r.out).toEqual({ kind: 'threw', code: 'E_SHAPE' });
  });

  it('toDense with B·H·W = 2^64 throws before anything is sized by it', () => {
    for (const name of ['toDense overflow', 'toDense overflow to a small product']) {
      const r = repro(name);
      expectNoCrash(r);
      expect(r.out, name).toEqual({ kind: 'threw', code: 'E_SHAPE' });
    }
  });

  it('reshape, view and empty with an overflowing shape throw', () => {
    for (const name of ['reshape overflow', 'view overflow', 'empty overflow']) {
      const r = repro(name);
      expectNoCrash(r);
      expect(r.out, name).toEqual({ kind: 'threw', code: 'E_SHAPE' });
    }
  });
});

describe('sizes are validated before anything is allocated', () => {
  it('sparseMaxPoolBackward with rows = 2^31 − 1 refuses at once, without building the inverse table', () => {
    const r = repro('sparseMaxPoolBackward rows 2^31-1', { cgroup: null });
    expectNoCrash(r);
    expect(r.out.kind).toBe('threw');
    expect(r.out.rssGrowth as number).toBeLessThan(64 << 20);
    expect(r.out.ms as number).toBeLessThan(2000);
    const r1 = repro('sparseMaxPoolBackward rows 2^31-1, C 1');
    expectNoCrash(r1);
    expect(r1.out).toMatchObject({ kind: 'threw', code: 'E_OOM' });
    expect(r1.out.rssGrowth as number).toBeLessThan(64 << 20);
  });
});

describe('the memory guard reads the cgroup limit', () => {
  it('refuses more than a cgroup v2 memory.max or v1 memory.limit_in_bytes, and ignores "max" and v1 "unlimited"', () => {
    const capped1 = repro('memory limit', { cgroup: join(fixtures, 'v1-512m') });
    expectNoCrash(capped1);
    expect(capped1.out.kind).toBe('threw');
    expect(capped1.out.code).toBe('E_OOM');
    expect(capped1.out.message).toContain('the process may use at most 536870912 bytes: the cgroup memory limit in');
    expect(capped1.out.message).toContain('memory.limit_in_bytes');
    // 1 GiB (v2) lets 600 MiB through; "max" and v1's 2^63 − 4096 mean no limit.
    for (const dir of ['v2-1g', 'v2-max', 'v1-unlimited']) {
      const r = repro('memory limit', { cgroup: join(fixtures, dir) });
      expectNoCrash(r);
      expect(r.out.kind, dir).toBe('ok');
    }
  });
});

describe('fromTypedArray cannot be made to read freed memory', () => {
  it('a buffer transferred away with structuredClone and collected: the tensor holds its own copy', () => {
    const r = repro('transferred buffer', { nodeFlags: ['--expose-gc'] });
    expectNoCrash(r);
    expect(r.out).toMatchObject({ kind: 'ok', sum: 3 * (1 << 20), detached: true });
  });

  it('a resizable ArrayBuffer shrunk to 0 after wrapping', () => {
    const r = repro('resizable buffer shrunk');
    expectNoCrash(r);
    expect(r.out).toMatchObject({ kind: 'ok', sum: 2 * 1024 });
    expect(r.out.after).toBe('threw');  // the shrunk array now has 0 elements, not 1024
  });

  it('a detached buffer is refused', () => {
    const r = repro('detached buffer');
    expectNoCrash(r);
    expect(r.out).toEqual({ kind: 'threw', code: 'E_SHAPE' });
  });

  it('the normal case copies; a SharedArrayBuffer (never detached) stays zero-copy', () => {
    const r = repro('normal case');
    expectNoCrash(r);
    expect(r.out).toEqual({ kind: 'ok', values: [1, 2, 3, 4, 5, 6], shape: [2, 3] });
    const s = repro('shared buffer');
    expectNoCrash(s);
    expect(s.out).toEqual({ kind: 'ok', values: [100, 1, 1, 1, 1, 1] });
  });
});

type Kind = 'tensor' | 'number' | 'boolean' | 'shape' | 'options' | 'other';

/** The parameters of every addon function, read from src/native/types-*.ts (the addon's declared signatures). */
function signatures(): Map<string, Array<{ name: string; kind: Kind }>> {
  const dir = join(here, '..', 'src', 'native');
  const out = new Map<string, Array<{ name: string; kind: Kind }>>();
  for (const f of readdirSync(dir).filter((n) => /^types-.*\.ts$/.test(n))) {
    const src = readFileSync(join(dir, f), 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
    for (const m of src.matchAll(/^\s*(\w+)\(([^()]*)\)\s*:/gm)) {
      const params = m[2]!.split(',').map((s) => s.trim()).filter(Boolean).map((p) => {
        const [rawName, ...rest] = p.split(':');
        const type = rest.join(':').trim();
        const name = rawName!.replace('?', '').trim();
        const kind: Kind = /^(N|Maybe|N \| null)$/.test(type) ? 'tensor'
          : type === 'number' ? 'number'
            : type === 'boolean' ? 'boolean'
              : /number\[\]/.test(type) ? 'shape'
                : /Options$/.test(type) ? 'options'
                  : 'other';
        return { name, kind };
      });
      out.set(m[1]!, params);
    }
  }
  return out;
}

describe('every exported op, called with hostile arguments', () => {
  it('zero-size, overflowing, out-of-range, disposed, wrong-dtype (and, with a GPU, wrong-device) arguments, and the tensor methods and factories: 0 crashes', () => {
    const sigs = signatures();
    const names = [...new Set(allOps().flatMap((o) => [o.forward, ...(o.backward ? [o.backward] : [])]))];
    const missing = names.filter((n) => !sigs.has(n));
    expect(missing, 'ops without a declared signature in src/native/types-*.ts').toEqual([]);
    const plan = { ops: names.map((name) => ({ name, params: sigs.get(name)! })) };
    const planFile = join(tmp, 'plan.json');
    writeFileSync(planFile, JSON.stringify(plan));
    // On the CPU addon, also zero-size tensors with 2^31 − 1 or 2^40 in their other dimensions, under an 8 GB
    // address-space limit (a CUDA context needs more address space than that, so not with the CUDA addon).
    const r = runChild(['ops', planFile], { timeout: 300_000, ...(cpuAddon ? { env: { BOUNDARY_WIDE_ZERO: '1' }, vmLimitKiB: 8_000_000 } : {}) });
    expectNoCrash(r);
    expect(r.out.ops).toBe(names.length);
    // Every call either worked or threw an error with a code; none threw anything else.
    expect(r.out.bad).toEqual([]);
    expect(r.out.threw as number).toBeGreaterThan((r.out.calls as number) / 2);
  }, 400_000);
});
