/**
 * bench:cuda's tables (the same rows on the console and in summary.md) and
 * its results files: bench/results-cuda/results.json (every sample, the GPU,
 * driver and CUDA versions, the options) and summary.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AttentionRow } from './cuda-attention.js';
import type { OurMlmOutcome, TorchMlm } from './cuda-mlm.js';
import type { PyOutcome } from './cuda-torch.js';
import { fmt, fmtMiB, fmtMs, fmtRatio, type Column } from './table.js';

export const ATTENTION_TARGET = 1.0;
export const MLM_TARGET = 1.3;

/** TFLOP/s from a FLOP count and ms. */
export function tflops(flops: number, ms: number): number {
  return flops / (ms * 1e9);
}

const verdict = (ratio: number, target: number): string => (Number.isFinite(ratio) ? (ratio >= target ? 'MET' : 'NOT MET') : '-');

export interface Table {
  columns: Column[];
  rows: string[][];
}

/** Speed ratios cloze ÷ torch per pass (torch ms ÷ our ms); NaN where a side is missing. */
export function attentionRatios(r: AttentionRow): { fwd: number; bwd: number; fwdBwd: number } {
  if (!r.ours.ok || !r.torch.ok) return { fwd: NaN, bwd: NaN, fwdBwd: NaN };
  return {
    fwd: r.torch.fwd.median_ms / r.ours.fwd.medianMs,
    bwd: r.torch.bwd.median_ms / r.ours.bwd.medianMs,
    fwdBwd: r.torch.fwd_bwd.median_ms / r.ours.fwdBwd.medianMs,
  };
}

export function attentionTable(rows: readonly AttentionRow[]): Table {
  const out: string[][] = [];
  for (const r of rows) {
    const ratio = attentionRatios(r);
    const g = r.general?.ok ? r.general : null;
    const passes = [
      { name: 'fwd', flops: r.flops.fwd, ours: r.ours.ok ? r.ours.fwd.medianMs : NaN, general: g ? g.fwd.medianMs : NaN, torch: r.torch.ok ? r.torch.fwd.median_ms : NaN, ratio: ratio.fwd },
      { name: 'bwd', flops: r.flops.bwd, ours: r.ours.ok ? r.ours.bwd.medianMs : NaN, general: g ? g.bwd.medianMs : NaN, torch: r.torch.ok ? r.torch.bwd.median_ms : NaN, ratio: ratio.bwd },
      { name: 'fwd+bwd', flops: r.flops.total, ours: r.ours.ok ? r.ours.fwdBwd.medianMs : NaN, general: g ? g.fwdBwd.medianMs : NaN, torch: r.torch.ok ? r.torch.fwd_bwd.median_ms : NaN, ratio: ratio.fwdBwd },
    ];
    for (const p of passes) {
      out.push([
        String(r.case.L), String(r.case.B), p.name, fmtMs(p.ours), fmt(tflops(p.flops, p.ours)), fmtMs(p.general), fmtRatio(p.general / p.ours),
        fmtMs(p.torch), fmt(tflops(p.flops, p.torch)), fmtRatio(p.ratio), p.name === 'fwd+bwd' ? verdict(p.ratio, ATTENTION_TARGET) : '',
      ]);
    }
  }
  return {
    columns: [
      { header: 'L' }, { header: 'B' }, { header: 'pass', align: 'l' }, { header: 'cloze ms' }, { header: 'cloze TFLOP/s' },
      { header: 'general path ms' }, { header: 'general/cloze' },
      { header: 'torch ms' }, { header: 'torch TFLOP/s' }, { header: 'cloze/torch' }, { header: `target ≥ ${ATTENTION_TARGET.toFixed(1)}×`, align: 'l' },
    ],
    rows: out,
  };
}

/**
 * Dense bfloat16 tensor-core peak in TFLOP/s by GPU name, from NVIDIA's data
 * sheets (the figures without structured sparsity); null when not listed.
 * The H200 is the H100 SXM's chip: 989 TFLOP/s.
 */
export function bf16PeakTflops(gpuName: string): number | null {
  if (/NVL/.test(gpuName)) return null; // the NVL parts run at lower clocks: not listed here
  if (/H200|H100.*(SXM|HBM3)/.test(gpuName)) return 989.4;
  if (/H100/.test(gpuName)) return 756.5;
  if (/A100/.test(gpuName)) return 312;
  return null;
}

/**
 * Model FLOPs of one MLM training step, the MFU convention (PaLM, llm.c):
 * 2 FLOPs per multiply-add, backward twice the forward, recomputation not
 * counted. Per token and layer: Q, K, V, output (4·d²) and the FFN (2·d·f)
 * multiply-adds, plus attention's Q·Kᵀ and P·V (2·L·d); the head (d² + d·V)
 * on the masked rows only, as both sides compute it.
 */
export function mlmStepFlops(s: { B: number; L: number; maskedRows: number; layers: number; hidden: number; ffn: number; vocab: number }): number {
  const d = s.hidden;
  const perToken = s.layers * (4 * d * d + 2 * d * s.ffn + 2 * s.L * d);
  const head = d * d + d * s.vocab;
  return 6 * (s.B * s.L * perToken + s.maskedRows * head);
}

export function mlmRatio(ours: OurMlmOutcome, torch: PyOutcome<TorchMlm>): number {
  return ours.ok && torch.ok ? ours.tokensPerS / torch.tokens_per_s : NaN;
}

export function mlmTable(ours: OurMlmOutcome, torch: PyOutcome<TorchMlm>): Table {
  const rows: string[][] = [];
  const ratio = mlmRatio(ours, torch);
  const losses = (l: readonly number[]): string => l.slice(0, 3).map((x) => x.toFixed(3)).join(' ');
  if (ours.ok) {
    rows.push(['cloze', fmtMs(ours.medianMs), fmt(ours.tokensPerS, 0), fmtRatio(ratio), verdict(ratio, MLM_TARGET), fmtMiB(ours.peakBytes), losses(ours.losses)]);
  }
  if (torch.ok) rows.push([`torch eager (${torch.attention}, ${torch.optimizer})`, fmtMs(torch.median_ms), fmt(torch.tokens_per_s, 0), '1.00×', '', fmtMiB(torch.peak_bytes), losses(torch.losses)]);
  return {
    columns: [
      { header: 'impl', align: 'l' }, { header: 'step ms' }, { header: 'tokens/s' }, { header: 'cloze/torch' },
      { header: `target ≥ ${MLM_TARGET.toFixed(1)}×`, align: 'l' }, { header: 'peak GPU MiB' }, { header: 'first losses', align: 'l' },
    ],
    rows,
  };
}

export function markdownTable(t: Table): string {
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const head = `| ${t.columns.map((c) => esc(c.header)).join(' | ')} |`;
  const rule = `|${t.columns.map((c) => ((c.align ?? 'r') === 'l' ? ' :-- ' : ' --: ')).join('|')}|`;
  return [head, rule, ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

/** Writes results.json and summary.md into dir; returns their paths. */
export function writeResults(dir: string, json: unknown, markdown: string): string[] {
  mkdirSync(dir, { recursive: true });
  const files = [join(dir, 'results.json'), join(dir, 'summary.md')];
  writeFileSync(files[0]!, `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(files[1]!, markdown.endsWith('\n') ? markdown : `${markdown}\n`);
  return files;
}
