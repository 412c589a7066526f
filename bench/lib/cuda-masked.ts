/**
 * The masked-token kernels against their PyTorch counterparts (issue 21):
 * each case is one forward + backward through the native API, with the
 * PyTorch baseline in bench/baselines/masked_ops_torch.py.
 *
 *   mlm-head      linearCrossEntropy + its backward (dh, dW, db): the fused
 *                 MLM head on the masked rows, M = 15% of 256 × 128;
 *                 PyTorch: cross_entropy(linear(h, W, b)) under autocast.
 *   token-gather  assembleTokens at MAE's ids_keep (K of L tokens) + its
 *                 backward; PyTorch: torch.gather and its scatter-add.
 *   patch-loss    maskedPatchLoss (MSE, normalised target pixels) + the
 *                 gradient for pred; PyTorch: MAE's forward_loss.
 *   sparse-conv   SparK's submanifold 3×3 convolution on the visible sites
 *                 (sparseConv + its backward, dx and dW), the rulebook built
 *                 once outside the timed step as SparK reuses it for every
 *                 conv of a scale; PyTorch: the official masked-dense form
 *                 (SparK's sp_conv_forward), conv2d(x)·mask on the whole map
 *                 with x zero at the masked sites, under autocast.
 *
 * The cases build on any device and dtype (cuda bf16 in the bench; the CPU
 * in float32 for test/bench-cuda-masked.test.ts, which checks them there).
 */
import { native } from '../../src/native/loader.js';
import type { Device, DType, NativeTensor } from '../../src/native/types.js';
import { Rng } from '../../src/rng.js';
import { timeGpu, type GpuTiming, type GpuTimingOptions } from './cuda-device.js';
import { runTorchCuda, type PyOutcome, type TorchCudaFacts } from './cuda-torch.js';

export type MaskedCaseName = 'mlm-head' | 'token-gather' | 'patch-loss' | 'sparse-conv';
export const MASKED_CASES: readonly MaskedCaseName[] = ['mlm-head', 'token-gather', 'patch-loss', 'sparse-conv'];

export interface MaskedShape {
  /** mlm-head: masked rows M, width D, vocabulary V. */
  rows: number;
  hidden: number;
  vocab: number;
  /** token-gather and patch-loss: images B, tokens L; token-gather keeps K; patch-loss has P pixels per patch. */
  batch: number;
  tokens: number;
  keep: number;
  patch: number;
  maskRatio: number;
  /** sparse-conv: images, map side, channels (in = out), mask cell side (the map is cut into cells masked whole), masked share of cells. */
  convBatch: number;
  convSize: number;
  convChannels: number;
  convCell: number;
  convRatio: number;
}

/**
 * BERT-base's head at batch 256 × 128 (15% masked); ViT-B/16 MAE at 224² (196 patches of 768, 75% masked); and a
 * 3×3 conv of SparK's ResNet-50 at its first stage for 224² inputs (56 × 56, 64 channels), batch 64, its mask of 7 × 7
 * cells (one per 32 input pixels, 8 × 8 sites here) at SparK's ratio 0.6.
 */
export const MASKED_SHAPE: MaskedShape = {
  rows: Math.round(256 * 128 * 0.15), hidden: 768, vocab: 30522, batch: 256, tokens: 196, keep: 49, patch: 768, maskRatio: 0.75,
  convBatch: 64, convSize: 56, convChannels: 64, convCell: 8, convRatio: 0.6,
};

export interface MaskedCase {
  name: MaskedCaseName;
  /** One forward + backward; every output is disposed. */
  step(): void;
  /** The case's inputs (for a reference computation in the tests). */
  inputs: Record<string, NativeTensor>;
  /** The forward's outputs of one step, kept (loss, or the gathered tokens), then the backward's gradients. */
  run(): { out: NativeTensor; grads: NativeTensor[] };
  dispose(): void;
}

function randomTensor(shape: readonly number[], rng: Rng, dtype: DType, device: Device, scale = 1, uniform = false): NativeTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = (uniform ? rng.uniform() : rng.normal()) * scale;
  return filled(native().empty(dtype, shape, device), values);
}

/** t with values written, disposed if the write throws. */
function filled(t: NativeTensor, values: Float32Array | Int32Array | Uint8Array): NativeTensor {
  try {
    t.write(values);
    return t;
  } catch (e) {
    t.dispose();
    throw e;
  }
}

