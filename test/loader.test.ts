/**
 * The addon loader's CLOZE_CPU_ADDON: another CPU build by path (native/tools/isa-check.sh runs the op tests on
 * AVX2 and SSE2 builds through it). Each case loads in a child process, since the loader keeps the addon it found.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const loaderJs = join(here, '..', 'dist', 'src', 'native', 'loader.js');
// The CPU build itself (on a GPU machine the loaded addon may be the cuda one).
const cpuBuild = join(here, '..', 'build', 'Release', 'cloze_cpu.node');
const dir = mkdtempSync(join(tmpdir(), 'cloze-loader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Prints the loaded addon's path and variant as JSON, or exits 1 with the loader's error on stderr.
function load(env: Record<string, string | undefined>, cwd?: string): { status: number | null; stdout: string; stderr: string } {
  const script = `import { loadAddon } from ${JSON.stringify(loaderJs)};
    const l = loadAddon(); console.log(JSON.stringify({ path: l.path, variant: l.variant, simd: l.addon.info().simdBytes }));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 60_000,
    cwd,
    env: { ...process.env, CLOZE_CPU_ADDON: undefined, CLOZE_DEVICE: undefined, ...env },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('CLOZE_CPU_ADDON', () => {
  it('loads the named CPU build instead of build/Release', () => {
    expect(existsSync(loaderJs), `${loaderJs} is missing: run npx tsc -p .`).toBe(true);
    const copy = join(dir, 'other_cpu.node');
    copyFileSync(cpuBuild, copy);
    const r = load({ CLOZE_CPU_ADDON: copy });
    expect(r.stderr).toBe('');
    const got = JSON.parse(r.stdout.trim()) as { path: string; variant: string; simd: number };
    expect(got.path).toBe(copy);
    expect(got.variant).toBe('cpu');
    expect([16, 32, 64]).toContain(got.simd);
    // Unset, the default build loads.
    const d = JSON.parse(load({}).stdout.trim()) as { path: string };
    expect(d.path).not.toBe(copy);
    expect(d.path.endsWith('cloze_cpu.node') || d.path.endsWith('cloze_cuda.node')).toBe(true);
  });

  it('resolves a relative path against the working directory', () => {
    const copy = join(dir, 'relative_cpu.node');
    copyFileSync(cpuBuild, copy);
    const r = load({ CLOZE_CPU_ADDON: 'relative_cpu.node' }, dir);
    expect(r.stderr).toBe('');
    expect((JSON.parse(r.stdout.trim()) as { path: string }).path).toBe(copy);
  });

  it('refuses to be combined with CLOZE_DEVICE=cuda, naming both', () => {
    const r = load({ CLOZE_CPU_ADDON: cpuBuild, CLOZE_DEVICE: 'cuda' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`CLOZE_CPU_ADDON (${cpuBuild}) names a CPU build, but CLOZE_DEVICE=cuda asks for the cuda one`);
  });

  it('is an error naming the variable and the path when the file does not exist', () => {
    const missing = join(dir, 'nope', 'cloze_cpu.node');
    const r = load({ CLOZE_CPU_ADDON: missing });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`CLOZE_CPU_ADDON names ${missing}, which does not exist`);
  });

  it('says why when the named file is not an addon', () => {
    const junk = join(dir, 'junk.node');
    copyFileSync(loaderJs, junk);
    const r = load({ CLOZE_CPU_ADDON: junk });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('could not load the native addon');
    expect(r.stderr).toContain(junk);
  });
});
