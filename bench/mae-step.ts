/**
 * `npm run bench:mae-step`: one MAE training step of cloze's ViT (vit-mini-fmnist:
 * D=128, 6 blocks, decoder 96×2, 28×28 patch 4 → 49 tokens, ratio 0.75) against
 * the plain-torch.nn reference of the same model (bench/baselines/mae_torch.py)
 * at its faster thread setting, in one run; then the encoder cost of MAE
 * (visible tokens only) against SimMIM (all tokens), forward + backward, for
 * both implementations. tokens/s counts all B·L image patches of a step.
 * Options: `--help`.
 */
import { availableParallelism } from 'node:os';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AdamW, backward, mean, Rng, scope, setNumThreads, tensor, type Tensor } from '../src/index.js';
import { vitPreset } from '../src/models/vit/config.js';
import { MimModel } from '../src/tasks/mim/model.js';
import { mimSettings } from '../src/tasks/mim/settings.js';
import { keepCount, randomScores } from '../src/tasks/mim/masking.js';
import { assembleTokens, maskFromScores } from '../src/ops/mim_tokens.js';
import { resolveConfig } from '../src/tasks/config.js';
import { intList, positiveInt } from './lib/args.js';
import { ContentionMeter, describeContention } from './lib/contention.js';
import { parseOrExit, printHeader } from './lib/header.js';
import { fmt, fmtMs, fmtRatio, printTable, section } from './lib/table.js';
import { timeIt } from './lib/timing.js';

const USAGE = 'usage: npm run bench:mae-step -- [--threads N] [--torch-threads 1,2] [--batch 128] [--warmup 3] [--reps 7] [--python /usr/bin/python3 | --no-torch]';

interface Args { threads: number; torchThreads: number[]; batch: number; warmup: number; reps: number; python: string }

function parseArgs(argv: readonly string[]): Args {
  const a: Args = { threads: availableParallelism(), torchThreads: [1, 2], batch: 128, warmup: 3, reps: 7, python: process.env.CLOZE_TORCH_PYTHON ?? '/usr/bin/python3' };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const v = argv[i + 1];
    switch (k) {
      case '--threads': a.threads = positiveInt(k, v, USAGE); i++; break;
      case '--torch-threads': a.torchThreads = intList(k, v, USAGE); i++; break;
      case '--batch': a.batch = positiveInt(k, v, USAGE); i++; break;
      case '--warmup': a.warmup = positiveInt(k, v, USAGE); i++; break;
      case '--reps': a.reps = positiveInt(k, v, USAGE); i++; break;
      case '--python': a.python = v ?? ''; i++; break;
      case '--no-torch': a.python = ''; break;
      case '--help': case '-h': console.log(USAGE); process.exit(0); break;
      default: throw new Error(`Expected an option for bench:mae-step but received ${k}\n${USAGE}`);
    }
  }
  return a;
}

type Mode = 'step' | 'simmim-encoder' | 'mae-encoder';
const PRESET = 'vit-mini-fmnist';

function timeOurs(a: Args, mode: Mode): { ms: number; samples: number[]; losses: number[] } {
  const c = vitPreset(PRESET).config;
  const cfg = resolveConfig({ task: 'mim', method: 'mae', maskRatio: 0.75 });
  const model = new MimModel(c, mimSettings(cfg, c.decoderDepth), 0);
  const opt = mode === 'step' ? new AdamW(model.trainableParameters(), { lr: 1.5e-4, betas: [0.9, 0.95], weightDecay: 0.05 }) : null;
  const rng = new Rng(1);
  const B = a.batch;
  const L = model.numPatches;
  const images = tensor(Float32Array.from({ length: B * 28 * 28 }, () => rng.normal()), [B, 1, 28, 28]);
  const losses: number[] = [];
  let k = 0;
  const run = (): void => {
    scope(() => {
      let loss: Tensor;
      if (mode === 'step') {
        opt!.zeroGrad();
        loss = model.loss(images, { k: k++, epoch: 0, epochs: 1 }).loss;
      } else {
        const enc = model.encoder;
        let x = enc.withPos(enc.embed(images).x);
        if (mode === 'mae-encoder') x = assembleTokens(x, maskFromScores(randomScores(B, L, 0, k++), keepCount(L, 0.75)).idsKeep, null);
        loss = mean(enc.encode(x).out);
      }
      losses.push(loss.item());
      backward(loss);
      opt?.step();
      if (!opt) model.zeroGrad();
    });
  };
  // One call per sample (a step lasts far longer than the timer's resolution).
  const t = timeIt(run, { warmup: a.warmup, reps: a.reps, minSampleMs: 0 });
  opt?.dispose();
  model.dispose();
  images.dispose();
  return { ms: t.medianMs, samples: t.samples, losses };
}

interface TorchOut { ok: boolean; error?: string; median_ms: number; tokens_per_s: number; threads: number; torch: string; blas: string; params: number; losses: number[] }

