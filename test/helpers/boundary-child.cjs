// Child process of test/boundary.test.ts: calls native ops with hostile
// arguments. Run in its own process so that a crash (SIGSEGV, abort, the OOM
// killer) fails the test that spawned it instead of killing vitest.
//
//   node boundary-child.cjs <addon.node> ops <plan.json>   every op of the plan, every case
//   node boundary-child.cjs <addon.node> repro <name>      one reproduction from issue 14
//
// Prints one JSON line on stdout. Writes the case it is about to run to the
// file in BOUNDARY_PROGRESS (when set), so a crash names its case.
'use strict';
const fs = require('node:fs');

const addon = require(process.argv[2]);
const mode = process.argv[3];
const progressFile = process.env.BOUNDARY_PROGRESS;
const progressFd = progressFile ? fs.openSync(progressFile, 'w') : -1;
const note = (s) => {
  if (progressFd >= 0) fs.writeSync(progressFd, s + '\n');
};

const t = (dtype, shape, fill) => {
  const x = addon.empty(dtype, shape);
  if (fill !== undefined && fill !== 0) x.fill(fill);
  return x;
};
const disposed = () => {
  const x = t('float32', [2, 3]);
  x.dispose();
  return x;
};
const isClozeError = (e) => e instanceof Error && typeof e.code === 'string' && /^E_[A-Z]+$/.test(e.code);

/** Runs f; 'ok', 'threw' (a ClozeError-like error) or the description of anything else thrown. */
function attempt(label, f) {
  note(label);
  try {
    f();
    return { kind: 'ok' };
  } catch (e) {
    if (isClozeError(e)) return { kind: 'threw', code: e.code };
    return { kind: 'bad', label, error: String(e && e.stack ? e.stack.split('\n')[0] : e) };
  }
}

// Parameter names that hold int32 indices (ids, targets, tables, sites...).
const INDEXISH = /^(ids|targets|index|indices|words|classOf|coords|outCoords|nbr|grid|arg|idsRestore|idsKeep|rows|starts|lengths|cuSeqlens)$/;
const MASKISH = /^(mask|flip)$/;

function baseTensor(name) {
  if (INDEXISH.test(name)) return t('int32', [2, 3]);
  if (MASKISH.test(name)) return t('uint8', [2, 3]);
  return t('float32', [2, 3], 0.5);
}
function baseValue(p) {
  switch (p.kind) {
    case 'tensor': return baseTensor(p.name);
    case 'number': return 1;
    case 'boolean': return false;
    case 'shape': return [2, 3];
    case 'options': return {};
    default: return undefined;
  }
}

const ZERO_SHAPES = [[0], [0, 3], [2, 0], [0, 3, 4], [2, 0, 4], [0, 0, 0, 0], [2, 3, 0, 0], [1, 0, 4, 4], [0, 65536], [65536, 0], [0, 4096, 4096], ...(process.env.BOUNDARY_WIDE_ZERO ? [[0, 2 ** 31 - 1], [0, 2 ** 20, 2 ** 20]] : [])];
const BAD_NUMBERS = [-1, 0, 2 ** 31 - 1, 2 ** 31, 2 ** 21, 2 ** 40, 2 ** 53, -(2 ** 31), NaN, Infinity, 1.5];
const BAD_SHAPES = [[2 ** 21, 2 ** 21, 2 ** 22], [1, 2 ** 21, 2 ** 21, 2 ** 22], [-1], [1e300], [2 ** 31 - 1, 2 ** 31 - 1]];
const INDEX_SHAPES = [[2], [2, 3], [3, 3], [2, 3, 4], [1, 2, 4, 4]];
const INDEX_VALUES = [-7, -1, 2 ** 31 - 1, 65536];

function cudaTensor() {
  try {
    return addon.empty('float32', [2, 3], 'cuda');
  } catch {
    return null;  // the CPU addon, or no GPU: no cross-device cases
  }
}

