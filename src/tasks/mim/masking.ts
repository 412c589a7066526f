/**
 * Which patches a MIM method removes. MAE-style selections end in per-token
 * scores whose lowest `keep` are kept (maskFromScores, natively): uniform
 * noise (random), salience plus noise (SBAM), predicted loss (HPM). SimMIM's
 * block masks go straight to a uint8 mask, since SimMIM never gathers.
 * Every draw is a pure function of (seed, micro-batch k). Draws that end on
 * the host (block masks, SBAM's and HPM's scores) are built there and handed
 * to the step's device once; the CPU gets them as before.
 */
import { noGrad } from '../../autograd/mode.js';
import { ClozeError } from '../../errors.js';
import { softmax } from '../../ops/softmax.js';
import { matmul } from '../../ops/linalg.js';
import { uniformNoise } from '../../ops/mim_tokens.js';
import { Rng } from '../../rng.js';
import { ones, tensor, type Tensor } from '../../tensor.js';
import type { Device } from '../../native/types.js';

/** Independent seed streams for the draws of one micro-batch. */
export const STREAM = { noise: 1, block: 2, sbam: 3, hpm: 4, augment: 5 } as const;

export function streamSeed(seed: number, stream: number): number {
  return (seed * 16 + stream) % 2 ** 31;
}

/** Kept tokens for ratio r, as MAE: int(L · (1 − r)). */
export function keepCount(L: number, ratio: number): number {
  return Math.max(0, Math.min(L, Math.floor(L * (1 - ratio) + 1e-9)));
}

/** MAE's random masking: U(0, 1) noise per token from Philox, drawn on `device` (the same values on either). */
export function randomScores(B: number, L: number, seed: number, k: number, device: Device = 'cpu'): Tensor {
  return uniformNoise([B, L], streamSeed(seed, STREAM.noise), k, 0, 1, device);
}

/**
 * Masked tokens per image of SimMIM's generator. The official MaskGenerator
 * (microsoft/SimMIM data/data_simmim.py) asserts that the mask patch divides the
 * image and masks ceil(blocks·r) whole blocks; where m divides the token grid this
 * is exactly that count. Where it does not (ours: 7×7 tokens, m = 2) the count is
 * ceil(L·r) tokens, the same ceil applied per token (and MAE's count, L − int(L·(1 − r))).
 */
export function simmimMaskCount(gh: number, gw: number, m: number, ratio: number): number {
  const L = gh * gw;
  if (gh % m === 0 && gw % m === 0) {
    const nBlocks = (gh / m) * (gw / m);
    return Math.min(nBlocks, Math.ceil(nBlocks * ratio - 1e-9)) * m * m;
  }
  return Math.min(L, Math.max(0, Math.ceil(L * ratio - 1e-9)));
}

/**
 * SimMIM's mask generator: the token grid is tiled by m×m blocks (cropped at the
 * far edges when m does not divide the grid), the tiles are visited in a random
 * order and masked whole while they fit in the count of simmimMaskCount; the
 * first tile that does not fit gets the remaining tokens (its first ones in
 * raster order) and ends the draw. So every image has exactly that count masked,
 * and every tile is masked entirely or not at all except at most one. On a grid m
 * divides, the count is a multiple of m² and no tile is partial (the official rule).
 * Returns uint8 [B, L], 1 = masked.
 */
export function blockMask(B: number, gh: number, gw: number, m: number, ratio: number, seed: number, k: number): Tensor {
  const bh = Math.ceil(gh / m);
  const bw = Math.ceil(gw / m);
  const nBlocks = bh * bw;
  const count = simmimMaskCount(gh, gw, m, ratio);
  const rng = new Rng(streamSeed(seed, STREAM.block) * 1_000_003 + k);
  const L = gh * gw;
  const mask = new Uint8Array(B * L);
  const order = new Int32Array(nBlocks);
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < nBlocks; i++) order[i] = i;
    // Fisher–Yates, drawn lazily: the first i entries are a uniform draw without replacement.
    let left = count;
    for (let i = 0; i < nBlocks && left > 0; i++) {
      const j = i + rng.int(nBlocks - i);
      const t = order[i]!;
      order[i] = order[j]!;
      order[j] = t;
      const by = Math.floor(order[i]! / bw);
      const bx = order[i]! % bw;
      for (let y = by * m; y < Math.min(gh, (by + 1) * m) && left > 0; y++) {
        for (let x = bx * m; x < Math.min(gw, (bx + 1) * m) && left > 0; x++) {
          mask[b * L + y * gw + x] = 1;
          left--;
        }
      }
    }
  }
  return tensor(mask, [B, L], 'uint8');
}

