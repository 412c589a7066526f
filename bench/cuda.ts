/**
 * `npm run bench:cuda`: the CUDA backend against PyTorch on the same GPU.
 *   1. attention forward / backward / both, bfloat16, B·L = 16384 tokens,
 *      H = 12, Dh = 64, L ∈ {128, 512, 1024}, against
 *      scaled_dot_product_attention with the flash backend forced
 *      (bench/baselines/attention_sdpa.py); target: ≥ 1.0× on fwd+bwd;
 *   2. a BERT-base MLM training step, batch 256 × 128, 15% masked, bf16 with
 *      float32 master weights, against PyTorch eager under bf16 autocast
 *      (bench/baselines/bert_mlm_torch.py); target: ≥ 1.3× tokens/s;
 *   3. the masked-token kernels (the fused MLM head, MAE's token gather and
 *      its normalised-pixel loss), forward + backward, against their PyTorch
 *      counterparts (bench/lib/cuda-masked.ts, bench/baselines/masked_ops_torch.py).
 * Needs the cuda addon (npm run build:cuda) and a GPU; without them it exits
 * with status 1 and one line saying why. The torch baselines run under
 * CLOZE_TORCH_PYTHON (else python3); without torch or CUDA there, each
 * prints a skip line and our figures are still reported. Results go to
 * bench/results-cuda/ (results.json, summary.md). Options: `--help`.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../src/native/loader.js';
import { runtimeInfo } from '../src/index.js';
import { intList, positiveInt, positiveNumber } from './lib/args.js';
import { runAttentionCase, type AttentionRow } from './lib/cuda-attention.js';
import { cudaUnavailableReason, describeGpu, gpuFacts, type GpuTimingOptions } from './lib/cuda-device.js';
import { MASKED_CASES, MASKED_SHAPE, runMaskedCase, type MaskedRow } from './lib/cuda-masked.js';
import { MLM_PRESET, profileOurMlm, runOurMlm, runTorchMlm, type MlmRunOptions } from './lib/cuda-mlm.js';
import { printProfile } from './suites/mlm_profile.js';
import {
  ATTENTION_TARGET, attentionRatios, attentionTable, bf16PeakTflops, markdownTable, MLM_TARGET, mlmRatio, mlmStepFlops, mlmTable, tflops, writeResults, type Table,
} from './lib/cuda-report.js';
import type { PyOutcome, TorchCudaFacts } from './lib/cuda-torch.js';
import { ATTENTION_FLOPS_CONVENTION } from './lib/flops.js';
import { parseOrExit, printHeader } from './lib/header.js';
import { fmtRatio, printTable, section } from './lib/table.js';
import { hasGc, nowMs } from './lib/timing.js';

const USAGE = `usage: npm run bench:cuda -- [--only attention|mlm|masked|all] [--tokens 16384] [--lengths 128,512,1024] [--heads 12] [--head-dim 64]
                               [--warmup 5] [--reps 15] [--min-sample-ms 50] [--mlm-batch 256] [--mlm-length 128]
                               [--mlm-warmup 3] [--mlm-reps 10] [--profile] [--python python3 | --no-torch] [--out DIR | --no-write]
  --profile: also run our MLM step under the per-call profiler with the device drained around every call (where the time goes)`;

interface Args {
  only: 'all' | 'attention' | 'mlm' | 'masked';
  tokens: number;
  lengths: number[];
  heads: number;
  headDim: number;
  warmup: number;
  reps: number;
  minSampleMs: number;
  mlmBatch: number;
  mlmLength: number;
  mlmWarmup: number;
  mlmReps: number;
  profile: boolean;
  python: string;
  out: string | null;
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    only: 'all', tokens: 16384, lengths: [128, 512, 1024], heads: 12, headDim: 64, warmup: 5, reps: 15, minSampleMs: 50,
    mlmBatch: 256, mlmLength: 128, mlmWarmup: 3, mlmReps: 10, profile: false,
    python: process.env.CLOZE_TORCH_PYTHON || 'python3', out: join(packageRoot(), 'bench', 'results-cuda'),
  };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[i + 1];
    switch (k) {
      case '--only':
        if (v !== 'attention' && v !== 'mlm' && v !== 'masked' && v !== 'all') throw new Error(`Expected attention, mlm, masked or all for --only but received ${v}\n${USAGE}`);
        a.only = v;
        i++;
        break;
      case '--tokens': a.tokens = positiveInt(k, v, USAGE); i++; break;
      case '--lengths': a.lengths = intList(k, v, USAGE); i++; break;
      case '--heads': a.heads = positiveInt(k, v, USAGE); i++; break;
      case '--head-dim': a.headDim = positiveInt(k, v, USAGE); i++; break;
      case '--warmup': a.warmup = positiveInt(k, v, USAGE); i++; break;
      case '--reps': a.reps = positiveInt(k, v, USAGE); i++; break;
      case '--min-sample-ms': a.minSampleMs = positiveNumber(k, v, USAGE); i++; break;
      case '--mlm-batch': a.mlmBatch = positiveInt(k, v, USAGE); i++; break;
      case '--mlm-length': a.mlmLength = positiveInt(k, v, USAGE); i++; break;
      case '--mlm-warmup': a.mlmWarmup = positiveInt(k, v, USAGE); i++; break;
      case '--mlm-reps': a.mlmReps = positiveInt(k, v, USAGE); i++; break;
      case '--python': a.python = v ?? ''; i++; break;
      case '--no-torch': a.python = ''; break;
      case '--profile': a.profile = true; break;
      case '--out': a.out = v ?? ''; i++; break;
      case '--no-write': a.out = null; break;
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default: throw new Error(`Expected an option for bench:cuda but received ${k}\n${USAGE}`);
    }
  }
  for (const L of a.lengths) {
    if (a.tokens % L !== 0) throw new Error(`Expected lengths that divide --tokens (${a.tokens}) for --lengths but received ${L}\n${USAGE}`);
  }
  if (a.out === '') throw new Error(`Expected a directory for --out but received nothing\n${USAGE}`);
  return a;
}

function gitRevision(): string | null {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** Prints each distinct skip reason once. */
function skipPrinter(): (what: string, error: string) => void {
  const seen = new Set<string>();
  return (what, error) => {
    if (seen.has(error)) return;
    seen.add(error);
    console.log(`  ${what} skipped: ${error}`);
  };
}

