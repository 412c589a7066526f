/**
 * `npm run bench:finetune-step`: fine-tuning throughput (examples/s) of
 * cloze's real fine-tuning step (bench/suites/finetune_step.ts: the
 * TextClassifier and task of `cloze finetune`, driven by the shared training
 * loop) against the same step in PyTorch (bench/baselines/finetune_torch.py),
 * for mlp-ft and mvp (and with --adv their PGD variants, with --asa their ASA
 * variants) at bert-tiny and bert-mini, B=32 examples of L=128 tokens, in one
 * run; the ratio is cloze/PyTorch examples/s. ASA has no PyTorch reference:
 * its cost is its step time over that of the same case without it, both
 * cloze, in the same run. Each side of each case runs in a child process of
 * its own. Writes the figures to a JSON file (bench/results/, git-ignored).
 * Options: `--help`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { runtimeInfo } from '../src/index.js';
import type { BertPresetName } from '../src/models/bert/presets.js';
import { choiceList, intList, positiveInt } from './lib/args.js';
import { ContentionMeter, describeContention } from './lib/contention.js';
import { parseOrExit, printHeader, sourceState } from './lib/header.js';
import { fmt, fmtMiB, fmtMs, fmtRatio, printTable, section } from './lib/table.js';
import { nowMs } from './lib/timing.js';
import { KEEP_MEMORY_ENV } from './lib/torch.js';
import {
  caseName, finetuneStepSpec, FT_STEP_SHAPE, ourFinetuneStep, runOurFinetuneStep, runTorchFinetune,
  type FinetuneCase, type FinetuneStepOutcome, type TorchFinetuneOutcome, type TorchFinetuneResult,
} from './suites/finetune_step.js';

/** BERT presets the PyTorch reference can build (absolute positions, GELU FFN, post-LN). */
const PRESETS = ['bert-tiny', 'bert-mini', 'bert-small', 'bert-base'] as const satisfies readonly BertPresetName[];
const METHODS = ['mlp-ft', 'mvp'] as const;

const USAGE = `usage: npm run bench:finetune-step -- [--presets bert-tiny,bert-mini] [--methods mlp-ft,mvp] [--adv | --adv-only] [--asa | --asa-only]
                                        [--threads N] [--torch-threads N[,M]] [--warmup 2] [--reps 5]
                                        [--python /usr/bin/python3 | --no-torch] [--kept] [--out bench/results/finetune-step.json]
  --adv adds each method's PGD variant (mlp-ft --adv, mvp --adv = MVP+Adv); --adv-only runs only those.
  --asa adds each method's ASA variant (mlp-ft +asa = --method asa, mvp +asa), timed against the same case without it
  (cloze only); --asa-only runs each method with and without ASA, nothing else.
  --torch-threads defaults to --threads (all cores); with several, the faster torch setting is the baseline.
  --kept adds torch at that setting with glibc keeping freed memory (informational, not the baseline).`;

interface Args {
  presets: BertPresetName[];
  methods: Array<(typeof METHODS)[number]>;
  adv: 'no' | 'also' | 'only';
  asa: 'no' | 'also' | 'only';
  threads: number;
  torchThreads: number[] | null;
  warmup: number;
  reps: number;
  python: string;
  kept: boolean;
  out: string;
  /** Internal: run one case of our side and print its JSON line. */
  child: FinetuneCase | null;
}


function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    presets: ['bert-tiny', 'bert-mini'], methods: ['mlp-ft', 'mvp'], adv: 'no', asa: 'no', threads: availableParallelism(), torchThreads: null,
    warmup: 2, reps: 5, python: process.env.CLOZE_TORCH_PYTHON ?? '/usr/bin/python3', kept: false, out: join('bench', 'results', 'finetune-step.json'), child: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[i + 1];
    switch (k) {
      case '--presets': a.presets = choiceList(k, v, PRESETS, USAGE); i++; break;
      case '--methods': a.methods = choiceList(k, v, METHODS, USAGE); i++; break;
      case '--adv': a.adv = 'also'; break;
      case '--adv-only': a.adv = 'only'; break;
      case '--asa': a.asa = 'also'; break;
      case '--asa-only': a.asa = 'only'; break;
      case '--threads': a.threads = positiveInt(k, v, USAGE); i++; break;
      case '--torch-threads': a.torchThreads = intList(k, v, USAGE); i++; break;
      case '--warmup': a.warmup = positiveInt(k, v, USAGE); i++; break;
      case '--reps': a.reps = positiveInt(k, v, USAGE); i++; break;
      case '--python': a.python = v ?? ''; i++; break;
      case '--no-torch': a.python = ''; break;
      case '--kept': a.kept = true; break;
      case '--out': if (!v) throw new Error(`Expected a file for ${k}\n${USAGE}`); a.out = v; i++; break;
      case '--child': {
        const [preset] = choiceList(k, v, PRESETS, USAGE);
        const [method] = choiceList(k, argv[i + 2], METHODS, USAGE);
        let j = i + 3;
        const flags = new Set<string>();
        while (argv[j] === '--adv' || argv[j] === '--asa') flags.add(argv[j++]!);
        a.child = { preset: preset!, method: method!, adv: flags.has('--adv'), ...(flags.has('--asa') ? { asa: true } : {}) };
        i = j - 1;
        break;
      }
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default: throw new Error(`Expected an option for bench:finetune-step but received ${k}\n${USAGE}`);
    }
  }
  return a;
}

