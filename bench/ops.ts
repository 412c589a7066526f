/**
 * `npm run bench:ops -- [op or family …]`: every op of src/ops/list.ts, forward
 * and backward, timed on its own at the shapes of the models this project
 * trains, in the spirit of ggml's test-backend-ops. Each case (bench/ops/
 * <family>.ts) builds its inputs once; each call goes straight to the native
 * addon (no autograd tape) and its outputs are disposed after every call, so
 * the time is the kernel's plus one N-API call and the output allocation a
 * training step pays too. Reported per call: the median µs over samples
 * (after warm-up; short calls batched to a minimum sample length), GFLOP/s
 * for compute-bound ops or GB/s for memory-bound ones, and that rate's share
 * of the machine's measured peak: the FMA peak (measurePeakGflops) or the
 * streaming bandwidth of buffers far larger than the caches
 * (measurePeakBandwidth, STREAM's scale kernel); a case whose data fits in the
 * caches can pass 100% of the latter.
 *
 * Runs on the CPU, and on cuda too where the loaded addon is the CUDA one and
 * a GPU answers (or as --device says). Options: `--help`.
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { native } from '../src/native/loader.js';
import { allOps, OP_FAMILIES, type OpFamily } from '../src/ops/list.js';
import { runtimeInfo, setNumThreads } from '../src/index.js';
import { positiveInt, positiveNumber } from './lib/args.js';
import { ContentionMeter, describeContention } from './lib/contention.js';
import { cudaUnavailableReason, timeGpu } from './lib/cuda-device.js';
import { parseOrExit, printHeader, sourceState } from './lib/header.js';
import { CaseContext, disposeAll, totalBytes, type Device, type FloatDtype, type OpCase, type Pass } from './lib/op-case.js';
import { CACHE_STREAM_BYTES, DRAM_STREAM_BYTES, measurePeakBandwidth, measurePeakGflops } from './lib/peak.js';
import { fmt, fmtPct, section } from './lib/table.js';
import { hasGc, nowMs, timeIt } from './lib/timing.js';
import { cases as asa } from './ops/asa.js';
import { cases as attention } from './ops/attention.js';
import { cases as batchnorm } from './ops/batchnorm.js';
import { cases as conv } from './ops/conv.js';
import { cases as cross_entropy } from './ops/cross_entropy.js';
import { cases as dropout } from './ops/dropout.js';
import { cases as elementwise } from './ops/elementwise.js';
import { cases as embedding } from './ops/embedding.js';
import { cases as geglu } from './ops/geglu.js';
import { cases as image_aug } from './ops/image_aug.js';
import { cases as layernorm } from './ops/layernorm.js';
import { cases as label_words } from './ops/label_words.js';
import { cases as layout } from './ops/layout.js';
import { cases as linalg } from './ops/linalg.js';
import { cases as linear_ce } from './ops/linear_ce.js';
import { cases as masked_linear } from './ops/masked_linear.js';
import { cases as mim_loss } from './ops/mim_loss.js';
import { cases as mim_tokens } from './ops/mim_tokens.js';
import { cases as mlm_mask } from './ops/mlm_mask.js';
import { cases as optim } from './ops/optim.js';
import { cases as pgd } from './ops/pgd.js';
import { cases as pool } from './ops/pool.js';
import { cases as softmax } from './ops/softmax.js';
import { cases as sparse_conv } from './ops/sparse_conv.js';
import { cases as sparse_norm_pool } from './ops/sparse_norm_pool.js';
import { cases as sparse_rulebook } from './ops/sparse_rulebook.js';

/** Every family's cases, in the op table's order (a family missing here fails to typecheck). */
const CASES: Record<OpFamily, OpCase[]> = {
  elementwise, dropout, geglu, layernorm, softmax, cross_entropy, embedding, linalg, linear_ce, label_words, attention, optim, mlm_mask,
  mim_tokens, mim_loss, image_aug, conv, batchnorm, pool, sparse_rulebook, sparse_conv, sparse_norm_pool, layout, pgd,
  masked_linear, asa,
};