export interface SbamDraw {
  scores: Tensor;
  /** The batch's adaptive mask ratio. */
  ratio: number;
  /** Mean share of tokens above the salience threshold. */
  rho: number;
}

/**
 * SBAM (official code's rule): salience s_j = Σ_i softmax_j(X·Xᵀ)_ij of the
 * embedded patches (positions added, before any block), min–max normalised per
 * image; score = ŝ + U(0, 0.5), lowest kept, so salient patches are masked
 * first. The ratio adapts: r = base − Δ + 2Δ·ρ with ρ the share of ŝ > δ.
 * The column sums are read back (the ratio is a host number); the scores go
 * back to x's device.
 */
export function sbamScores(
  x: Tensor,
  o: {
    base: number; delta: number; threshold: number; seed: number; k: number;
    /** Data parallel: x is rows [before, before + B) of a global batch of `batch`; its noise is those rows' draws. */
    shard?: { before: number; batch: number };
    /** Data parallel: the ranks' sum of the salient-patch count, so that ρ is the global batch's. */
    sumAcross?: (xs: readonly number[]) => number[];
  },
): SbamDraw {
  return noGrad(() => {
    const [B, L] = x.shape as [number, number, number];
    const attn = softmax(matmul(x, x, { transB: true }));
    const colSum = matmul(ones([B, 1, L], x.dtype, x.device), attn).toArray();
    const noise = o.shard
      ? uniformNoise([o.shard.batch, L], streamSeed(o.seed, STREAM.sbam), o.k, 0, 0.5).toArray().subarray(o.shard.before * L, (o.shard.before + B) * L)
      : uniformNoise([B, L], streamSeed(o.seed, STREAM.sbam), o.k, 0, 0.5).toArray();
    const scores = new Float32Array(B * L);
    let above = 0;
    for (let b = 0; b < B; b++) {
      let lo = Infinity;
      let hi = -Infinity;
      for (let j = 0; j < L; j++) {
        const v = colSum[b * L + j]!;
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      for (let j = 0; j < L; j++) {
        const s = (colSum[b * L + j]! - lo) / (hi - lo + 1e-6);
        if (s > o.threshold) above++;
        scores[b * L + j] = s + noise[b * L + j]!;
      }
    }
    const rho = o.sumAcross && o.shard ? o.sumAcross([above])[0]! / (o.shard.batch * L) : above / (B * L);
    const ratio = Math.min(1, Math.max(0, o.base - o.delta + 2 * o.delta * rho));
    return { scores: tensor(scores, [B, L], 'float32', x.device), ratio, rho };
  });
}

/**
 * HPM's easy-to-hard selection: of the N_mask = L − keep masked patches
 * (L − int(0.25·L) at ratio 0.75), the int(α_t·N_mask) with the highest
 * predicted loss are chosen, α_t = 0.5·(epoch+1)/T, and the rest of the masked patches are
 * drawn uniformly from the others. Scores: hard patches get 2 + rank (never
 * kept), the others U(0, 1). The scores are made on `o.device` (default the CPU).
 */
export function hpmScores(
  predLoss: Float32Array | Float64Array, B: number, L: number, keep: number,
  o: {
    epoch: number; epochs: number; seed: number; k: number; device?: Device;
    /** Data parallel: these are rows [before, before + B) of a global batch of `batch`; the noise is those rows' draws. */
    shard?: { before: number; batch: number };
  },
): { scores: Tensor; hard: number } {
  if (predLoss.length !== B * L) throw new ClozeError('E_SHAPE', `Expected ${B * L} predicted losses for hpmScores but received ${predLoss.length}`);
  const nMask = L - keep;
  const alpha = Math.min(0.5, (0.5 * (o.epoch + 1)) / Math.max(1, o.epochs));
  const hard = Math.floor(alpha * nMask);
  const noise = o.shard
    ? uniformNoise([o.shard.batch, L], streamSeed(o.seed, STREAM.hpm), o.k).toArray().subarray(o.shard.before * L, (o.shard.before + B) * L)
    : uniformNoise([B, L], streamSeed(o.seed, STREAM.hpm), o.k).toArray();
  const scores = new Float32Array(B * L);
  const order = new Int32Array(L);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < L; j++) {
      order[j] = j;
      scores[b * L + j] = noise[b * L + j]!;
    }
    const row = predLoss.subarray(b * L, (b + 1) * L);
    order.sort((i, j) => row[j]! - row[i]! || i - j);
    for (let r = 0; r < hard; r++) scores[b * L + order[r]!] = 2 + r;
  }
  return { scores: tensor(scores, [B, L], 'float32', o.device ?? 'cpu'), hard };
}