function timeTorch(a: Args, mode: Mode, threads: number): TorchOut {
  const script = ['../../bench/baselines/mae_torch.py', '../bench/baselines/mae_torch.py'].map((r) => fileURLToPath(new URL(r, import.meta.url))).find(existsSync);
  if (!a.python) return { ok: false, error: 'disabled (--no-torch)' } as TorchOut;
  if (!script) return { ok: false, error: 'bench/baselines/mae_torch.py not found' } as TorchOut;
  const c = vitPreset(PRESET).config;
  const args = [script, '--img', '28', '--patch', String(c.patch), '--chans', '1', '--dim', String(c.dim), '--depth', String(c.depth), '--heads', String(c.heads),
    '--dec-dim', String(c.decoderDim), '--dec-depth', String(c.decoderDepth), '--dec-heads', String(c.decoderHeads), '--batch', String(a.batch),
    '--ratio', '0.75', '--steps', String(a.reps), '--warmup', String(a.warmup), '--threads', String(threads)];
  if (mode !== 'step') args.push(`--${mode}`);
  const n = String(threads);
  const r = spawnSync(a.python, args, { encoding: 'utf8', timeout: 600_000, env: { ...process.env, OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n } });
  if (r.error) return { ok: false, error: `could not run ${a.python}: ${r.error.message}` } as TorchOut;
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as TorchOut;
  } catch {
    return { ok: false, error: `${a.python} exited with status ${r.status}: ${(r.stderr || r.stdout).trim().split('\n').slice(-2).join(' | ')}` } as TorchOut;
  }
}

function main(): void {
  const a = parseOrExit(parseArgs);
  if (!a) return;
  setNumThreads(a.threads);
  const whole = new ContentionMeter();
  const c = vitPreset(PRESET).config;
  const B = a.batch;
  const L = (c.imageSize[0] / c.patch) * (c.imageSize[1] / c.patch);
  printHeader('bench:mae-step');
  console.log(`model     ${PRESET}: D=${c.dim}, ${c.depth} blocks, ${c.heads} heads; decoder ${c.decoderDim}×${c.decoderDepth}; ${L} tokens, 12 visible; batch ${B}; warm-up ${a.warmup}, median of ${a.reps}`);
  const results: Record<Mode, { ours: ReturnType<typeof timeOurs>; torch: TorchOut[] }> = {} as never;
  for (const mode of ['step', 'simmim-encoder', 'mae-encoder'] as Mode[]) {
    const m = new ContentionMeter();
    const ours = timeOurs(a, mode);
    const torch = a.torchThreads.map((t) => timeTorch(a, mode, t));
    results[mode] = { ours, torch };
    console.log(`  ${mode} done (${describeContention(m.othersShare())})`);
    for (const t of torch) if (!t.ok) console.log(`  torch skipped: ${t.error}`);
  }
  const tps = (ms: number): number => (B * L) / (ms / 1000);
  section('MAE training step (forward, backward, AdamW)');
  const step = results.step;
  const okTorch = step.torch.filter((t) => t.ok);
  const best = okTorch.reduce<TorchOut | null>((b, t) => (!b || t.median_ms < b.median_ms ? t : b), null);
  printTable(
    [{ header: 'impl', align: 'l' }, { header: 'step ms' }, { header: 'tokens/s' }, { header: 'cloze vs this' }, { header: 'first losses', align: 'l' }],
    [
      ['cloze', fmtMs(step.ours.ms), fmt(tps(step.ours.ms), 0), '-', step.ours.losses.slice(0, 3).map((l) => l.toFixed(3)).join(' ')],
      ...okTorch.map((t) => [`torch ${t.threads}T`, fmtMs(t.median_ms), fmt(t.tokens_per_s, 0), fmtRatio(t.median_ms / step.ours.ms), t.losses.slice(0, 3).map((l) => l.toFixed(3)).join(' ')]),
    ],
  );
  if (best) console.log(`torch ${best.torch}, BLAS ${best.blas}; cloze tokens/s ÷ torch's at its faster setting (${best.threads} thread(s)): ${fmtRatio(best.median_ms / step.ours.ms)}`);
  section('Encoder cost at ratio 0.75: MAE (12 visible tokens) vs SimMIM (all 49), forward + backward');
  const rows: string[][] = [];
  const enc = (impl: string, sim: number, mae: number): string[] => [impl, fmtMs(sim), fmtMs(mae), fmtRatio(sim / mae)];
  rows.push(enc('cloze', results['simmim-encoder'].ours.ms, results['mae-encoder'].ours.ms));
  for (let i = 0; i < a.torchThreads.length; i++) {
    const s = results['simmim-encoder'].torch[i]!;
    const m = results['mae-encoder'].torch[i]!;
    if (s.ok && m.ok) rows.push(enc(`torch ${s.threads}T`, s.median_ms, m.median_ms));
  }
  printTable([{ header: 'impl', align: 'l' }, { header: 'SimMIM encoder ms' }, { header: 'MAE encoder ms' }, { header: 'SimMIM ÷ MAE' }], rows);
  console.log(`\n${describeContention(whole.othersShare())}`);
}

main();
