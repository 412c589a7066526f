/**
 * The code to src/ops/list.ts, the closed list of ops. For every op of every
 * family, each layer has the family's file and the op's piece in it:
 *
 *   native/src/ops/<family>.{h,cc}        defines each `cpu` kernel
 *   native/src/cuda/<family>[_*].cu       defines each `cuda` kernel
 *   native/src/binding/bind_<family>.cc   exports the forward and the backward
 *   src/ops/<family>.ts                   exports the `ts` wrapper
 *   test/ops/<family>[_*].test.ts         names the wrapper
 *   bench/ops/<family>.ts                 names the forward (a bench:ops case)
 *
 * and the addon exports no function the table does not name (ops or
 * INFRASTRUCTURE). Each check lists every gap it finds, naming the op, its
 * family and the missing file or symbol.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native/loader.js';
import { allOps, INFRASTRUCTURE, OP_FAMILIES, type OpFamily, type OpSpec } from '../../src/ops/list.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A file of the repository, or null when it does not exist. */
function read(path: string): string | null {
  const full = join(ROOT, path);
  return existsSync(full) ? readFileSync(full, 'utf8') : null;
}

/**
 * Whether C++ or CUDA source defines the function `name`: the name, optional
 * template arguments (an explicit specialisation), a parameter list, then a
 * body. Declarations, explicit instantiations and calls end in `;` instead.
 */
function defines(source: string, name: string): boolean {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const m of code.matchAll(new RegExp(`\\b${name}\\s*(<[^;{}()]*>)?\\s*\\(`, 'g'))) {
    let depth = 1;
    let i = m.index + m[0].length;
    for (; i < code.length && depth > 0; i++) depth += code[i] === '(' ? 1 : code[i] === ')' ? -1 : 0;
    if (/^\s*(const\s*)?(noexcept\s*)?\{/.test(code.slice(i, i + 80))) return true;
  }
  return false;
}

const families = Object.entries(OP_FAMILIES) as Array<[OpFamily, readonly OpSpec[]]>;
const who = (family: OpFamily, op: OpSpec): string => `op ${op.forward} (family ${family})`;
const exportsOf = (op: OpSpec): string[] => (op.backward ? [op.forward, op.backward] : [op.forward]);

describe.each(families)('op family %s', (family, ops) => {
  it(`defines every CPU kernel in native/src/ops/${family}.{h,cc}`, () => {
    const files = [`native/src/ops/${family}.h`, `native/src/ops/${family}.cc`];
    const gaps = files.filter((f) => read(f) === null).map((f) => `${family}: ${f} is missing`);
    const source = files.map((f) => read(f) ?? '').join('\n');
    for (const op of ops)
      for (const k of op.cpu) if (!defines(source, k)) gaps.push(`${who(family, op)}: CPU kernel ${k} is not defined in ${files.join(' or ')}`);
    expect(gaps).toEqual([]);
  });

  it(`defines every CUDA kernel in native/src/cuda/${family}.cu or ${family}_*.cu`, () => {
    const dir = join(ROOT, 'native/src/cuda');
    const files = (existsSync(dir) ? readdirSync(dir) : [])
      .filter((f) => f === `${family}.cu` || (f.startsWith(`${family}_`) && f.endsWith('.cu')))
      .map((f) => `native/src/cuda/${f}`);
    const gaps = files.length ? [] : [`${family}: native/src/cuda/${family}.cu (or ${family}_<part>.cu) is missing`];
    const source = files.map((f) => read(f)!).join('\n');
    for (const op of ops)
      for (const k of op.cuda) if (!defines(source, k)) gaps.push(`${who(family, op)}: CUDA kernel ${k} is not defined in native/src/cuda/${family}[_*].cu`);
    expect(gaps).toEqual([]);
  });

  it(`exports every forward and backward from native/src/binding/bind_${family}.cc`, () => {
    const file = `native/src/binding/bind_${family}.cc`;
    const source = read(file);
    const gaps = source === null ? [`${family}: ${file} is missing`] : [];
    for (const op of ops)
      for (const name of exportsOf(op))
        if (source !== null && !new RegExp(`CLOZE_EXPORT\\(\\s*exports\\s*,\\s*"${name}"`).test(source))
          gaps.push(`${who(family, op)}: ${file} has no CLOZE_EXPORT(exports, "${name}", …)`);
    expect(gaps).toEqual([]);
  });

  it(`exports every TypeScript wrapper from src/ops/${family}.ts`, async () => {
    const file = `src/ops/${family}.ts`;
    if (read(file) === null) return expect([`${family}: ${file} is missing`]).toEqual([]);
    const mod = (await import(join(ROOT, file))) as Record<string, unknown>;
    const gaps = ops.filter((op) => typeof mod[op.ts] !== 'function').map((op) => `${who(family, op)}: ${file} does not export the function ${op.ts}`);
    expect(gaps).toEqual([]);
  });

  it(`tests every wrapper in test/ops/${family}.test.ts or ${family}_*.test.ts`, () => {
    const file = `test/ops/${family}.test.ts`;
    const main = read(file);
    // A family's tests may be split by op into <family>_*.test.ts files beside the main one.
    const extra = readdirSync(join(ROOT, 'test/ops')).filter((f) => f.startsWith(`${family}_`) && f.endsWith('.test.ts'));
    const source = main === null ? null : [main, ...extra.map((f) => read(`test/ops/${f}`) ?? '')].join('\n');
    const gaps = source === null ? [`${family}: ${file} is missing`] : [];
    for (const op of ops)
      if (source !== null && !new RegExp(`\\b${op.ts}\\b`).test(source)) gaps.push(`${who(family, op)}: test/ops/${family}[_*].test.ts never names ${op.ts}`);
    expect(gaps).toEqual([]);
  });

  it(`benchmarks every forward in bench/ops/${family}.ts`, () => {
    const file = `bench/ops/${family}.ts`;
    const source = read(file);
    const gaps = source === null ? [`${family}: ${file} is missing`] : [];
    for (const op of ops)
      if (source !== null && !new RegExp(`(['"\`])${op.forward}\\1`).test(source))
        gaps.push(`${who(family, op)}: ${file} has no case for '${op.forward}'`);
    expect(gaps).toEqual([]);
  });
});

describe('the addon', () => {
  it('exports exactly the forwards and backwards of src/ops/list.ts and its INFRASTRUCTURE', () => {
    const addon = native() as unknown as Record<string, unknown>;
    const exported = Object.keys(addon).filter((k) => typeof addon[k] === 'function');
    const familyOf = new Map<string, OpFamily>();
    for (const op of allOps()) for (const name of exportsOf(op)) if (!familyOf.has(name)) familyOf.set(name, op.family);
    const infra = new Set<string>(INFRASTRUCTURE);
    const gaps = [
      ...[...familyOf].filter(([name]) => !exported.includes(name))
        .map(([name, family]) => `op ${name} (family ${family}): in src/ops/list.ts but not exported by the addon`),
      ...[...infra].filter((name) => !exported.includes(name)).map((name) => `${name}: in INFRASTRUCTURE but not exported by the addon`),
      ...exported.filter((name) => !familyOf.has(name) && !infra.has(name))
        .map((name) => `${name}: exported by the addon but neither an op of src/ops/list.ts nor in INFRASTRUCTURE`),
    ];
    expect(gaps).toEqual([]);
  });
});