const USAGE = `usage: npm run bench:ops -- [op or family …] [--threads N] [--repeat N] [--warmup N] [--min-sample-ms MS]
                              [--device cpu|cuda|all] [--dtype float32|bfloat16] [--json FILE] [--markdown FILE] [--list]
  op or family   forward or backward names of src/ops/list.ts (layerNorm, conv2dBackward) or families (conv, sparse_conv);
                 none: every op
  --threads N    CPU pool threads (default: all cores); the peaks are measured on the same count
  --repeat N     timed samples per call, the median reported (default 5)
  --warmup N     untimed calls first (default 2)
  --min-sample-ms MS  short calls are batched until one sample lasts this long (default 10)
  --device       cpu, cuda or all (default: cpu, and cuda too when the cuda addon is loaded and a GPU answers)
  --dtype        float inputs' dtype (default float32; bfloat16 is for cuda)
  --json FILE    also write every row, the machine and the peaks as JSON
  --markdown FILE  also write the rows as a markdown table (for bench/RESULTS.md)
  --list         print the cases and exit`;

interface Args {
  filters: string[];
  threads: number;
  repeat: number;
  warmup: number;
  minSampleMs: number;
  device: 'auto' | Device | 'all';
  dtype: FloatDtype;
  json: string | null;
  markdown: string | null;
  list: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    filters: [], threads: availableParallelism(), repeat: 5, warmup: 2, minSampleMs: 10, device: 'auto', dtype: 'float32', json: null, markdown: null, list: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[i + 1];
    switch (k) {
      case '--threads': a.threads = positiveInt(k, v, USAGE); i++; break;
      case '--repeat': a.repeat = positiveInt(k, v, USAGE); i++; break;
      case '--warmup': a.warmup = positiveInt(k, v, USAGE); i++; break;
      case '--min-sample-ms': a.minSampleMs = positiveNumber(k, v, USAGE); i++; break;
      case '--device':
        if (v !== 'cpu' && v !== 'cuda' && v !== 'all') throw new Error(`Expected cpu, cuda or all for --device but received ${v}\n${USAGE}`);
        a.device = v;
        i++;
        break;
      case '--dtype':
        if (v !== 'float32' && v !== 'bfloat16') throw new Error(`Expected float32 or bfloat16 for --dtype but received ${v}\n${USAGE}`);
        a.dtype = v;
        i++;
        break;
      case '--json':
        if (!v) throw new Error(`Expected a file name for --json but received nothing\n${USAGE}`);
        a.json = v;
        i++;
        break;
      case '--markdown':
        if (!v) throw new Error(`Expected a file name for --markdown but received nothing\n${USAGE}`);
        a.markdown = v;
        i++;
        break;
      case '--list': a.list = true; break;
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default:
        if (k.startsWith('-')) throw new Error(`Expected an option for bench:ops but received ${k}\n${USAGE}`);
        a.filters.push(k);
    }
  }
  return a;
}

interface Selected {
  family: OpFamily;
  c: OpCase;
  backward: string | null;
}

/** The cases the filters name (all when none); an unknown name is an error listing the known ones. */
function select(filters: readonly string[]): Selected[] {
  const ops = allOps();
  const all: Selected[] = (Object.keys(CASES) as OpFamily[]).flatMap((family) =>
    CASES[family].map((c) => {
      const spec = ops.find((o) => o.family === family && o.forward === c.op);
      // A case naming an op outside its family's table is a mistake in bench/ops/, not a user error.
      if (!spec) throw new Error(`bench/ops/${family}.ts: case op '${c.op}' is not an op of the ${family} family in src/ops/list.ts`);
      return { family, c, backward: spec.backward };
    }),
  );
  if (filters.length === 0) return all;
  const lower = filters.map((f) => f.toLowerCase());
  const known = new Set([...Object.keys(OP_FAMILIES), ...ops.flatMap((o) => [o.forward, ...(o.backward ? [o.backward] : [])])].map((s) => s.toLowerCase()));
  const unknown = filters.filter((_, i) => !known.has(lower[i]!));
  if (unknown.length) {
    throw new Error(
      `Expected op or family names for bench:ops but received ${unknown.join(', ')}\n` +
        `families: ${Object.keys(OP_FAMILIES).join(' ')}\nops: ${ops.map((o) => o.forward).join(' ')}`,
    );
  }
  const wanted = (s: Selected): boolean =>
    lower.some((f) => f === s.family || f === s.c.op.toLowerCase() || f === s.backward?.toLowerCase());
  return all.filter(wanted);
}

interface Peaks {
  /** GFLOP/s float32 FMA; null where not measured (cuda). */
  gflops: number | null;
  /** GB/s streaming far beyond the caches. */
  dramGBs: number;
  /** GB/s streaming a cache-resident buffer; null where not measured. */
  cacheGBs: number | null;
  how: string;
}

