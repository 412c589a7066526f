/**
 * linearCrossEntropy's CUDA kernels against the CPU backend (float32 against
 * float64, bfloat16 against the naive-bf16 rule), gradients added in place,
 * host targets and the loss gradient read on the device, deferred target
 * checks, and the errors; split from linear_ce.test.ts. Skipped without a GPU.
 */
import { expect, it } from 'vitest';
import { backward, linearCrossEntropy, Tensor, tensor } from '../../src/index.js';
import { native } from '../../src/native/loader.js';
import { assertBf16, bf16, describeCuda, get, itOnDevice, put, roundBf16 } from '../helpers/cuda-harness.js';
import { cpu64, F32, mm, vals } from '../helpers/cuda-linalg.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

describeCuda('linearCrossEntropy', () => {
  const M = 29;
  const D = 24;
  const V = 37;
  const hv = vals(M * D, 31).map((x) => 2 * x);
  const wv = vals(V * D, 32);
  const bv = vals(V, 33);
  /** targets with `frac` of the rows ignored (-100). */
  const targetsFor = (frac: number) => Array.from({ length: M }, (_, i) => ((i * 7919) % 100 < frac * 100 ? -100 : (i * 13) % V));

  for (const frac of [0, 0.3, 1])
    for (const chunk of [8, 37, 4096])
      for (const bias of [true, false])
        it(`float32 matches float64 on the CPU (${frac * 100}% ignored, chunk ${chunk}, bias ${bias})`, () => {
          const t = targetsFor(frac);
          const r = native().linearCrossEntropy(cpu64(hv, [M, D]), cpu64(wv, [V, D]), bias ? cpu64(bv, [V]) : null, put(t, [M], 'int32', 'cpu'), -100, chunk);
          const h = put(hv, [M, D], 'float32', 'cuda');
          const w = put(wv, [V, D], 'float32', 'cuda');
          const b = bias ? put(bv, [V], 'float32', 'cuda') : null;
          const tg = put(t, [M], 'int32', 'cuda');
          const g = native().linearCrossEntropy(h, w, b, tg, -100, chunk);
          expect(g.count).toBe(r.count);
          expect(g.loss.device).toBe('cuda');
          expect(g.lse.dtype).toBe('float32');
          assertClose(get(g.loss), get(r.loss), tolFor('float32'), 'loss');
          assertClose(get(g.lse), get(r.lse), tolFor('float32'), 'lse');
          const rb = native().linearCrossEntropyBackward(1.5, cpu64(hv, [M, D]), cpu64(wv, [V, D]), bias ? cpu64(bv, [V]) : null, put(t, [M], 'int32', 'cpu'), r.lse, -100, r.count, chunk, true, true, true);
          const gb = native().linearCrossEntropyBackward(1.5, h, w, b, tg, g.lse, -100, g.count, chunk, true, true, true);
          for (let i = 0; i < 3; i++) assertClose(get(gb[i]!), get(rb[i]!), F32, `grad[${i}]`);
        });

  it('bfloat16 is within 2x the naive bf16 error (lse, dh, dW, db) and the loss within bf16 rounding', () => {
    const t = targetsFor(0.3);
    const chunk = 8;
    // float64 reference on the unrounded inputs.
    const r = native().linearCrossEntropy(cpu64(hv, [M, D]), cpu64(wv, [V, D]), cpu64(bv, [V]), put(t, [M], 'int32', 'cpu'), -100, chunk);
    const rb = native().linearCrossEntropyBackward(1, cpu64(hv, [M, D]), cpu64(wv, [V, D]), cpu64(bv, [V]), put(t, [M], 'int32', 'cpu'), r.lse, -100, r.count, chunk, true, true, true);
    // naive bf16: logits = bf16(bf16(h·Wᵀ) + b), lse and softmax from them, G = bf16(softmax − onehot)/count, products rounded.
    const hr = roundBf16(hv);
    const wr = roundBf16(wv);
    const br = roundBf16(bv);
    const lg = mm(hr, D, wr, D, M, V, D, false, true).map((x, i) => bf16(bf16(x) + br[i % V]!));
    const lseN = new Float64Array(M);
    const G = new Float64Array(M * V);
    const count = t.filter((x) => x !== -100).length;
    for (let m = 0; m < M; m++) {
      if (t[m] === -100) continue;
      let mx = -Infinity;
      for (let j = 0; j < V; j++) mx = Math.max(mx, lg[m * V + j]!);
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(lg[m * V + j]! - mx);
      lseN[m] = mx + Math.log(s);
      for (let j = 0; j < V; j++) G[m * V + j] = bf16((Math.exp(lg[m * V + j]! - lseN[m]!) - (j === t[m] ? 1 : 0)) / count);
    }
    const dhN = roundBf16(mm(G, V, wr, D, M, D, V, false, false));
    const dwN = roundBf16(mm(G, V, hr, D, V, D, M, true, false));
    const dbN = roundBf16(Float64Array.from({ length: V }, (_, j) => { let s = 0; for (let m = 0; m < M; m++) s += G[m * V + j]!; return s; }));

    const h = put(hv, [M, D], 'bfloat16', 'cuda');
    const w = put(wv, [V, D], 'bfloat16', 'cuda');
    const b = put(bv, [V], 'bfloat16', 'cuda');
    const tg = put(t, [M], 'int32', 'cuda');
    const g = native().linearCrossEntropy(h, w, b, tg, -100, chunk);
    expect(g.loss.dtype).toBe('bfloat16');
    expect(g.lse.dtype).toBe('float32');
    assertBf16('lse', get(g.lse), get(r.lse), lseN);
    // A single scalar: relErr against the naive one is noise, so bound it by
    // bf16's own resolution instead (logit rounding plus the output rounding).
    const ref = get(r.loss)[0]!;
    expect(Math.abs(get(g.loss)[0]! - ref)).toBeLessThanOrEqual(2 ** -7 * Math.abs(ref));
    const gb = native().linearCrossEntropyBackward(1, h, w, b, tg, g.lse, -100, g.count, chunk, true, true, true);
    assertBf16('dh', get(gb[0]!), get(rb[0]!), dhN);
    assertBf16('dW', get(gb[1]!), get(rb[1]!), dwN);
    assertBf16('db', get(gb[2]!), get(rb[2]!), dbN);
  });

  for (const frac of [0, 0.3, 1])
    for (const chunk of [8, 4096])
      it(`adds into existing gradient buffers in place: old + the CPU's float64 gradient (${frac * 100}% ignored, chunk ${chunk})`, () => {
        const t = targetsFor(frac);
        const r = native().linearCrossEntropy(cpu64(hv, [M, D]), cpu64(wv, [V, D]), cpu64(bv, [V]), put(t, [M], 'int32', 'cpu'), -100, chunk);
        const rb = native().linearCrossEntropyBackward(1.5, cpu64(hv, [M, D]), cpu64(wv, [V, D]), cpu64(bv, [V]), put(t, [M], 'int32', 'cpu'), r.lse, -100, r.count, chunk, true, true, true);
        const h = put(hv, [M, D], 'float32', 'cuda');
        const w = put(wv, [V, D], 'float32', 'cuda');
        const b = put(bv, [V], 'float32', 'cuda');
        const tg = put(t, [M], 'int32', 'cuda');
        const g = native().linearCrossEntropy(h, w, b, tg, -100, chunk);
        const olds = [vals(M * D, 41), vals(V * D, 42), vals(V, 43)];
        const bufs = olds.map((o, i) => put(o, [[M, D], [V, D], [V]][i]!, 'float32', 'cuda'));
        const gb = native().linearCrossEntropyBackward(1.5, h, w, b, tg, g.lse, -100, g.count, chunk, true, true, true, bufs[0], bufs[1], bufs[2]);
        expect(gb).toEqual([null, null, null]);
        for (let i = 0; i < 3; i++)
          assertClose(get(bufs[i]!), Float64Array.from(get(rb[i]!), (x, j) => x + Math.fround(olds[i]![j]!)), F32, `old + grad[${i}]`);
      });

  it('host targets for a cuda head: counted and checked on the host, then the same loss and gradients as device targets', () => {
    // The trainer's labels live on the host: the op counts and checks them there and uploads them, so neither
    // the forward nor the backward waits for the device (the backward reads the loss gradient on the device).
    const t = targetsFor(0.3);
    for (const dtype of ['float32', 'bfloat16'] as const) {
      const run = (targetsOnDevice: boolean) => {
        const h = new Tensor(put(hv, [M, D], dtype, 'cuda'), true);
        const w = new Tensor(put(wv, [V, D], dtype, 'cuda'), true);
        const b = new Tensor(put(bv, [V], dtype, 'cuda'), true);
        const tg = tensor(t, [M], 'int32');
        const loss = linearCrossEntropy(h, w, b, targetsOnDevice ? tg.to('cuda') : tg, { chunkSize: 8 });
        backward(loss);
        return [get(loss.native), get(h.grad!.native), get(w.grad!.native), get(b.grad!.native)].map((a) => Array.from(a));
      };
      expect(run(false)).toEqual(run(true));
    }
    const bad = targetsFor(0);
    bad[4] = V + 2;
    const h = put(hv, [M, D], 'float32', 'cuda');
    expect(() => linearCrossEntropy(new Tensor(h), new Tensor(put(wv, [V, D], 'float32', 'cuda')), null, tensor(bad, [M], 'int32')))
      .toThrow(`linearCrossEntropy: Expected indices in [0, ${V}) or the ignore index -100 for targets but received ${V + 2} at position 4`);
  });

  it("backward refuses an explicit gradient on another device than the loss's, naming it", () => {
    const h = new Tensor(put(hv, [M, D], 'float32', 'cuda'), true);
    const loss = linearCrossEntropy(h, new Tensor(put(wv, [V, D], 'float32', 'cuda')), null, tensor(targetsFor(0), [M], 'int32'));
    expect(() => backward(loss, tensor([1], []))).toThrow("Expected a gradient on the root's device (cuda) for grad");
  });

  itOnDevice('with a count given, bad device targets are reported at the next synchronize, and nothing is read out of range', () => {
    const bad = targetsFor(0);
    bad[6] = -7;
    const h = put(hv, [M, D], 'float32', 'cuda');
    const w = put(wv, [V, D], 'float32', 'cuda');
    const r = native().linearCrossEntropy(h, w, null, put(bad, [M], 'int32', 'cuda'), -100, 8, M);
    expect(() => native().cudaSynchronize()).toThrow(`Expected indices in [0, ${V}) or the ignore index -100 for targets but received -7 at position 6`);
    r.loss.dispose();
    r.lse.dispose();
    expect(() => native().cudaSynchronize()).not.toThrow();
  });

  itOnDevice('rejects out-of-range targets with the CPU message, and a bf16-shaped lse in the backward', () => {
    const t = targetsFor(0);
    t[5] = V;
    const args = (dev: 'cpu' | 'cuda') =>
      [put(hv, [M, D], 'float32', dev), put(wv, [V, D], 'float32', dev), null, put(t, [M], 'int32', dev), -100, 8] as const;
    let cpuMsg = '';
    try {
      native().linearCrossEntropy(...args('cpu'));
    } catch (e) {
      cpuMsg = (e as Error).message;
    }
    expect(cpuMsg).toMatch(/targets/);
    expect(() => native().linearCrossEntropy(...args('cuda'))).toThrow(cpuMsg);
    const ok = targetsFor(0);
    const h = put(hv, [M, D], 'bfloat16', 'cuda');
    const w = put(wv, [V, D], 'bfloat16', 'cuda');
    const tg = put(ok, [M], 'int32', 'cuda');
    const lse16 = native().empty('bfloat16', [M], 'cuda');
    expect(() => native().linearCrossEntropyBackward(1, h, w, null, tg, lse16, -100, M, 8, true, false, false)).toThrow(/float32 tensor for lse/);
  });
});
