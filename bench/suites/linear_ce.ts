/**
 * linearCrossEntropy (the linear_ce family: the MLM head's last step) against
 * the full-logits head it replaces, forward+backward, float32, at the bert-mini
 * training shape: h [M, D] (the M masked rows), the tied decoder W [V, D],
 * bias [V], int32 targets [M]; gradients for h, W and b.
 *   fused  linearCrossEntropy: vocabulary chunks of 4096, [M, V] never stored.
 *   full   crossEntropy(linear(h, W, b), targets): the [M, V] logits and their
 *          gradient are tensors.
 * Gradients go where training puts them: h, W and b have .grad views of one
 * zero-filled flat buffer, as AdamW's flatten() makes (W is the tied embedding,
 * whose .grad always exists in training). The fused head adds into it in place;
 * the full path allocates dh, dW and db and backward() adds them in.
 * Memory counted:
 *   live   the peak of liveBytes() (tensor storage) above the inputs and that
 *          gradient buffer, sampled after every addon call (bench/lib/memory.ts):
 *          every gradient tensor born in the call is included.
 *   +scratch  live plus the fused kernel's own [M, chunk] logits scratch and
 *          3 [M] row vectors, M·chunk·4 + 3·M·4 bytes, added in full (an upper
 *          bound). The full path has no such scratch of that size.
 *   +buffer  +scratch plus the gradient buffer itself (dh + dW + db), the same on
 *          both paths: the ratio if the buffer the optimizer owns were charged
 *          to the head.
 *   RSS    the peak resident-set growth over one call after warm-up
 *          (bench/lib/rss.ts): every page touched, caching included.
 */
import { backward, crossEntropy, linear, linearCrossEntropy, scope } from '../../src/index.js';
import { maxAbsDiff, randomArray, tensorFrom } from '../lib/data.js';
import { gflops } from '../lib/flops.js';
import { peakLiveBytes } from '../lib/memory.js';
import { mlmBatchArrays } from '../lib/mlm_batch.js';
import { peakRssGrowth } from '../lib/rss.js';
import { fmt, fmtMiB, fmtMs, fmtPct, fmtRatio, printTable, section } from '../lib/table.js';
import { timeIt } from '../lib/timing.js';
import { fromTypedArray, Tensor } from '../../src/index.js';
import { native } from '../../src/native/loader.js';

const CHUNK = 4096;  // linearCrossEntropy's default chunkSize

export interface HeadImpl {
  ms: number;
  liveBytes: number;
  scratchBytes: number;
  rssBytes: number | null;
}

export interface HeadResult {
  M: number;
  D: number;
  V: number;
  fused: HeadImpl;
  full: HeadImpl;
  gradBytes: number;
  check: { loss: number; dh: number; dw: number; scale: number };
}

export function runLinearCe(M: number, D: number, V: number, reps: number, chunk = CHUNK): HeadResult {
  section(`linearCrossEntropy (MLM head) vs full logits, fwd+bwd float32, M=${M} D=${D} V=${V}, chunks of ${chunk}`);
  const h = tensorFrom(randomArray(M * D, 1), [M, D], true);
  const w = tensorFrom(randomArray(V * D, 2).map((x) => 0.05 * x), [V, D], true);
  const b = tensorFrom(randomArray(V, 3).map((x) => 0.05 * x), [V], true);
  const targets = fromTypedArray(mlmBatchArrays(1, M, V, 1, 7).targets, [M]);
  const leaves: Tensor[] = [h, w, b];
  // The optimizer's flat gradient buffer, with a view per leaf (see the header).
  const flat = native().empty('float32', [M * D + V * D + V], 'cpu');
  let off = 0;
  for (const t of leaves) {
    t.grad = new Tensor(flat.view(off, t.shape));
    off += t.size;
  }
  const clear = (): void => flat.fill(0);
  clear();
  const step = (which: 'fused' | 'full', read?: (loss: number) => void): void => {
    scope(() => {
      const loss = which === 'fused' ? linearCrossEntropy(h, w, b, targets, { chunkSize: chunk }) : crossEntropy(linear(h, w, b), targets);
      backward(loss);
      read?.(loss.item());
    });
  };
  const grads = (): Float32Array[] => leaves.map((t) => t.grad!.toArray() as Float32Array);

  let fl = 0;
  let ul = 0;
  let fg: Float32Array[] = [];
  let ug: Float32Array[] = [];
  const fm = peakLiveBytes(() => step('fused', (l) => (fl = l)));
  fg = grads();
  clear();
  const um = peakLiveBytes(() => step('full', (l) => (ul = l)));
  ug = grads();
  clear();
  const dh = maxAbsDiff(fg[0]!, ug[0]!);
  const dw = maxAbsDiff(fg[1]!, ug[1]!);

  const opts = { warmup: 1, reps, minSampleMs: 0 };
  const ft = timeIt(() => { step('fused'); clear(); }, opts);
  const ut = timeIt(() => { step('full'); clear(); }, opts);
  const rss = (which: 'fused' | 'full'): number | null => {
    (globalThis as { gc?: () => void }).gc?.();
    const r = peakRssGrowth(() => step(which));
    clear();
    return r;
  };
  const fr = rss('fused');
  const ur = rss('full');
  for (const t of [...leaves, targets]) t.dispose();
  flat.dispose();

  const C = Math.min(chunk, V);
  const res: HeadResult = {
    M, D, V,
    fused: { ms: ft.medianMs, liveBytes: fm.peakExtraBytes, scratchBytes: M * C * 4 + 3 * M * 4, rssBytes: fr },
    full: { ms: ut.medianMs, liveBytes: um.peakExtraBytes, scratchBytes: 0, rssBytes: ur },
    gradBytes: (M * D + V * D + V) * 4,
    check: { loss: Math.abs(fl - ul), dh: dh.diff, dw: dw.diff, scale: Math.max(dh.scale, dw.scale) },
  };
  printHead(res);
  return res;
}