function intTensor(values: ArrayLike<number>, shape: readonly number[], dtype: 'int32' | 'uint8', device: Device): NativeTensor {
  return filled(native().empty(dtype, shape, device), dtype === 'int32' ? Int32Array.from(values) : Uint8Array.from(values));
}

/** Runs the backward on the forward's output, disposing that output if the backward throws. */
function thenBackward(out: NativeTensor, backward: () => NativeTensor[]): { out: NativeTensor; grads: NativeTensor[] } {
  try {
    return { out, grads: backward() };
  } catch (e) {
    out.dispose();
    throw e;
  }
}

/** A random permutation of [0, n) per row (Fisher–Yates). */
function permutation(n: number, rng: Rng): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

export function buildMaskedCase(name: MaskedCaseName, s: MaskedShape, device: Device, dtype: DType, seed = 1): MaskedCase {
  const n = native();
  const rng = new Rng(seed);
  const owned: NativeTensor[] = [];
  const keep = <T extends NativeTensor>(t: T): T => {
    owned.push(t);
    return t;
  };
  const dispose = (): void => {
    for (const t of owned) t.dispose();
    owned.length = 0;
  };
  try {
    if (name === 'mlm-head') {
      const h = keep(randomTensor([s.rows, s.hidden], rng, dtype, device, 0.5));
      const w = keep(randomTensor([s.vocab, s.hidden], rng, dtype, device, 0.02));
      const b = keep(randomTensor([s.vocab], rng, dtype, device, 0.02));
      const t = keep(intTensor(Array.from({ length: s.rows }, () => rng.int(s.vocab)), [s.rows], 'int32', device));
      const run = (): { out: NativeTensor; grads: NativeTensor[] } => {
        const r = n.linearCrossEntropy(h, w, b, t, -100, 4096);
        try {
          return thenBackward(r.loss, () =>
            n.linearCrossEntropyBackward(1, h, w, b, t, r.lse, -100, r.count, 4096, true, true, true).filter((x): x is NativeTensor => x !== null));
        } finally {
          r.lse.dispose();
        }
      };
      return {
        name, inputs: { h, w, b, targets: t }, run, dispose,
        step: () => {
          const r = run();
          r.out.dispose();
          for (const x of r.grads) x.dispose();
        },
      };
    }
    if (name === 'token-gather') {
      const x = keep(randomTensor([s.batch, s.tokens, s.hidden], rng, dtype, device));
      const ids: number[] = [];
      for (let b = 0; b < s.batch; b++) ids.push(...permutation(s.tokens, rng).slice(0, s.keep));
      const index = keep(intTensor(ids, [s.batch, s.keep], 'int32', device));
      const g = keep(randomTensor([s.batch, s.keep, s.hidden], rng, dtype, device));
      const run = (): { out: NativeTensor; grads: NativeTensor[] } => {
        return thenBackward(n.assembleTokens(x, index, null), () => [n.assembleTokensBackward(g, index, s.tokens, 0, true, false)[0]!]);
      };
      return {
        name, inputs: { x, index, grad: g }, run, dispose,
        step: () => {
          const r = run();
          r.out.dispose();
          for (const t of r.grads) t.dispose();
        },
      };
    }
    if (name === 'sparse-conv') {
      const { convBatch: B, convSize: S, convChannels: C, convCell: cell } = s;
      if (S % cell !== 0) throw new Error(`sparse-conv: the map side ${S} is not a multiple of the mask cell ${cell}`);
      const g = S / cell;
      const masked = Math.round(g * g * s.convRatio);
      const bits = new Uint8Array(B * S * S);
      for (let b = 0; b < B; b++) {
        const hidden = new Set(permutation(g * g, rng).slice(0, masked));
        for (let y = 0; y < S; y++)
          for (let x = 0; x < S; x++) bits[(b * S + y) * S + x] = hidden.has(Math.floor(y / cell) * g + Math.floor(x / cell)) ? 0 : 1;
      }
      const mask = keep(intTensor(bits, [B, S, S], 'uint8', device));
      const sites = n.activeSites(mask);
      keep(sites.coords);
      keep(sites.grid);
      const nbr = keep(n.neighbourTable(sites.grid, sites.coords, 3, 1, 1));
      const N = sites.coords.shape[0]!;
      const x = keep(randomTensor([N, C], rng, dtype, device));
      const w = keep(randomTensor([C, C, 3, 3], rng, dtype, device, 1 / Math.sqrt(9 * C)));
      const gOut = keep(randomTensor([N, C], rng, dtype, device));
      const run = (): { out: NativeTensor; grads: NativeTensor[] } =>
        thenBackward(n.sparseConv(x, w, null, nbr), () =>
          n.sparseConvBackward(gOut, x, w, nbr, true, true, false).filter((t): t is NativeTensor => t !== null));
      return {
        name, inputs: { x, weight: w, grad: gOut, mask, coords: sites.coords, nbr }, run, dispose,
        step: () => {
          const r = run();
          r.out.dispose();
          for (const t of r.grads) t.dispose();
        },
      };
    }
    const pred = keep(randomTensor([s.batch, s.tokens, s.patch], rng, dtype, device));
    const target = keep(randomTensor([s.batch, s.tokens, s.patch], rng, dtype, device, 1, true));
    const masked = Math.round(s.tokens * s.maskRatio);
    const m: number[] = [];
    for (let b = 0; b < s.batch; b++) {
      const row = new Array<number>(s.tokens).fill(0);
      for (const i of permutation(s.tokens, rng).slice(0, masked)) row[i] = 1;
      m.push(...row);
    }
    const mask = keep(intTensor(m, [s.batch, s.tokens], 'uint8', device));
    const opts = { kind: 'mse' as const, normPix: true, eps: 1e-6 };
    const run = (): { out: NativeTensor; grads: NativeTensor[] } => {
      const r = n.maskedPatchLoss(pred, target, mask, opts);
      r.perPatch.dispose();
      return thenBackward(r.loss, () => [n.maskedPatchLossBackward(1, pred, target, mask, opts, true, false)[0]!]);
    };
    return {
      name, inputs: { pred, target, mask }, run, dispose,
      step: () => {
        const r = run();
        r.out.dispose();
        for (const t of r.grads) t.dispose();
      },
    };
  } catch (e) {
    dispose();
    throw e;
  }
}