function cases(a: Args): FinetuneCase[] {
  // --asa-only: each method without and with ASA (the pair its cost is read from); PGD and ASA never together.
  if (a.asa === 'only') return a.presets.flatMap((preset) => a.methods.flatMap((method) => [{ preset, method, adv: false }, { preset, method, adv: false, asa: true }]));
  const advs = a.adv === 'no' ? [false] : a.adv === 'only' ? [true] : [false, true];
  const plain = a.presets.flatMap((preset) => a.methods.flatMap((method) => advs.map((adv): FinetuneCase => ({ preset, method, adv }))));
  if (a.asa === 'no') return plain;
  return plain.flatMap((c) => (c.adv ? [c] : [c, { ...c, asa: true }]));
}

/** ASA's cost: each +asa case's step time over that of the same case without it (both cloze, this run). */
function asaCosts(records: readonly CaseRecord[]): Array<{ case: string; plainMs: number; asaMs: number; ratio: number }> {
  const out: Array<{ case: string; plainMs: number; asaMs: number; ratio: number }> = [];
  for (const r of records) {
    if (!r.case.asa || !r.ours.ok) continue;
    const base = records.find((x) => !x.case.asa && !x.case.adv && x.case.preset === r.case.preset && x.case.method === r.case.method);
    if (!base?.ours.ok) continue;
    out.push({ case: caseName(r.case), plainMs: base.ours.medianMs, asaMs: r.ours.medianMs, ratio: r.ours.medianMs / base.ours.medianMs });
  }
  return out;
}

interface CaseRecord {
  case: FinetuneCase;
  ours: FinetuneStepOutcome;
  oursContention: number | null;
  /** Every torch child; `kept`: with KEEP_MEMORY_ENV (informational, never the baseline). */
  torch: Array<{ threads: number; kept: boolean; r: TorchFinetuneOutcome; contention: number | null }>;
  /** The faster torch setting's examples/s; null without one. */
  torchExamplesPerS: number | null;
  /** cloze examples/s ÷ torchExamplesPerS. */
  ratio: number | null;
}

const losses3 = (xs: readonly number[]): string => xs.slice(0, 3).map((l) => l.toFixed(3)).join(' ');