function cpuPeaks(): Peaks {
  return {
    gflops: measurePeakGflops(),
    dramGBs: measurePeakBandwidth(DRAM_STREAM_BYTES),
    cacheGBs: measurePeakBandwidth(CACHE_STREAM_BYTES),
    how: `best of 5 runs of measurePeakGflops(200 ms) and measurePeakBandwidth(200 ms, ${DRAM_STREAM_BYTES / 2 ** 20} MiB | ${CACHE_STREAM_BYTES / 2 ** 20} MiB)`,
  };
}

/** The GPU has no FMA probe; its bandwidth is the scale op's on 2 × 256 MiB (one read, one write per element). */
function cudaPeaks(minSampleMs: number): Peaks {
  const n = 64 * 2 ** 20;
  const x = native().empty('float32', [n], 'cuda');
  x.fill(1);
  try {
    const t = timeGpu(() => native().scale(x, 0.5).dispose(), { warmup: 3, reps: 5, minSampleMs });
    return { gflops: null, dramGBs: (2 * x.nbytes) / (Math.min(...t.samples) * 1e6), cacheGBs: null, how: 'bandwidth: the scale op from 256 MiB into 256 MiB of float32 (fastest of 5 samples); no FMA probe on cuda' };
  } finally {
    x.dispose();
  }
}

interface Row {
  family: OpFamily;
  op: string;
  pass: 'fwd' | 'bwd';
  /** The native export timed. */
  call: string;
  device: Device;
  dtype: FloatDtype;
  model: string;
  shape: string;
  bound: 'compute' | 'memory';
  us?: number;
  samplesUs?: number[];
  batch?: number;
  flops?: number;
  bytes?: number;
  /** GFLOP/s or GB/s */
  rate?: number;
  unit?: 'GFLOP/s' | 'GB/s';
  /** rate ÷ the device's peak for the unit. */
  share?: number | null;
  error?: string;
}

interface CaseOutcome {
  rows: Row[];
  /** liveBytes after the case minus before it. */
  leakBytes: number;
}

function liveBytes(device: Device): number {
  return native().liveBytes() + (device === 'cuda' ? native().cudaMemStats().liveBytes : 0);
}

function timePass(p: Pass, device: Device, a: Args): { us: number; samplesUs: number[]; batch: number; outBytes: number } {
  // One untimed call first: the output sizes for the byte count, and a warm-up.
  const first = p.run();
  const outBytes = totalBytes(first);
  disposeAll(first);
  const fn = (): void => disposeAll(p.run());
  const o = { warmup: a.warmup, reps: a.repeat, minSampleMs: a.minSampleMs };
  const t = device === 'cuda' ? timeGpu(fn, o) : timeIt(fn, o);
  return { us: t.medianMs * 1e3, samplesUs: t.samples.map((s) => s * 1e3), batch: t.batch, outBytes };
}

function runCase(s: Selected, device: Device, a: Args, peaks: Peaks): CaseOutcome {
  const { family, c } = s;
  const rows: Row[] = [];
  const base = (pass: 'fwd' | 'bwd', call: string): Row => ({ family, op: c.op, pass, call, device, dtype: a.dtype, model: c.model, shape: c.shape, bound: c.bound });
  const before = liveBytes(device);
  const ctx = new CaseContext(device, a.dtype);
  try {
    const run = c.setup(ctx);
    const passes: Array<['fwd' | 'bwd', string, Pass | undefined]> = [['fwd', c.op, run.fwd]];
    if (s.backward) passes.push(['bwd', s.backward, run.bwd]);
    for (const [pass, call, p] of passes) {
      const row = base(pass, call);
      rows.push(row);
      if (!p) {
        row.error = `no ${pass} call in bench/ops/${family}.ts`;
        continue;
      }
      try {
        const t = timePass(p, device, a);
        row.us = t.us;
        row.samplesUs = t.samplesUs;
        row.batch = t.batch;
        if (c.bound === 'compute') {
          if (p.flops === undefined) throw new Error(`a compute-bound case without a FLOP count (bench/ops/${family}.ts)`);
          row.flops = p.flops;
          row.unit = 'GFLOP/s';
          row.rate = p.flops / (t.us * 1e3);
          row.share = peaks.gflops ? row.rate / peaks.gflops : null;
        } else {
          const sum = (ts: Pass['reads']): number => (ts ?? []).reduce((n, x) => n + x.nbytes, 0);
          row.bytes = p.bytes ?? sum(p.reads) + 2 * sum(p.updates) + t.outBytes;
          row.unit = 'GB/s';
          row.rate = row.bytes / (t.us * 1e3);
          row.share = row.rate / peaks.dramGBs;
        }
      } catch (e) {
        row.error = (e as Error).message.split('\n')[0];
      }
    }
  } catch (e) {
    if (rows.length === 0) rows.push(base('fwd', c.op));
    rows[rows.length - 1]!.error = `setup: ${(e as Error).message.split('\n')[0]}`;
  } finally {
    ctx.dispose();
  }
  return { rows, leakBytes: liveBytes(device) - before };
}