function runAttention(a: Args, timing: GpuTimingOptions): { rows: AttentionRow[]; table: Table } {
  section(`Attention, bf16, B·L = ${a.tokens} tokens, H = ${a.heads}, Dh = ${a.headDim}, no mask, scale 1/√Dh`);
  console.log('cloze: native attention / attentionBackward on [B, L, H, Dh]; torch: F.scaled_dot_product_attention, flash backend forced');
  console.log(`${ATTENTION_FLOPS_CONVENTION} (FlashAttention-2's convention)`);
  const skip = skipPrinter();
  const rows: AttentionRow[] = [];
  for (const L of a.lengths) {
    const r = runAttentionCase(a.python, { B: a.tokens / L, L, H: a.heads, Dh: a.headDim }, timing);
    if (!r.ours.ok) console.log(`  cloze FAILED at L=${L}: ${r.ours.error}`);
    if (r.general && !r.general.ok) console.log(`  cloze (mmaGeneral) FAILED at L=${L}: ${r.general.error}`);
    if (!r.torch.ok) skip('torch SDPA baseline', r.torch.error);
    console.log(`  L=${L} done`);
    rows.push(r);
  }
  const table = attentionTable(rows);
  console.log('\ncloze/torch = torch ms ÷ cloze ms (above 1: cloze faster); general path = the same mma kernels with mmaGeneral (their per-element logit instead of the unmasked fast path), general/cloze = its ms ÷ cloze ms');
  printTable(table.columns, table.rows);
  return { rows, table };
}

/** cloze/torch = torch ms ÷ cloze ms; NaN where a side is missing. */
function maskedRatio(r: MaskedRow): number {
  return r.ours.ok && r.torch.ok ? r.torch.fwd_bwd.median_ms / r.ours.fwdBwd.medianMs : NaN;
}