function runOps(plan) {
  const out = { calls: 0, ok: 0, threw: 0, bad: [], ops: 0 };
  const cuda = cudaTensor();
  for (const op of plan.ops) {
    const fn = addon[op.name];
    if (typeof fn !== 'function') {
      out.bad.push({ label: op.name, error: 'not exported by the addon' });
      continue;
    }
    out.ops++;
    const ps = op.params;
    const cases = [];
    const args = (over) => ps.map((p, i) => (i in over ? over[i] : baseValue(p)));
    cases.push(['no arguments', () => []]);
    cases.push(['base', () => args({})]);
    cases.push(['realistic 4-D', () => ps.map((p) => (p.kind === 'tensor' ? (INDEXISH.test(p.name) ? t('int32', [1, 2, 4, 4]) : t('float32', [1, 2, 4, 4], 0.25)) : baseValue(p)))]);
    for (const s of ZERO_SHAPES) {
      cases.push([`all tensors zero-size ${JSON.stringify(s)}`, () => ps.map((p) => (p.kind === 'tensor' ? t(INDEXISH.test(p.name) ? 'int32' : MASKISH.test(p.name) ? 'uint8' : 'float32', s) : baseValue(p)))]);
    }
    ps.forEach((p, i) => {
      const at = `${p.name} (#${i})`;
      if (p.kind === 'tensor') {
        for (const s of ZERO_SHAPES) cases.push([`${at} zero-size ${JSON.stringify(s)}`, () => args({ [i]: t('float32', s) })]);
        cases.push([`${at} disposed`, () => args({ [i]: disposed() })]);
        for (const dt of ['float64', 'int32', 'uint8', 'float32', 'bfloat16']) cases.push([`${at} dtype ${dt}`, () => args({ [i]: t(dt, [2, 3]) })]);
        for (const s of INDEX_SHAPES)
          for (const v of INDEX_VALUES) cases.push([`${at} int32 ${JSON.stringify(s)} filled ${v}`, () => args({ [i]: t('int32', s, v) })]);
        cases.push([`${at} uint8 filled 255`, () => args({ [i]: t('uint8', [2, 3], 255) })]);
        cases.push([`${at} not a tensor`, () => args({ [i]: { shape: [2, 3] } })]);
        if (cuda) cases.push([`${at} on cuda, the rest on the cpu`, () => args({ [i]: cuda })]);
      } else if (p.kind === 'number') {
        for (const v of BAD_NUMBERS) cases.push([`${at} = ${v}`, () => args({ [i]: v })]);
        cases.push([`${at} = '1'`, () => args({ [i]: '1' })]);
      } else if (p.kind === 'shape') {
        for (const s of BAD_SHAPES) cases.push([`${at} = ${JSON.stringify(s)}`, () => args({ [i]: s })]);
      } else if (p.kind === 'options') {
        cases.push([`${at} = 7`, () => args({ [i]: 7 })]);
        cases.push([`${at} with a disposed tensor in every option`, () => args({ [i]: new Proxy({}, { get: () => disposed() }) })]);
      } else if (p.kind === 'boolean') {
        cases.push([`${at} = 1`, () => args({ [i]: 1 })]);
      }
    });
    // Every number at its largest, with the realistic tensors: sizes taken from numbers.
    cases.push(['all numbers 2^31 − 1', () => ps.map((p) => (p.kind === 'number' ? 2 ** 31 - 1 : p.kind === 'tensor' ? baseTensor(p.name) : baseValue(p)))]);
    cases.push(['all numbers 2^21', () => ps.map((p) => (p.kind === 'number' ? 2 ** 21 : p.kind === 'tensor' ? baseTensor(p.name) : baseValue(p)))]);
    for (const [label, make] of cases) {
      out.calls++;
      let built;
      try {
        built = make();
      } catch (e) {
        out.bad.push({ label: `${op.name}: building ${label}`, error: String(e) });
        continue;
      }
      const r = attempt(`${op.name}: ${label}`, () => fn(...built));
      if (r.kind === 'ok') out.ok++;
      else if (r.kind === 'threw') out.threw++;
      else out.bad.push({ label: r.label, error: r.error });
    }
  }
  return out;
}