export interface TorchMasked extends TorchCudaFacts {
  case: string;
  fwd_bwd: { median_ms: number; min_ms: number; max_ms: number; samples_ms: number[]; batch: number };
  loss: number | null;
  peak_bytes: number | null;
}

export interface MaskedRow {
  name: MaskedCaseName;
  ours: ({ ok: true; fwdBwd: GpuTiming; peakBytes: number; loss: number | null }) | { ok: false; error: string };
  torch: PyOutcome<TorchMasked>;
}

/** Ours on cuda in bf16, then the torch child on a GPU we no longer hold memory on. */
export function runMaskedCase(python: string | null, name: MaskedCaseName, s: MaskedShape, o: GpuTimingOptions): MaskedRow {
  const n = native();
  let ours: MaskedRow['ours'];
  let c: MaskedCase | null = null;
  try {
    c = buildMaskedCase(name, s, 'cuda', 'bfloat16');
    const first = c.run();
    const loss = name === 'token-gather' || name === 'sparse-conv' ? null : first.out.read()[0]!;
    first.out.dispose();
    for (const t of first.grads) t.dispose();
    n.cudaSynchronize();
    n.cudaResetPeak();
    const fwdBwd = timeGpu(c.step, o);
    ours = { ok: true, fwdBwd, peakBytes: n.cudaMemStats().peakBytes, loss };
  } catch (e) {
    ours = { ok: false, error: (e as Error).message.split('\n')[0]! };
  } finally {
    c?.dispose();
    try {
      n.cudaSynchronize();
      n.cudaReleaseCache();
    } catch {
      // a failed kernel throws again here; the first error is the one reported
    }
  }
  const torch: PyOutcome<TorchMasked> = python
    ? runTorchCuda<TorchMasked>(python, 'masked_ops_torch.py', [
        '--case', name, '--rows', String(s.rows), '--hidden', String(s.hidden), '--vocab', String(s.vocab),
        '--batch', String(s.batch), '--tokens', String(s.tokens), '--keep', String(s.keep), '--patch', String(s.patch),
        '--mask-ratio', String(s.maskRatio), '--conv-batch', String(s.convBatch), '--conv-size', String(s.convSize),
        '--conv-channels', String(s.convChannels), '--conv-cell', String(s.convCell), '--conv-ratio', String(s.convRatio),
        '--warmup', String(o.warmup), '--reps', String(o.reps),
        '--min-sample-ms', String(o.minSampleMs ?? 50),
      ])
    : { ok: false, error: 'disabled (--no-torch)' };
  return { name, ours, torch };
}