function printHead(r: HeadResult): void {
  // forward 2·M·V·D; backward dh and dW, 4·M·V·D; the fused path also recomputes the logits (2·M·V·D more)
  const flops = 6 * r.M * r.V * r.D;
  const withScratch = (i: HeadImpl): number => i.liveBytes + i.scratchBytes;
  const withBuffer = (i: HeadImpl): number => withScratch(i) + r.gradBytes;
  console.log(`timing: warm-up 1, median of samples; GFLOP/s counts 6·M·V·D (fwd + dh + dW; the fused recompute is not counted)`);
  console.log(`memory in MiB above the inputs and the optimizer's gradient buffer (dh+dW+db = ${fmtMiB(r.gradBytes)} MiB, .grad views ` +
    `as AdamW makes); gradient tensors born in the call are in live, +scratch and RSS; +buffer adds the buffer itself`);
  printTable(
    [{ header: 'head', align: 'l' }, { header: 'ms' }, { header: 'GFLOP/s' }, { header: 'live' }, { header: '+scratch' }, { header: '+buffer' }, { header: 'RSS' }],
    (['fused', 'full'] as const).map((k) => {
      const i = r[k];
      return [k === 'fused' ? 'fused (linearCrossEntropy)' : 'full logits (linear → crossEntropy)', fmtMs(i.ms), fmt(gflops(flops, i.ms)),
        fmtMiB(i.liveBytes), fmtMiB(withScratch(i)), fmtMiB(withBuffer(i)), fmtMiB(i.rssBytes ?? undefined)];
    }),
  );
  const pct = (a: number, b: number): string => fmtPct(a / b);
  console.log(`fused / full: time ${fmtRatio(r.fused.ms / r.full.ms)} (full ÷ fused = ${fmtRatio(r.full.ms / r.fused.ms)}); ` +
    `live ${pct(r.fused.liveBytes, r.full.liveBytes)}, +scratch ${pct(withScratch(r.fused), withScratch(r.full))}, ` +
    `+buffer ${pct(withBuffer(r.fused), withBuffer(r.full))}, RSS ${r.fused.rssBytes !== null && r.full.rssBytes ? pct(r.fused.rssBytes, r.full.rssBytes) : '-'}`);
  console.log(`agreement fused vs full: |Δloss| ${r.check.loss.toExponential(1)}, max |Δdh| ${r.check.dh.toExponential(1)}, ` +
    `max |ΔdW| ${r.check.dw.toExponential(1)} (largest |grad| ${r.check.scale.toExponential(1)})`);
  const ratio = withScratch(r.fused) / withScratch(r.full);
  const speed = r.full.ms / r.fused.ms;
  console.log(`targets: fused-head peak memory ≤ 10% of full logits, gradient tensors counted (+scratch) ${fmtPct(ratio)} ` +
    `(${ratio <= 0.1 ? 'MET' : 'NOT MET'}; with the buffer charged too, +buffer ${pct(withBuffer(r.fused), withBuffer(r.full))}); ` +
    `fused ≥ 1.2× faster ${fmtRatio(speed)} (${speed >= 1.2 ? 'MET' : 'NOT MET'})`);
}
