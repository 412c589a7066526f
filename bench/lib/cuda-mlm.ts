/**
 * A BERT-base MLM training step on the GPU, bfloat16 weights and compute with
 * float32 master weights in AdamW: cloze's BertForMaskedLM moved to cuda
 * against the PyTorch eager reference under bf16 autocast
 * (bench/baselines/bert_mlm_torch.py), on the same xorshift batch
 * (bench/lib/mlm_batch.ts) as the CPU MLM bench.
 *
 * One step, as the trainer runs it on cuda: zeroGrad, loss on the masked rows
 * through the fused head, backward, AdamW.stepClipped(1.0) with the loss as
 * its guard (the norm is read by the AdamW kernel on the device), then the
 * loss and the norm are read once (the one wait of the step), as the torch
 * step ends with loss.item(). The token ids and masked rows are on the device;
 * the targets stay on the host, as the trainer hands them to the fused head,
 * which counts and checks them there before uploading them (a device tensor of
 * targets would be copied back to the host for that check: a wait mid-step). Each sample is one step between two
 * cudaSynchronize() calls on the host clock. No attention mask: every token
 * is real on both sides.
 */
import { AdamW, backward, BertForMaskedLM, bertPreset, type BertPresetName, Profiler, readNorm, scope, setFusions, type Fusions, type PaddedMlmBatch, type ProfileReport, type Tensor } from '../../src/index.js';
import { loadAddon, native } from '../../src/native/loader.js';
import { runTorchCuda, type PyOutcome, type TorchCudaFacts } from './cuda-torch.js';
import { mlmBatch } from './mlm_batch.js';
import { median, nowMs } from './timing.js';

export interface MlmShape {
  B: number;
  L: number;
  maskRatio: number;
  seed: number;
  /** The model (default MLM_PRESET, bert-base); the tests run the step's code on bert-tiny. Ours only. */
  preset?: BertPresetName;
}

export interface MlmRunOptions extends MlmShape {
  warmup: number;
  reps: number;
  /** The layers' fused paths (default all on); off for the ablation line (setFusions). */
  fusions?: Fusions;
}

/** bert-base: 12 layers, hidden 768, 12 heads, FFN 3072, vocabulary 30522, post-LN, hidden dropout 0.1. */
export const MLM_PRESET = 'bert-base' as const;

export interface OurMlm {
  params: number;
  maskedRows: number;
  medianMs: number;
  samplesMs: number[];
  tokensPerS: number;
  losses: number[];
  /** Peak device bytes over the timed steps (cudaMemStats after cudaResetPeak). */
  peakBytes: number;
}

export type OurMlmOutcome = ({ ok: true } & OurMlm) | { ok: false; error: string };

export interface TorchMlm extends TorchCudaFacts {
  attention: string;
  optimizer: string;
  params: number;
  masked_rows: number;
  median_ms: number;
  samples_ms: number[];
  tokens_per_s: number;
  losses: number[];
  peak_bytes: number;
}

const gc = (globalThis as { gc?: () => void }).gc;

/** The bert-base MLM step on cuda in bf16 (the model, one device batch, AdamW with fp32 master weights). */
interface OurMlmSetup {
  /** One training step; returns its loss (reading it waits for the device). */
  step(): number;
  params: number;
  maskedRows: number;
  dispose(): void;
}