// The tensor methods and factories (not ops, but the same boundary).
function runMethods(out) {
  const detachedF32 = () => {
    const a = new Float32Array(6);
    structuredClone(a.buffer, { transfer: [a.buffer] });
    return a;
  };
  const receivers = [
    ['float32 [2, 3]', () => t('float32', [2, 3], 1)],
    ['disposed', disposed],
    ['zero-size [0, 3]', () => t('float32', [0, 3])],
    ['bfloat16 [2, 3]', () => t('bfloat16', [2, 3])],
    ['int32 [2, 3]', () => t('int32', [2, 3], 7)],
  ];
  const calls = [
    ['view', () => [0, [2 ** 21, 2 ** 21, 2 ** 22]]], ['view', () => [-1, [1]]], ['view', () => [5, [2]]], ['view', () => [0, [7]]],
    ['view', () => [NaN, [1]]], ['view', () => [2 ** 53, [1]]], ['view', () => [6, [0, 2 ** 31 - 1]]],
    ['reshape', () => [[2 ** 21, 2 ** 21, 2 ** 22]]], ['reshape', () => [[-1]]], ['reshape', () => [[6, 0]]], ['reshape', () => ['x']],
    ['reshape', () => [[0, 2 ** 31 - 1, 2 ** 31 - 1]]],
    ['write', () => [new Float32Array(5)]], ['write', () => [new Float32Array(new SharedArrayBuffer(24))]], ['write', () => [new Int32Array(6)]],
    ['write', () => [detachedF32()]], ['write', () => [new DataView(new ArrayBuffer(24))]], ['write', () => [new BigInt64Array(6)]],
    ['read', () => []], ['data', () => []], ['to', () => ['cuda']], ['to', () => ['gpu']], ['to', () => [{}]],
    ['cast', () => ['float16']], ['cast', () => ['bfloat16']], ['cast', () => ['uint8']], ['fill', () => [NaN]], ['fill', () => ['1']],
    ['copyFrom', () => [disposed()]], ['copyFrom', () => [t('float32', [3])]], ['copyFrom', () => [t('float32', [2, 3])]],
    ['clone', () => []], ['sharesStorage', () => [disposed()]], ['sharesStorage', () => [{}]], ['dispose', () => []],
  ];
  const record = (r) => {
    out.calls++;
    if (r.kind === 'ok') out.ok++;
    else if (r.kind === 'threw') out.threw++;
    else out.bad.push({ label: r.label, error: r.error });
  };
  for (const [rname, make] of receivers)
    for (const [m, args] of calls) record(attempt(`tensor.${m} on ${rname}`, () => make()[m](...args())));
  const factories = [
    ['empty', () => ['float32', [1, 2 ** 21, 2 ** 21, 2 ** 22]]], ['empty', () => ['float32', [0, 2 ** 31 - 1, 2 ** 31 - 1]]],
    ['empty', () => ['int64', [2]]], ['empty', () => ['float32', [2], 'tpu']], ['empty', () => ['float32', 'x']],
    ['fromTypedArray', () => [new BigInt64Array(2), [2]]], ['fromTypedArray', () => [new DataView(new ArrayBuffer(8)), [2]]],
    ['fromTypedArray', () => [detachedF32(), [6]]], ['fromTypedArray', () => [detachedF32(), [0]]],
    ['fromTypedArray', () => [new Float32Array(0), [0, 2 ** 31 - 1, 2 ** 31 - 1]]], ['fromTypedArray', () => [new Float32Array(4), [2, 2, 1, 1, 1, 1, 1, 1, 1]]],
    ['fromTypedArray', () => [new Float32Array(new SharedArrayBuffer(16)), [4]]], ['fromTypedArray', () => [new Uint8ClampedArray(4), [4]]],
    ['setCacheLimit', () => [-1]], ['setNumThreads', () => [0]], ['setNumThreads', () => [2 ** 31]],
  ];
  factories.forEach(([f, args], i) => record(attempt(`${f}, case ${i}`, () => addon[f](...args()))));
  addon.setNumThreads(2);
}