function runMasked(a: Args, timing: GpuTimingOptions): { rows: MaskedRow[]; table: Table } {
  const s = MASKED_SHAPE;
  section('Masked-token kernels, bf16, forward + backward, against their PyTorch counterparts');
  console.log(`mlm-head: fused linearCrossEntropy, M = ${s.rows} masked rows, D = ${s.hidden}, V = ${s.vocab}; torch: cross_entropy(linear(h, W, b)) under autocast(bf16)`);
  console.log(`token-gather: assembleTokens at ids_keep, B = ${s.batch}, ${s.keep} of ${s.tokens} tokens, D = ${s.hidden}; torch: torch.gather`);
  console.log(`patch-loss: maskedPatchLoss (MSE, normalised target pixels), B = ${s.batch}, L = ${s.tokens}, P = ${s.patch}, ${s.maskRatio * 100}% masked; torch: MAE's forward_loss`);
  console.log(`sparse-conv: sparseConv 3×3 + backward (dx, dW) on the visible sites, B = ${s.convBatch}, ${s.convSize}², C = ${s.convChannels}, ` +
    `${s.convRatio * 100}% of ${s.convCell}×${s.convCell} cells masked (rulebook built once, untimed); torch: conv2d(x)·mask on the whole map (x zero where masked), NCHW`);
  const skip = skipPrinter();
  const rows: MaskedRow[] = [];
  for (const name of MASKED_CASES) {
    const r = runMaskedCase(a.python || null, name, s, timing);
    if (!r.ours.ok) console.log(`  cloze FAILED on ${name}: ${r.ours.error}`);
    if (!r.torch.ok) skip('torch baseline', r.torch.error);
    console.log(`  ${name} done`);
    rows.push(r);
  }
  const mib = (b: number | null | undefined): string => (typeof b === 'number' ? (b / 2 ** 20).toFixed(1) : '-');
  const loss = (x: number | null | undefined): string => (typeof x === 'number' ? x.toFixed(4) : '-');
  const table: Table = {
    columns: [
      { header: 'case', align: 'l' }, { header: 'cloze ms' }, { header: 'torch ms' }, { header: 'cloze/torch' },
      { header: 'cloze peak MiB' }, { header: 'torch peak MiB' }, { header: 'cloze loss' }, { header: 'torch loss' },
    ],
    rows: rows.map((r) => [
      r.name, r.ours.ok ? r.ours.fwdBwd.medianMs.toFixed(3) : 'failed', r.torch.ok ? r.torch.fwd_bwd.median_ms.toFixed(3) : '-',
      fmtRatio(maskedRatio(r)), r.ours.ok ? mib(r.ours.peakBytes) : '-', r.torch.ok ? mib(r.torch.peak_bytes) : '-',
      r.ours.ok ? loss(r.ours.loss) : '-', r.torch.ok ? loss(r.torch.loss) : '-',
    ]),
  };
  console.log('\ncloze/torch = torch ms ÷ cloze ms (above 1: cloze faster); peaks include the inputs; the losses are of different random inputs');
  printTable(table.columns, table.rows);
  return { rows, table };
}

function targetText(ratio: number, target: number): string {
  if (!Number.isFinite(ratio)) return 'not measured (a side is missing, see above)';
  return `${fmtRatio(ratio)}, ${ratio >= target ? 'MET' : 'NOT MET'}`;
}

