// bench:cuda's own code (bench/lib/cuda-*.ts) at tiny sizes, without the torch side: each of our cases runs and
// reports ok, so that a GPU session's bench step is not lost to a bug in the bench. On a GPU this runs with
// test:cuda; without one, on the pretend device (npm run test:cuda-pretend), where it checks the TypeScript only.
import { expect, it } from 'vitest';
import { timeOurAttention } from '../../bench/lib/cuda-attention.js';
import { MASKED_CASES, runMaskedCase, type MaskedShape } from '../../bench/lib/cuda-masked.js';
import { profileOurMlm, runOurMlm } from '../../bench/lib/cuda-mlm.js';
import { describeCuda } from '../helpers/cuda-harness.js';

const timing = { warmup: 1, reps: 2, minSampleMs: 0 };

describeCuda('bench:cuda cases at tiny sizes', () => {
  it('attention: the mma fast path and the general path each time a forward, a backward and both', () => {
    for (const extra of [{}, { mmaGeneral: true }]) {
      const r = timeOurAttention({ B: 2, L: 70, H: 2, Dh: 64 }, timing, extra);
      if (!r.ok) throw new Error(`attention ${JSON.stringify(extra)}: ${r.error}`);
      for (const t of [r.fwd, r.bwd, r.fwdBwd]) expect(t.medianMs).toBeGreaterThan(0);
    }
  });

  it('the masked-token cases: each builds, runs forward and backward, and reports a finite loss', () => {
    const s: MaskedShape = {
      rows: 13, hidden: 16, vocab: 37, batch: 3, tokens: 9, keep: 3, patch: 8, maskRatio: 0.5,
      convBatch: 2, convSize: 9, convChannels: 8, convCell: 3, convRatio: 0.5,
    };
    for (const name of MASKED_CASES) {
      const r = runMaskedCase(null, name, s, timing);
      if (!r.ours.ok) throw new Error(`${name}: ${r.ours.error}`);
      expect(r.ours.fwdBwd.medianMs, name).toBeGreaterThan(0);
      // The two loss cases report their loss; the gather and the convolution have none.
      if (name === 'mlm-head' || name === 'patch-loss') expect(Number.isFinite(r.ours.loss), name).toBe(true);
      else expect(r.ours.loss, name).toBeNull();
    }
  });

  it('the MLM step (its code, on bert-tiny), with and without the QKV and residual fusions, and its two profiles', () => {
    const o = { B: 4, L: 32, maskRatio: 0.15, seed: 1234, warmup: 1, reps: 2, preset: 'bert-tiny' as const };
    const fused = runOurMlm(o);
    if (!fused.ok) throw new Error(`fused: ${fused.error}`);
    const unfused = runOurMlm({ ...o, fusions: { qkv: false, residual: false } });
    if (!unfused.ok) throw new Error(`unfused: ${unfused.error}`);
    expect(fused.params).toBe(unfused.params);
    for (const l of [...fused.losses, ...unfused.losses]) expect(Number.isFinite(l)).toBe(true);
    // The same model, batch and seed: the fusions change the order of float sums only, so the first loss (before
    // any step) agrees to bf16 rounding.
    expect(Math.abs(fused.losses[0]! - unfused.losses[0]!)).toBeLessThanOrEqual(0.05 * Math.abs(unfused.losses[0]!));
    for (const drain of [true, false]) {
      const p = profileOurMlm({ ...o, warmup: 1, reps: 1 }, drain);
      if (!p.ok) throw new Error(`profile (drain ${drain}): ${p.error}`);
    }
  }, 120_000);
});
