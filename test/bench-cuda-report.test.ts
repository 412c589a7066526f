// bench:cuda's MFU arithmetic (bench/lib/cuda-report.ts), against a count of
// every matrix product of a tiny BERT step written out by hand; and its attention table's columns.
import { describe, expect, it } from 'vitest';
import { attentionTable, bf16PeakTflops, mlmStepFlops, tflops } from '../bench/lib/cuda-report.js';
import type { AttentionRow } from '../bench/lib/cuda-attention.js';
import type { GpuTiming } from '../bench/lib/cuda-device.js';

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

describe('bench:cuda attention table', () => {
  it('puts the mma general path beside the fast path in the attention table, and dashes where it is missing', () => {
    const t = (ms: number): GpuTiming => ({ medianMs: ms, minMs: ms, maxMs: ms, samples: [ms], batch: 1 });
    const py = (ms: number) => ({ median_ms: ms, min_ms: ms, max_ms: ms, samples_ms: [ms], batch: 1 });
    const torch = { ok: true as const, backend: 'flash', fwd: py(1), bwd: py(2), fwd_bwd: py(3), peak_bytes: 0 } as unknown as AttentionRow['torch'];
    const row: AttentionRow = {
      case: { B: 2, L: 128, H: 12, Dh: 64 },
      flops: { fwd: 1e9, bwd: 2.5e9, total: 3.5e9 },
      ours: { ok: true, fwd: t(0.5), bwd: t(1), fwdBwd: t(1.5), peakBytes: 0 },
      general: { ok: true, fwd: t(1), bwd: t(1.5), fwdBwd: t(3), peakBytes: 0 },
      torch,
    };
    const table = attentionTable([row, { ...row, general: undefined }]);
    const col = (h: string): number => table.columns.findIndex((c) => c.header === h);
    expect(table.rows.map((r) => r[col('general/cloze')])).toEqual(['2.00×', '1.50×', '2.00×', '-', '-', '-']);
    expect(table.rows.map((r) => r[col('general path ms')])).toEqual(['1.00', '1.50', '3.00', '-', '-', '-']);
    expect(table.rows.map((r) => r[col('cloze/torch')])).toEqual(['2.00×', '2.00×', '2.00×', '2.00×', '2.00×', '2.00×']);
  });
});