function main(): void {
  const a = parseOrExit(parseArgs);
  if (!a) return;
  const why = cudaUnavailableReason();
  if (why) {
    console.error(`bench:cuda: cannot run: ${why}`);
    process.exitCode = 1;
    return;
  }
  const t0 = nowMs();
  printHeader('bench:cuda');
  const gpu = gpuFacts();
  console.log(`gpu       ${describeGpu(gpu)}`);
  console.log(`torch     ${a.python ? `baselines run under ${a.python}` : 'disabled (--no-torch)'}`);
  console.log(`timing    cudaSynchronize, host clock, a batch of calls (≥ ${a.minSampleMs} ms per sample), cudaSynchronize; ` +
    `warm-up ${a.warmup}, median of ${a.reps} samples; the torch side times the same way`);
  if (!hasGc) console.log('note      run with node --expose-gc to collect garbage between samples');
  const timing: GpuTimingOptions = { warmup: a.warmup, reps: a.reps, minSampleMs: a.minSampleMs };

  let attention: { rows: AttentionRow[]; table: Table } | null = null;
  if (a.only === 'all' || a.only === 'attention') attention = runAttention(a, timing);

  let mlm: { opts: MlmRunOptions; ours: ReturnType<typeof runOurMlm>; torch: ReturnType<typeof runTorchMlm>; table: Table } | null = null;
  if (a.only === 'all' || a.only === 'mlm') {
    const opts: MlmRunOptions = { B: a.mlmBatch, L: a.mlmLength, maskRatio: 0.15, seed: 1234, warmup: a.mlmWarmup, reps: a.mlmReps };
    section(`MLM training step, ${MLM_PRESET} (12 layers, hidden 768, 12 heads, FFN 3072, vocab 30522, post-LN, dropout 0.1), B=${opts.B} L=${opts.L}, 15% masked rows`);
    console.log('cloze: bf16 weights and compute on cuda, AdamW with float32 master weights; torch: float32 weights, forward under autocast(bf16), torch.optim.AdamW');
    console.log(`step = forward (head on masked rows only) + backward + clip grad norm 1.0 + AdamW + reading the loss; warm-up ${opts.warmup}, median of ${opts.reps} steps`);
    const ours = runOurMlm(opts);
    if (!ours.ok) console.log(`  cloze FAILED: ${ours.error}`);
    const torch = runTorchMlm(a.python, opts);
    if (!torch.ok) console.log(`  torch eager baseline skipped: ${torch.error}`);
    if (ours.ok && torch.ok && ours.params !== torch.params) console.log(`  note: parameter counts differ (cloze ${ours.params}, torch ${torch.params})`);
    const table = mlmTable(ours, torch);
    console.log('\ntokens/s = B·L ÷ median step time; cloze/torch = cloze tokens/s ÷ torch tokens/s');
    printTable(table.columns, table.rows);
    // The same step with the stacked QKV projection and the fused dropout + residual add switched off (setFusions):
    // what those two fusions give on this GPU, from this run.
    const unfused = runOurMlm({ ...opts, fusions: { qkv: false, residual: false } });
    if (unfused.ok && ours.ok) {
      console.log(`cloze without the QKV and residual fusions: ${unfused.medianMs.toFixed(2)} ms per step; with them ${(unfused.medianMs / ours.medianMs).toFixed(3)}× faster` +
        ` (first losses ${unfused.losses.slice(0, 3).map((l) => l.toFixed(3)).join(' ')} against ${ours.losses.slice(0, 3).map((l) => l.toFixed(3)).join(' ')})`);
    } else if (!unfused.ok) {
      console.log(`  cloze without the fusions FAILED: ${unfused.error}`);
    }
    mlm = { opts, ours, torch, table };
  }

  let profile: ReturnType<typeof profileOurMlm> | null = null;
  let hostProfile: ReturnType<typeof profileOurMlm> | null = null;
  if (a.profile && (a.only === 'all' || a.only === 'mlm')) {
    const opts: MlmRunOptions = { B: a.mlmBatch, L: a.mlmLength, maskRatio: 0.15, seed: 1234, warmup: 1, reps: 3 };
    section(`Profile of our MLM step (B=${opts.B} L=${opts.L}), the device drained around every native call`);
    console.log('Each call holds its own kernels, so host and device do not overlap: the step is slower than above; the shares say where the time goes.');
    profile = profileOurMlm(opts);
    if (profile.ok) printProfile(profile.report);
    else console.log(`  profile FAILED: ${profile.error}`);
    section(`Host side of our MLM step (B=${opts.B} L=${opts.L}): the same profiler, the device not drained`);
    console.log("Each call's time is the host's cost to check and enqueue it, plus any wait for the device inside the call (index checks,");
    console.log("the embedding backward's plan); the step's final wait for the device (reading the loss) lands in JS overhead.");
    hostProfile = profileOurMlm(opts, false);
    if (hostProfile.ok) printProfile(hostProfile.report);
    else console.log(`  host profile FAILED: ${hostProfile.error}`);
  }

  let masked: { rows: MaskedRow[]; table: Table } | null = null;
  if (a.only === 'all' || a.only === 'masked') masked = runMasked(a, timing);

  // Targets, torch facts, files.
  const torchRuns: Array<PyOutcome<TorchCudaFacts>> = [
    ...(attention?.rows.map((r) => r.torch) ?? []), ...(mlm ? [mlm.torch] : []), ...(masked?.rows.map((r) => r.torch) ?? []),
  ];
  const torchFacts: TorchCudaFacts | null = torchRuns.find((t): t is TorchCudaFacts & { ok: true } => t.ok) ?? null;
  section('Targets');
  if (torchFacts) console.log(`torch ${torchFacts.torch} (CUDA ${torchFacts.cuda}, ${torchFacts.python}) on ${torchFacts.device}`);
  const lines: string[] = [];
  if (attention) {
    for (const r of attention.rows) {
      const x = attentionRatios(r).fwdBwd;
      lines.push(`attention fwd+bwd L=${r.case.L}, target cloze ≥ ${ATTENTION_TARGET.toFixed(1)}× SDPA flash: ${targetText(x, ATTENTION_TARGET)}`);
    }
  }
  if (mlm) {
    const x = mlmRatio(mlm.ours, mlm.torch);
    lines.push(`MLM step tokens/s, target cloze ≥ ${MLM_TARGET.toFixed(1)}× PyTorch eager: ${targetText(x, MLM_TARGET)}`);
    const peak = bf16PeakTflops(gpu.name);
    const mfu = (maskedRows: number, ms: number): string => {
      const flops = mlmStepFlops({ B: mlm!.opts.B, L: mlm!.opts.L, maskedRows, layers: 12, hidden: 768, ffn: 3072, vocab: 30522 });
      return peak ? `${((100 * tflops(flops, ms)) / peak).toFixed(1)}% (${tflops(flops, ms).toFixed(0)} TFLOP/s)` : `${tflops(flops, ms).toFixed(0)} TFLOP/s (no peak listed for this GPU)`;
    };
    const parts: string[] = [];
    if (mlm.ours.ok) parts.push(`cloze ${mfu(mlm.ours.maskedRows, mlm.ours.medianMs)}`);
    if (mlm.torch.ok) parts.push(`torch ${mfu(mlm.torch.masked_rows, mlm.torch.median_ms)}`);
    lines.push(`MLM step MFU (model FLOPs ÷ step time ÷ ${peak ?? '?'} TFLOP/s bf16 dense peak), target cloze ≥ 50%: ${parts.join(', ') || 'not measured'}`);
  }
  for (const l of lines) console.log(l);

  const info = runtimeInfo();
  const date = new Date().toISOString();
  if (a.out) {
    const json = {
      bench: 'bench:cuda', date, git: gitRevision(), node: process.version, addon: info.addon, backend: info.backend,
      gpu, torch: torchFacts ? { version: torchFacts.torch, cuda: torchFacts.cuda, python: torchFacts.python, device: torchFacts.device } : null,
      options: a,
      conventions: {
        attentionFlops: ATTENTION_FLOPS_CONVENTION,
        ratio: 'cloze/torch = torch time ÷ cloze time (attention), cloze tokens/s ÷ torch tokens/s (MLM)',
        timing: 'cudaSynchronize, host clock, batch of calls, cudaSynchronize; median over samples',
      },
      attention: attention?.rows.map((r) => ({ ...r, ratio: attentionRatios(r) })) ?? null,
      mlm: mlm ? { preset: MLM_PRESET, ...mlm.opts, ours: mlm.ours, torch: mlm.torch, ratio: mlmRatio(mlm.ours, mlm.torch) } : null,
      masked: masked ? { shape: MASKED_SHAPE, rows: masked.rows.map((r) => ({ ...r, ratio: maskedRatio(r) })) } : null,
      profile,
      hostProfile,
      targets: lines,
    };
    const md = [
      '# bench:cuda results', '',
      `- date: ${date}${json.git ? `, git ${json.git}` : ''}`,
      `- GPU: ${describeGpu(gpu)}`,
      `- torch: ${torchFacts ? `${torchFacts.torch}, CUDA ${torchFacts.cuda}` : 'not run'}`,
      ...(attention ? [
        `- attention timing: warm-up ${a.warmup}, median of ${a.reps} samples, each a batch of calls lasting ≥ ${a.minSampleMs} ms between two device synchronizations`,
        `- ${ATTENTION_FLOPS_CONVENTION}; cloze/torch = torch ms ÷ cloze ms`,
      ] : []),
      ...(mlm ? [`- MLM timing: warm-up ${a.mlmWarmup}, median of ${a.mlmReps} steps, each between two device synchronizations; cloze/torch = tokens/s ratio`] : []),
      '',
      ...(attention ? [`## Attention, bf16, B·L = ${a.tokens}, H = ${a.heads}, Dh = ${a.headDim}, vs SDPA (flash forced)`, '', markdownTable(attention.table), ''] : []),
      ...(mlm ? [`## MLM training step, ${MLM_PRESET}, B=${mlm.opts.B} L=${mlm.opts.L}, 15% masked, bf16`, '', markdownTable(mlm.table), ''] : []),
      ...(masked ? ['## Masked-token kernels, bf16, forward + backward, vs PyTorch', '', markdownTable(masked.table), ''] : []),
      '## Targets', '', ...lines.map((l) => `- ${l}`), '',
    ].join('\n');
    const files = writeResults(a.out, json, md);
    console.log(`\nwrote ${files.join(', ')}`);
  }
  console.log(`total bench time ${((nowMs() - t0) / 1000).toFixed(0)} s`);
  const oursFailed = (attention?.rows.some((r) => !r.ours.ok || r.general?.ok === false) ?? false) || (mlm !== null && !mlm.ours.ok) || (masked?.rows.some((r) => !r.ours.ok) ?? false);
  if (oursFailed) process.exitCode = 1;
}

main();
