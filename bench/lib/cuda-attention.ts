/**
 * Attention on the GPU, bfloat16, forward and backward: our fused kernel
 * through the native API against PyTorch's SDPA with the flash backend
 * forced (bench/baselines/attention_sdpa.py), at a fixed token count B·L.
 *
 * Ours: q, k, v, dout are [B, L, H, Dh] bf16 cuda tensors of N(0, 1)
 * values; fwd = attention(q, k, v, {scale}) → {out, lse}; bwd =
 * attentionBackward(dout, q, k, v, out, lse, {scale}) on one kept forward;
 * fwd+bwd = both. Outputs are disposed every call (back to the caching
 * allocator), as a training step frees them. Ours runs twice: as dispatched
 * (the mma kernels' unmasked fast path at these shapes) and with mmaGeneral
 * (the same kernels on their general per-element logit), so that one GPU run
 * measures what the fast path gains.
 */
import { native } from '../../src/native/loader.js';
import type { NativeTensor } from '../../src/native/types.js';
import { Rng } from '../../src/rng.js';
import { timeGpu, type GpuTiming, type GpuTimingOptions } from './cuda-device.js';
import { runTorchCuda, type PyOutcome, type TorchCudaFacts } from './cuda-torch.js';
import { attentionFlops, type AttentionFlops } from './flops.js';

export interface AttentionCase {
  B: number;
  L: number;
  H: number;
  Dh: number;
}

export interface AttentionTimings {
  fwd: GpuTiming;
  bwd: GpuTiming;
  fwdBwd: GpuTiming;
  /** Peak device bytes during fwd+bwd, inputs included. */
  peakBytes: number;
}

export type OurAttentionOutcome = ({ ok: true } & AttentionTimings) | { ok: false; error: string };

interface PyTiming {
  median_ms: number;
  min_ms: number;
  max_ms: number;
  samples_ms: number[];
  batch: number;
}

export interface TorchAttention extends TorchCudaFacts {
  backend: string;
  fwd: PyTiming;
  bwd: PyTiming;
  fwd_bwd: PyTiming;
  peak_bytes: number;
}

/** [B, L, H, Dh] bf16 on cuda, N(0, 1) values from a seeded Rng. */
function randomBf16(shape: readonly number[], rng: Rng): NativeTensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  for (let i = 0; i < n; i++) values[i] = rng.normal();
  const t = native().empty('bfloat16', shape, 'cuda');
  t.write(values);
  return t;
}

export function timeOurAttention(c: AttentionCase, o: GpuTimingOptions, extra: { mmaGeneral?: boolean } = {}): OurAttentionOutcome {
  const n = native();
  const shape = [c.B, c.L, c.H, c.Dh];
  const rng = new Rng(1);
  const owned: NativeTensor[] = [];
  try {
    const [q, k, v, dout] = [0, 1, 2, 3].map(() => {
      const t = randomBf16(shape, rng);
      owned.push(t);
      return t;
    }) as [NativeTensor, NativeTensor, NativeTensor, NativeTensor];
    const opts = { scale: 1 / Math.sqrt(c.Dh), ...extra };
    const fwd = (): void => {
      const r = n.attention(q, k, v, opts);
      r.out.dispose();
      r.lse.dispose();
    };
    const kept = n.attention(q, k, v, opts);
    owned.push(kept.out, kept.lse);
    const bwd = (): void => {
      const g = n.attentionBackward(dout, q, k, v, kept.out, kept.lse, opts);
      g.dq.dispose();
      g.dk.dispose();
      g.dv.dispose();
    };
    const fwdBwd = (): void => {
      const r = n.attention(q, k, v, opts);
      const g = n.attentionBackward(dout, q, k, v, r.out, r.lse, opts);
      for (const t of [r.out, r.lse, g.dq, g.dk, g.dv]) t.dispose();
    };
    const tFwd = timeGpu(fwd, o);
    const tBwd = timeGpu(bwd, o);
    n.cudaSynchronize();
    n.cudaResetPeak();
    const tBoth = timeGpu(fwdBwd, o);
    return { ok: true, fwd: tFwd, bwd: tBwd, fwdBwd: tBoth, peakBytes: n.cudaMemStats().peakBytes };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0]! };
  } finally {
    for (const t of owned) t.dispose();
    // Give the memory back before the torch child needs the GPU. After a
    // failed kernel this throws again; the first error is the one reported.
    try {
      n.cudaSynchronize();
      n.cudaReleaseCache();
    } catch {
      // already reported above
    }
  }
}

export function runTorchAttention(python: string, c: AttentionCase, o: GpuTimingOptions): PyOutcome<TorchAttention> {
  return runTorchCuda<TorchAttention>(python, 'attention_sdpa.py', [
    '--batch', String(c.B), '--heads', String(c.H), '--head-dim', String(c.Dh), '--length', String(c.L),
    '--warmup', String(o.warmup), '--reps', String(o.reps), '--min-sample-ms', String(o.minSampleMs ?? 50),
  ]);
}

export interface AttentionRow {
  case: AttentionCase;
  flops: AttentionFlops;
  ours: OurAttentionOutcome;
  /** Ours on the mma kernels' general path (mmaGeneral); absent in results written before it was timed. */
  general?: OurAttentionOutcome;
  torch: PyOutcome<TorchAttention>;
}

/** Both sides of one length; ours first, then the torch child on a GPU we no longer hold memory on. */
export function runAttentionCase(python: string, c: AttentionCase, o: GpuTimingOptions): AttentionRow {
  const ours = timeOurAttention(c, o);
  const general = timeOurAttention(c, o, { mmaGeneral: true });
  const torch = runTorchAttention(python, c, o);
  return { case: c, flops: attentionFlops(c.B, c.H, c.L, c.Dh), ours, general, torch };
}
