// bench:cuda's MFU arithmetic (bench/lib/cuda-report.ts), against a count of
// every matrix product of a tiny BERT step written out by hand.
import { describe, expect, it } from 'vitest';
import { bf16PeakTflops, mlmStepFlops, tflops } from '../bench/lib/cuda-report.js';

describe('bench:cuda MFU arithmetic', () => {
  it('counts the model FLOPs of an MLM step product by product', () => {
    const B = 3, L = 5, d = 4, f = 8, V = 11, layers = 2, masked = 2;
    const tokens = B * L;
    // multiply-adds of the forward, one product at a time
    const qkv = 3 * tokens * d * d;
    const outProj = tokens * d * d;
    const ffn = tokens * d * f + tokens * f * d;
    const scores = B * L * L * d; // Q·Kᵀ over all heads together: Σ_h L·L·(d/H) = L·L·d per sequence
    const context = B * L * L * d; // P·V
    const head = masked * d * d + masked * d * V;
    const forwardMacs = layers * (qkv + outProj + ffn + scores + context) + head;
    // ×2 FLOPs per multiply-add, ×3 for forward + backward
    expect(mlmStepFlops({ B, L, maskedRows: masked, layers, hidden: d, ffn: f, vocab: V })).toBe(6 * forwardMacs);
  });

  it('knows the H200 and H100 SXM bf16 dense peak, and says nothing for unknown GPUs', () => {
    expect(bf16PeakTflops('NVIDIA H200')).toBeCloseTo(989.4);
    expect(bf16PeakTflops('NVIDIA H100 80GB HBM3')).toBeCloseTo(989.4);
    expect(bf16PeakTflops('NVIDIA GeForce RTX 4090')).toBeNull();
    expect(tflops(2e12, 1000)).toBeCloseTo(2);
  });
});