function setupOurMlm(o: MlmShape & { fusions?: Fusions }): OurMlmSetup {
  const disposers: Array<() => void> = [];
  const dispose = (): void => {
    for (const d of disposers.reverse()) {
      try {
        d();
      } catch {
        // a failed step is reported by the caller; freeing after it may fail again
      }
    }
    disposers.length = 0;
  };
  try {
    const model = new BertForMaskedLM(bertPreset(o.preset ?? MLM_PRESET).config, { seed: 0 });
    disposers.push(() => model.dispose());
    model.train();
    if (o.fusions) setFusions(model, o.fusions);
    model.to('cuda', 'bfloat16');
    const host = mlmBatch(o.B, o.L, model.config.vocabSize, o.maskRatio, o.seed);
    const onDevice = (t: Tensor): Tensor => {
      const d = t.to('cuda');
      t.dispose();
      disposers.push(() => d.dispose());
      return d;
    };
    host.attentionMask?.dispose();
    // No attentionMask: every token is real, and the torch side runs without a mask too.
    const targets = host.targets;
    disposers.push(() => targets.dispose());
    const batch: PaddedMlmBatch = { ids: onDevice(host.ids), rows: onDevice(host.rows), targets };
    // bf16 parameters: AdamW keeps fp32 master weights and moments for them (src/optim/adamw.ts).
    const opt = new AdamW(model.parameters(), { lr: 1e-4, weightDecay: 0.01 });
    disposers.push(() => opt.dispose());
    const step = (): number => {
      opt.zeroGrad();
      const loss = scope(() => {
        const l = model.loss(batch);
        backward(l);
        return l.detach();
      });
      // The guard is the loss widened to float32 on the device (the trainer's deferred read of a bf16 loss).
      let guard: ReturnType<typeof loss.native.cast> | null = null;
      try {
        guard = loss.native.cast('float32');
        readNorm(opt.stepClipped(1.0, [guard]));  // reads the norm and disposes it
        return guard.read()[0] as number;
      } finally {
        guard?.dispose();
        loss.dispose();
      }
    };
    return { step, params: model.parameters().reduce((a, p) => a + p.size, 0), maskedRows: batch.rows.size, dispose };
  } catch (e) {
    dispose();
    throw e;
  }
}

/** Synchronizes and empties the allocator cache, so that the torch child finds the GPU's memory free. */
function releaseDevice(): void {
  try {
    native().cudaSynchronize();
    native().cudaReleaseCache();
  } catch {
    // after a failed kernel this throws again; the first error is the one reported
  }
}

export function runOurMlm(o: MlmRunOptions): OurMlmOutcome {
  const n = native();
  let s: OurMlmSetup | null = null;
  try {
    s = setupOurMlm(o);
    const losses: number[] = [s.step()];
    for (let i = 0; i < o.warmup; i++) losses.push(s.step());
    n.cudaSynchronize();
    n.cudaResetPeak();
    const samples: number[] = [];
    for (let r = 0; r < o.reps; r++) {
      gc?.();
      n.cudaSynchronize();
      const t0 = nowMs();
      losses.push(s.step());
      n.cudaSynchronize();
      samples.push(nowMs() - t0);
    }
    const med = median(samples);
    return {
      ok: true,
      params: s.params,
      maskedRows: s.maskedRows,
      medianMs: med,
      samplesMs: samples,
      tokensPerS: (o.B * o.L) / (med / 1e3),
      losses,
      peakBytes: n.cudaMemStats().peakBytes,
    };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0]! };
  } finally {
    s?.dispose();
    releaseDevice();
  }
}

/**
 * Our MLM step under the per-call profiler (src/profile). drain: the device
 * is synchronized around every native call, so each call's time is its
 * kernels' (where the device time goes; the step is slower than the timed
 * one, as host and device no longer overlap). Without: the calls' times are
 * the host's cost of validating and enqueueing them (plus any wait inside a
 * call that reads the device), which says whether the host keeps the GPU fed.
 */
export function profileOurMlm(o: MlmRunOptions, drain = true): { ok: true; report: ProfileReport } | { ok: false; error: string } {
  let s: OurMlmSetup | null = null;
  try {
    s = setupOurMlm(o);
    for (let i = 0; i <= o.warmup; i++) s.step();
    const raw = loadAddon().addon;
    const prof = new Profiler(drain ? { synchronize: () => raw.cudaSynchronize() } : {});
    for (let r = 0; r < o.reps; r++) {
      gc?.();
      raw.cudaSynchronize();
      const step = s.step;
      prof.run(() => {
        step();
      });
    }
    return { ok: true, report: prof.report() };
  } catch (e) {
    return { ok: false, error: (e as Error).message.split('\n')[0]! };
  } finally {
    s?.dispose();
    releaseDevice();
  }
}

export function runTorchMlm(python: string, o: MlmRunOptions): PyOutcome<TorchMlm> {
  return runTorchCuda<TorchMlm>(python, 'bert_mlm_torch.py', [
    '--batch', String(o.B), '--length', String(o.L), '--mask-ratio', String(o.maskRatio), '--seed', String(o.seed),
    '--warmup', String(o.warmup), '--reps', String(o.reps),
  ]);
}