async function main(): Promise<void> {
  const a = parseOrExit(parseArgs);
  if (!a) return;
  if (a.child) {
    console.log(JSON.stringify(await ourFinetuneStep(a.child, a.threads, a.warmup, a.reps)));
    return;
  }
  const torchThreads = a.torchThreads ?? [a.threads];
  const t0 = nowMs();
  const whole = new ContentionMeter();
  printHeader('bench:finetune-step', `threads ${a.threads}, torch threads ${torchThreads.join(',')}`);
  const source = sourceState();
  console.log(`source    ${source}`);
  const { B, L } = FT_STEP_SHAPE;
  section(`Fine-tuning step, B=${B} examples × L=${L} tokens (mvp: × 4 templates), random tokens, warm-up ${a.warmup}, median of ${a.reps} steps`);
  console.log('step = the class logits (mlp-ft: pooled [CLS] → dropout → linear; mvp: MLM head on the [MASK] rows, K=6 label words, max per class, mean over 4 templates)');
  console.log('       + cross-entropy + backward + clip grad norm + AdamW (cloze finetune\'s defaults), with --adv one L2 PGD step first, with ASA a second pass under the adversary\'s masks (+ SymKL, τ²·ΣM/B); each side in its own child process');
  const records: CaseRecord[] = [];
  for (const c of cases(a)) {
    const spec = finetuneStepSpec(c);
    let m = new ContentionMeter();
    const ours = runOurFinetuneStep(c, a.threads, a.warmup, a.reps);
    const oursContention = m.othersShare();
    console.log(`  ${caseName(c)}: cloze ${ours.ok ? `${fmtMs(ours.medianMs)} ms` : `FAILED: ${ours.error}`} (${describeContention(oursContention)})`);
    const torch: CaseRecord['torch'] = [];
    for (const t of torchThreads) {
      m = new ContentionMeter();
      const r = runTorchFinetune(a.python, t, spec, c, a.warmup, a.reps);
      const contention = m.othersShare();
      torch.push({ threads: t, kept: false, r, contention });
      console.log(`  ${caseName(c)}: torch ${t}T ${r.ok ? `${fmtMs(r.median_ms)} ms` : `skipped: ${r.error}`} (${describeContention(contention)})`);
    }
    const best = torch.map((x) => x.r).filter((r): r is TorchFinetuneResult => r.ok).reduce<TorchFinetuneResult | null>((b, r) => (!b || r.median_ms < b.median_ms ? r : b), null);
    if (a.kept && best) {
      m = new ContentionMeter();
      const r = runTorchFinetune(a.python, best.threads, spec, c, a.warmup, a.reps, true);
      const contention = m.othersShare();
      torch.push({ threads: best.threads, kept: true, r, contention });
      console.log(`  ${caseName(c)}: torch ${best.threads}T kept ${r.ok ? `${fmtMs(r.median_ms)} ms` : `skipped: ${r.error}`} (${describeContention(contention)})`);
    }
    const torchExamplesPerS = best ? best.examples_per_s : null;
    records.push({ case: c, ours, oursContention, torch, torchExamplesPerS, ratio: ours.ok && torchExamplesPerS ? ours.examplesPerS / torchExamplesPerS : null });
  }

  const firstTorch = records.flatMap((r) => r.torch.map((x) => x.r)).find((r): r is TorchFinetuneResult => r.ok);
  if (firstTorch) console.log(`\ntorch ${firstTorch.torch} (${firstTorch.python}), BLAS ${firstTorch.blas}`);
  console.log('examples/s = B ÷ median step time; cloze/torch = cloze examples/s ÷ the faster torch setting\'s (above 1: cloze is faster); peak RSS in MiB (VmHWM of each child)');
  const rows: string[][] = [];
  for (const r of records) {
    const o = r.ours;
    for (const [i, x] of r.torch.entries()) {
      const t = x.r;
      rows.push([
        i === 0 ? caseName(r.case) : '',
        i === 0 ? (o.ok ? String(o.sequences) : '-') : '',
        i === 0 ? (o.ok ? fmtMs(o.medianMs) : 'failed') : '',
        i === 0 ? (o.ok ? fmt(o.examplesPerS, 1) : '-') : '',
        `${x.threads}T${x.kept ? ' kept' : ''}`,
        t.ok ? fmtMs(t.median_ms) : 'skipped',
        t.ok ? fmt(t.examples_per_s, 1) : '-',
        o.ok && t.ok ? fmtRatio(o.examplesPerS / t.examples_per_s) : '-',
        i === 0 ? (o.ok ? fmtMiB(o.peakRssBytes ?? undefined) : '-') : '',
        t.ok ? fmtMiB(t.peak_rss_bytes) : '-',
        i === 0 && o.ok && t.ok ? (o.params === t.params ? `${o.params} both` : `${o.params} / ${t.params} DIFFER`) : '',
      ]);
    }
  }
  printTable(
    [{ header: 'case', align: 'l' }, { header: 'seqs' }, { header: 'cloze ms' }, { header: 'cloze ex/s' }, { header: 'torch' }, { header: 'torch ms' },
      { header: 'torch ex/s' }, { header: 'cloze/torch' }, { header: 'cloze RSS' }, { header: 'torch RSS' }, { header: 'params', align: 'l' }],
    rows,
  );
  for (const r of records) {
    if (r.ours.ok) console.log(`${caseName(r.case)}: cloze samples (ms) ${r.ours.samplesMs.map((s) => s.toFixed(0)).join(' ')}; first losses ${losses3(r.ours.losses)}; cpu user/sys ms per step ${fmt(r.ours.cpuUserMs, 0)}/${fmt(r.ours.cpuSysMs, 0)}`);
    for (const x of r.torch) {
      if (x.r.ok) console.log(`${caseName(r.case)}: torch ${x.threads}T${x.kept ? ' kept' : ''} samples (ms) ${x.r.samples_ms.map((s) => s.toFixed(0)).join(' ')}; first losses ${losses3(x.r.losses)}; cpu user/sys ms per step ${fmt(x.r.cpu_user_ms, 0)}/${fmt(x.r.cpu_sys_ms, 0)}`);
    }
  }
  const asa = asaCosts(records);
  for (const x of asa) console.log(`ASA cost, ${x.case}: ${fmtMs(x.asaMs)} ms against ${fmtMs(x.plainMs)} ms without it = ${x.ratio.toFixed(2)}× a step (the paper: about 2×)`);
  if (a.kept) console.log(`"kept": torch with ${Object.entries(KEEP_MEMORY_ENV).map(([k, v]) => `${k}=${v}`).join(' ')} (glibc keeps freed memory); informational, not the baseline`);
  const wholeShare = whole.othersShare();
  const totalS = (nowMs() - t0) / 1000;
  console.log(`\ntotal bench time ${totalS.toFixed(0)} s; ${describeContention(wholeShare)}`);

  const info = runtimeInfo();
  mkdirSync(dirname(a.out), { recursive: true });
  writeFileSync(a.out, JSON.stringify({
    bench: 'bench:finetune-step',
    command: `npm run bench:finetune-step -- ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model ?? 'unknown', logicalCores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), node: process.version, runtime: info },
    source,
    shape: { B, L, templates: 4, labelWords: 6, classes: 2 },
    args: { ...a, torchThreads, child: undefined },
    totalSeconds: totalS,
    othersShare: wholeShare,
    records,
    asaCosts: asa,
  }, null, 2) + '\n');
  console.log(`wrote ${a.out}`);
}

await main();