const W = { op: 20, pass: 4, call: 28, us: 11, rate: 15, share: 6 };

function printRowHeader(): void {
  console.log(
    ['op'.padEnd(W.op), 'pass'.padEnd(W.pass), 'native call'.padEnd(W.call), 'µs/call'.padStart(W.us), 'rate'.padStart(W.rate), 'peak'.padStart(W.share), 'shape'].join('  '),
  );
}

function fmtUs(us: number): string {
  return us < 10 ? us.toFixed(2) : us < 1000 ? us.toFixed(1) : us.toFixed(0);
}

function printRow(r: Row): void {
  const head = [r.op.padEnd(W.op), r.pass.padEnd(W.pass), r.call.padEnd(W.call)];
  if (r.error) {
    console.log([...head, `ERROR: ${r.error}`].join('  '));
    return;
  }
  const rate = `${fmt(r.rate, r.rate! < 10 ? 2 : 1)} ${r.unit}`;
  console.log([...head, fmtUs(r.us!).padStart(W.us), rate.padStart(W.rate), fmtPct(r.share ?? undefined).padStart(W.share), `${r.model}: ${r.shape}`].join('  '));
}

/** One markdown table of every row, the device a column when there are several. */
function markdownTable(rows: readonly Row[]): string {
  const several = new Set(rows.map((r) => r.device)).size > 1;
  const head = [...(several ? ['device'] : []), 'op', 'pass', 'native call', 'µs/call', 'rate', 'peak', 'shape'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map((h) => (h === 'µs/call' || h === 'rate' || h === 'peak' ? '---:' : '---')).join('|')}|`];
  for (const r of rows) {
    const cells = r.error
      ? [r.op, r.pass, `\`${r.call}\``, '–', `error: ${r.error}`, '–', `${r.model}: ${r.shape}`]
      : [r.op, r.pass, `\`${r.call}\``, fmtUs(r.us!), `${fmt(r.rate, r.rate! < 10 ? 2 : 1)} ${r.unit}`, fmtPct(r.share ?? undefined), `${r.model}: ${r.shape}`];
    lines.push(`| ${[...(several ? [r.device] : []), ...cells].join(' | ')} |`);
  }
  return `${lines.join('\n')}\n`;
}

function devicesToRun(a: Args): { devices: Device[]; note: string | null } {
  const why = cudaUnavailableReason();
  if (a.device === 'cpu') return { devices: ['cpu'], note: null };
  if (a.device === 'cuda' || a.device === 'all') {
    if (why) throw new Error(`bench:ops: cannot run on cuda: ${why}`);
    return { devices: a.device === 'all' ? ['cpu', 'cuda'] : ['cuda'], note: null };
  }
  return why ? { devices: ['cpu'], note: `cuda not run: ${why}` } : { devices: ['cpu', 'cuda'], note: null };
}