// The reproductions of issue 14, section 1. Each returns what happened.
const REPROS = {
  'fromTypedArray overflow': () => attempt('fromTypedArray', () => {
    const x = addon.fromTypedArray(new Float32Array(0), [1, 2 ** 21, 2 ** 21, 2 ** 22]);
    addon.globalAvgPool(x);
  }),
  'toDense overflow': () => {
    const x = t('float32', [0, 4]);
    const coords = t('int32', [0, 3]);
    return attempt('toDense', () => addon.toDense(x, coords, 2 ** 21, 2 ** 21, 2 ** 22, null));
  },
  'toDense overflow to a small product': () => {
    // 2^21 · 2^21 · 2^22 = 2^64 wraps to 0; 2^31 − 1 squared times 4 wraps too
    const x = t('float32', [1, 4]);
    const coords = t('int32', [1, 3]);
    return attempt('toDense', () => addon.toDense(x, coords, 2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, null));
  },
  'reshape overflow': () => attempt('reshape', () => t('float32', [0]).reshape([2 ** 21, 2 ** 21, 2 ** 22, 0 + 1])),
  'view overflow': () => attempt('view', () => t('float32', [4]).view(0, [2 ** 21, 2 ** 21, 2 ** 22])),
  'empty overflow': () => attempt('empty', () => addon.empty('float32', [1, 2 ** 21, 2 ** 21, 2 ** 22])),
  'sparseMaxPoolBackward rows 2^31-1': () => {
    const C = 1024;
    const g = t('float32', [1, C]);
    const nbr = t('int32', [1, 9], -1);
    const arg = t('int32', [1, C], -1);
    const rss0 = process.memoryUsage().rss;
    const t0 = Date.now();
    const r = attempt('sparseMaxPoolBackward', () => addon.sparseMaxPoolBackward(g, nbr, arg, 2 ** 31 - 1));
    return { ...r, rssGrowth: process.memoryUsage().rss - rss0, ms: Date.now() - t0 };
  },
  'sparseMaxPoolBackward rows 2^31-1, C 1': () => {
    // dx [2^31 − 1, 1] (8 GiB) and the inverse table (8 GiB): refused as a whole, against the memory limit.
    const g = t('float32', [1, 1]);
    const nbr = t('int32', [1, 1], -1);
    const arg = t('int32', [1, 1], -1);
    const rss0 = process.memoryUsage().rss;
    const r = attempt('sparseMaxPoolBackward', () => addon.sparseMaxPoolBackward(g, nbr, arg, 2 ** 31 - 1));
    return { ...r, rssGrowth: process.memoryUsage().rss - rss0 };
  },
  'memory limit': () => {
    // 600 MiB: above the 512 MiB fixture, below the 1 GiB one and any real machine's memory.
    try {
      const x = addon.empty('uint8', [600 * 2 ** 20]);
      x.dispose();
      return { kind: 'ok' };
    } catch (e) {
      return { kind: isClozeError(e) ? 'threw' : 'bad', code: e.code, message: String(e.message) };
    }
  },
  'transferred buffer': () => {
    // The tensor must not read the memory of a buffer transferred away and collected.
    const a = new Float32Array(1 << 20).fill(3);
    const x = addon.fromTypedArray(a, [1 << 20]);
    let moved = structuredClone(a.buffer, { transfer: [a.buffer] });
    moved = null;
    for (let i = 0; i < 5; i++) global.gc();
    // Fresh allocations that would reuse the freed block.
    const junk = [];
    for (let i = 0; i < 8; i++) junk.push(new Float32Array(1 << 20).fill(-1));
    const s = addon.sum(x).read()[0];
    return { kind: 'ok', sum: s, detached: a.buffer.byteLength === 0, junk: junk.length };
  },
  'resizable buffer shrunk': () => {
    const buf = new ArrayBuffer(4 * 1024, { maxByteLength: 4 * 1024 * 1024 });
    const a = new Float32Array(buf, 0, 1024).fill(2);
    const x = addon.fromTypedArray(a, [1024]);
    buf.resize(0);
    const s = addon.sum(x).read()[0];
    // And a length-tracking view of a shrunk buffer is refused or empty, never read past its end.
    const tracking = new Float32Array(buf);
    const r = attempt('fromTypedArray of a shrunk buffer', () => addon.fromTypedArray(tracking, [1024]));
    return { kind: 'ok', sum: s, after: r.kind };
  },
  'detached buffer': () => {
    const a = new Float32Array(16);
    structuredClone(a.buffer, { transfer: [a.buffer] });
    return attempt('fromTypedArray of a detached buffer', () => addon.fromTypedArray(a, [16]));
  },
  'shared buffer': () => {
    // A SharedArrayBuffer cannot be detached or shrunk: wrapped without copying, kept alive by the tensor.
    const a = new Float32Array(new SharedArrayBuffer(24)).fill(1);
    const x = addon.fromTypedArray(a, [2, 3]);
    a[0] = 100;
    return { kind: 'ok', values: Array.from(x.read()) };
  },
  'normal case': () => {
    const a = new Float32Array([1, 2, 3, 4, 5, 6]);
    const x = addon.fromTypedArray(a, [2, 3]);
    a[0] = 100;  // a copy: later writes to the array do not reach the tensor
    return { kind: 'ok', values: Array.from(x.read()), shape: x.shape };
  },
};

if (mode === 'ops') {
  const plan = JSON.parse(fs.readFileSync(process.argv[4], 'utf8'));
  const out = runOps(plan);
  runMethods(out);
  process.stdout.write(JSON.stringify(out) + '\n');
} else if (mode === 'repro') {
  const f = REPROS[process.argv[4]];
  if (!f) throw new Error(`no reproduction named ${process.argv[4]}`);
  process.stdout.write(JSON.stringify(f()) + '\n');
} else {
  throw new Error(`unknown mode ${mode}`);
}