function main(): void {
  const a = parseOrExit(parseArgs);
  if (!a) return;
  let selected: Selected[];
  try {
    selected = select(a.filters);
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 2;
    return;
  }
  if (a.list) {
    for (const s of selected) console.log(`${s.family.padEnd(17)} ${s.c.op.padEnd(W.op)} ${s.backward ?? '-'}`.padEnd(75) + ` ${s.c.model}: ${s.c.shape}`);
    return;
  }
  let plan: ReturnType<typeof devicesToRun>;
  try {
    plan = devicesToRun(a);
  } catch (e) {
    console.error((e as Error).message);
    process.exitCode = 1;
    return;
  }
  setNumThreads(a.threads);
  const t0 = nowMs();
  const whole = new ContentionMeter();
  printHeader('bench:ops');
  console.log(`source    ${sourceState()}`);
  const missing = allOps().filter((o) => !CASES[o.family].some((c) => c.op === o.forward));
  if (missing.length) console.log(`WARNING   ops without a case: ${missing.map((o) => o.forward).join(', ')}`);
  if (plan.note) console.log(`devices   ${plan.note}`);
  console.log(`timing    ${a.warmup + 1} untimed calls, then the median of ${a.repeat} samples, calls batched to ≥ ${a.minSampleMs} ms per sample; ` +
    `outputs disposed after every call${hasGc ? '' : '; run with node --expose-gc to collect garbage between samples'}`);
  console.log('rates     GFLOP/s: the FLOPs each case file counts; GB/s: each input read once, in-place tensors read and written, outputs written');

  const rows: Row[] = [];
  const leaks: Array<{ device: Device; op: string; model: string; bytes: number }> = [];
  const peaksBy: Partial<Record<Device, Peaks>> = {};
  const contention: Record<string, number | null> = {};
  for (const device of plan.devices) {
    const pm = new ContentionMeter();
    const peaks = device === 'cpu' ? cpuPeaks() : cudaPeaks(a.minSampleMs);
    peaksBy[device] = peaks;
    section(`${device}, ${device === 'cpu' ? `${runtimeInfo().threads} thread(s)` : native().cudaInfo().name}, ${a.dtype}`);
    const peakText = [
      peaks.gflops !== null ? `${fmt(peaks.gflops)} GFLOP/s float32 FMA` : null,
      `${fmt(peaks.dramGBs)} GB/s streaming memory`,
      peaks.cacheGBs !== null ? `(${fmt(peaks.cacheGBs)} GB/s within the caches)` : null,
    ].filter(Boolean).join(', ');
    console.log(`peak      ${peakText}; ${peaks.how}`);
    console.log(`          during the peak measurement, ${describeContention(pm.othersShare())}`);
    console.log('          "peak" below: GFLOP/s ÷ the FMA peak, GB/s ÷ the streaming-memory peak (cache-resident data can pass 100%)');
    let family: OpFamily | null = null;
    let fm: ContentionMeter | null = null;
    const endFamily = (): void => {
      if (family && fm) {
        const share = fm.othersShare();
        contention[`${device}:${family}`] = share;
        if (share !== null && share > 0.05) console.log(`  (${family}: ${describeContention(share)})`);
      }
    };
    for (const s of selected) {
      if (s.family !== family) {
        endFamily();
        family = s.family;
        fm = new ContentionMeter();
        console.log(`\n${family}`);
        printRowHeader();
      }
      // An op the table gives no CUDA kernel (synchronized BatchNorm's sums: CPU only) has no cuda row.
      if (device === 'cuda' && allOps().find((o) => o.forward === s.c.op)?.cuda.length === 0) {
        console.log(`  ${s.c.op}: no cuda kernel (CPU only), not run`);
        continue;
      }
      const out = runCase(s, device, a, peaks);
      for (const r of out.rows) printRow(r);
      rows.push(...out.rows);
      if (out.leakBytes !== 0) {
        leaks.push({ device, op: s.c.op, model: s.c.model, bytes: out.leakBytes });
        console.log(`  LEAK: liveBytes grew by ${out.leakBytes} bytes over this case`);
      }
    }
    endFamily();
  }

  section('Summary');
  const timed = rows.filter((r) => r.share !== undefined && r.share !== null);
  const low = [...timed].sort((x, y) => x.share! - y.share!).slice(0, 12);
  console.log('furthest below peak:');
  for (const r of low) console.log(`  ${fmtPct(r.share!).padStart(5)}  ${r.device} ${r.op} ${r.pass} (${r.call}), ${fmtUs(r.us!)} µs, ${r.model}: ${r.shape}`);
  const errors = rows.filter((r) => r.error);
  console.log(errors.length ? `errors: ${errors.length} (${errors.map((r) => `${r.op} ${r.pass}`).join(', ')})` : 'errors: none');
  console.log(leaks.length ? `leaks: ${leaks.map((l) => `${l.device} ${l.op} +${l.bytes} B`).join(', ')}` : 'leaks: none (liveBytes the same before and after every case)');
  const others = whole.othersShare();
  console.log(`total bench time ${((nowMs() - t0) / 1000).toFixed(0)} s; ${describeContention(others)}`);
  if (a.json) {
    const info = runtimeInfo();
    writeFileSync(a.json, `${JSON.stringify({
      bench: 'bench:ops', date: new Date().toISOString(), source: sourceState(),
      machine: { cpu: cpus()[0]?.model ?? 'unknown', logicalCores: cpus().length, memoryBytes: totalmem() },
      runtime: { node: process.version, ...info },
      options: a, peaks: peaksBy, contention: { whole: others, byFamily: contention }, rows, leaks,
    }, null, 1)}\n`);
    console.log(`wrote ${a.json}`);
  }
  if (a.markdown) {
    writeFileSync(a.markdown, markdownTable(rows));
    console.log(`wrote ${a.markdown}`);
  }
  if (errors.length || leaks.length) process.exitCode = 1;
}

main();
