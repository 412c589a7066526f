/**
 * crossEntropy (selected rows, ignore index, large logits) and argmax: forward
 * against float64 references, finite-difference gradients, and the CUDA
 * kernels against the CPU.
 */
import { describe, expect, it } from 'vitest';
import { argmax, backward, crossEntropy, Tensor, tensor } from '../../src/index.js';
import { describeCuda, get, itOnDevice } from '../helpers/cuda-harness.js';
import { bf, bfSum, check, cpu64, dev, DTYPES, ints, native, quantize, values } from '../helpers/cuda-ops.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { leaf, rand, vals } from '../helpers/op-inputs.js';
import { crossEntropyRef } from '../helpers/reference.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

for (const dtype of ['float32', 'float64'] as const) {
  const tol = tolFor(dtype);
  describe(`forward ${dtype}`, () => {
    it('crossEntropy over selected rows with ignore index, large logits', () => {
      const logits = rand([9, 50], dtype, -30, 30);
      const targets = tensor([3, 49, -100, 0, 17], [5], 'int32');
      const rows = tensor([8, 0, 4, 2, 5], [5], 'int32');
      const got = crossEntropy(logits, targets, { rows }).item();
      const ref = crossEntropyRef(vals(logits), 50, [3, 49, -100, 0, 17], [8, 0, 4, 2, 5], -100);
      assertClose([got], [ref], tol, 'crossEntropy');
      const all = crossEntropy(logits, tensor([-100, -100, -100, -100, -100, -100, -100, -100, -100], [9], 'int32'));
      expect(all.item()).toBe(0);
    });
    it('argmax picks the first largest value of each row, at an odd width', () => {
      const x = rand([3, 7, 1003], dtype);
      const raw = x.toArray();
      raw[5] = raw[900] = 5; // a tie in row 0: the first wins
      const t = tensor(raw, [3, 7, 1003], dtype);
      const ref = Array.from({ length: 21 }, (_, r) => {
        let best = 0;
        for (let c = 1; c < 1003; c++) if (raw[r * 1003 + c]! > raw[r * 1003 + best]!) best = c;
        return best;
      });
      const got = argmax(t);
      expect(got.dtype).toBe('int32');
      expect(got.shape).toEqual([3, 7]);
      expect(Array.from(got.toArray())).toEqual(ref);
      expect(ref[0]).toBe(5);
      expect(() => argmax(tensor([1, 2], [2], 'int32'))).toThrow('Expected a float32 or float64 tensor for input but received int32 tensor [2]');
    });
  });
}

describe('gradcheck: normalisation, softmax, loss, embedding', () => {
  it('crossEntropy over selected rows with an ignore index', () => {
    const targets = tensor([2, -100, 0, 4], [4], 'int32');
    const rows = tensor([5, 0, 2, 3], [4], 'int32');
    gradcheck(([x]) => crossEntropy(x!, targets, { rows }), [leaf(6, 5)]);
    gradcheck(([x]) => crossEntropy(x!, tensor([1, 0, 3], [3], 'int32')), [leaf(3, 4)]);
  });
});

// ---- CUDA, against the CPU backend (skipped without a GPU) ----
// float32 on the device against float64 on the CPU by the tolerance rule;
// bfloat16 by the naive-bf16 rule, the naive pipeline written out below with a
// rounding at every op boundary (fp32 inside each op).

// Cross-entropy over the selected rows: per-row lse and loss, their mean, and dlogits.
function naiveCrossEntropy(x: number[], V: number, tg: number[], rows: number[] | null, ignore: number, gradLoss: number, N: number) {
  const lse: number[] = [], losses: number[] = [];
  const d = new Array<number>(N * V).fill(0);
  let count = 0;
  tg.forEach((t, m) => {
    if (t === ignore) {
      lse.push(0);
      return;
    }
    count++;
    const r = rows ? rows[m]! : m;
    const row = x.slice(r * V, (r + 1) * V);
    const mx = Math.max(...row);
    const s = bfSum(row.map((v) => bf(Math.exp(bf(v - mx)))));
    const l = bf(mx + bf(Math.log(s)));
    lse.push(l);
    losses.push(bf(l - row[t]!));
  });
  const loss = count ? bf(bfSum(losses) / count) : 0;
  const gs = count ? bf(gradLoss / count) : 0;
  tg.forEach((t, m) => {
    if (t === ignore) return;
    const r = rows ? rows[m]! : m;
    for (let c = 0; c < V; c++) d[r * V + c] = bf(gs * bf(Math.exp(bf(x[r * V + c]! - lse[m]!))));
    d[r * V + t] = bf(d[r * V + t]! - gs);
  });
  return { loss, lse, d, count };
}

describe('crossEntropy: a caller\'s count and a tensor gradient (the paths that spare cuda its waits), on the CPU', () => {
  const [N, V] = [6, 4];
  const tg = [1, -100, 3, 0, 0, 2];
  const args = () => [tensor(values(N * V, 5), [N, V], 'float32').native, tensor(tg, [N], 'int32').native, null, -100] as const;
  it('a count equal to the non-ignored targets changes nothing; another is refused, naming count', () => {
    const r = native().crossEntropy(...args());
    const rc = native().crossEntropy(...args(), 5);
    expect(r.count).toBe(5);
    expect(rc.count).toBe(5);
    expect(Array.from(rc.loss.data() as Float32Array)).toEqual(Array.from(r.loss.data() as Float32Array));
    expect(() => native().crossEntropy(...args(), 4)).toThrow(/Expected 5 \(the non-ignored rows of targets\) for count but received 4/);
    expect(() => native().crossEntropy(...args(), 7)).toThrow(/Expected at most the 6 rows of targets for count but received 7/);
  });
  it('logits without a class are refused, naming logits', () => {
    expect(() => crossEntropy(tensor([], [2, 0]), tensor([0, 0], [2], 'int32'))).toThrow(
      'Expected logits with at least one class for logits but received float32 tensor [2, 0]',
    );
  });
  it('the backward takes the loss gradient as a 0-d tensor of the logits\' dtype, with the same result as the number', () => {
    for (const dtype of ['float32', 'float64'] as const) {
      const x = tensor(values(N * V, 5), [N, V], dtype).native;
      const t = tensor(tg, [N], 'int32').native;
      const r = native().crossEntropy(x, t, null, -100);
      const byNumber = native().crossEntropyBackward(0.75, x, t, null, r.lse, -100, r.count);
      const byTensor = native().crossEntropyBackward(tensor([0.75], [], dtype).native, x, t, null, r.lse, -100, r.count);
      expect(Array.from(byTensor.data() as Float32Array)).toEqual(Array.from(byNumber.data() as Float32Array));
      const other = dtype === 'float32' ? 'float64' : 'float32';
      expect(() => native().crossEntropyBackward(tensor([0.75], [], other).native, x, t, null, r.lse, -100, r.count)).toThrow(/gradLoss/);
      expect(() => native().crossEntropyBackward(tensor([0.75, 1], [2], dtype).native, x, t, null, r.lse, -100, r.count)).toThrow(/gradLoss/);
    }
  });
});

describeCuda('nn', () => {

  it('crossEntropy and its backward match the CPU: all, some and no rows ignored, with and without row selection', () => {
    const IGN = -100;
    for (const dtype of DTYPES)
      for (const [N, V] of [[7, 11], [5, 2000]] as const)
        for (const ignored of ['none', 'some', 'all'] as const)
          for (const select of [false, true]) {
            const x = quantize(values(N * V, N + V, 4), dtype);
            const rows = select ? [4, 0, 2] : null;
            const M = rows ? rows.length : N;
            const tg = values(M, M + V).map((v, m) =>
              ignored === 'all' || (ignored === 'some' && m % 2 === 1) ? IGN : Math.floor((v + 1) * 0.5 * V) % V);
            const idx = (d: 'cpu' | 'cuda') => [ints(tg, [M], d), rows ? ints(rows, [M], d) : null] as const;
            const [dt, dr] = idx('cuda');
            const [ct, cr] = idx('cpu');
            const r = native().crossEntropy(dev(x, [N, V], dtype), dt, dr, IGN);
            const rc = native().crossEntropy(cpu64(x, [N, V]), ct, cr, IGN);
            const naive = naiveCrossEntropy(x, V, tg, rows, IGN, 1.5, N);
            const l = `crossEntropy [${N}, ${V}] ${ignored} ignored${select ? ', rows' : ''}`;
            expect(r.count).toBe(rc.count);
            expect(r.count).toBe(naive.count);
            expect(r.loss.shape).toEqual([]);
            expect(r.loss.dtype).toBe(dtype);
            expect(r.lse.dtype).toBe('float32');
            check(`${l} loss`, dtype, r.loss, rc.loss, [naive.loss]);
            check(`${l} lse`, dtype, r.lse, rc.lse, naive.lse);
            const d = native().crossEntropyBackward(1.5, dev(x, [N, V], dtype), dt, dr, r.lse, IGN, r.count);
            const dc = native().crossEntropyBackward(1.5, cpu64(x, [N, V]), ct, cr, rc.lse, IGN, rc.count);
            check(`${l} dlogits`, dtype, d, dc, naive.d);
            // The loss's gradient as a device tensor (read by the kernel) gives the same bits as the number.
            const dg = native().crossEntropyBackward(dev([1.5], [], dtype), dev(x, [N, V], dtype), dt, dr, r.lse, IGN, r.count);
            expect(Array.from(get(dg))).toEqual(Array.from(get(d)));
            if (!rows) {
              // A count from the caller: the targets are checked on the device, and nothing else changes.
              const rg = native().crossEntropy(dev(x, [N, V], dtype), dt, null, IGN, naive.count);
              expect(Array.from(get(rg.loss))).toEqual(Array.from(get(r.loss)));
              expect(Array.from(get(rg.lse))).toEqual(Array.from(get(r.lse)));
            }
          }
  });

  it('crossEntropy on cuda reports a bad target as the CPU does', () => {
    const x = dev(values(6, 1), [2, 3], 'float32');
    expect(() => native().crossEntropy(x, ints([0, 3], [2], 'cuda'), null, -100)).toThrow(
      'Expected indices in [0, 3) or the ignore index -100 for targets but received 3 at position 1',
    );
  });

  it('host targets for cuda logits: counted on the host and uploaded, then the same loss and gradient as device targets', () => {
    // A classifier's labels live on the host: crossEntropy counts and checks them there and uploads them, so the
    // forward does not copy them back, and the backward reads the loss's gradient on the device.
    const [N, V] = [9, 5];
    const tg = [0, 4, -100, 2, 2, 1, -100, 3, 0];
    for (const dtype of DTYPES) {
      const run = (onDevice: boolean) => {
        const x = new Tensor(dev(quantize(values(N * V, 3, 2), dtype), [N, V], dtype), true);
        const t = tensor(tg, [N], 'int32');
        const loss = crossEntropy(x, onDevice ? t.to('cuda') : t);
        backward(loss);
        return [get(loss.native), get(x.grad!.native)].map((a) => Array.from(a));
      };
      expect(run(false)).toEqual(run(true));
    }
    const bad = tg.slice();
    bad[3] = V + 1;
    expect(() => crossEntropy(new Tensor(dev(values(N * V, 3, 2), [N, V], 'float32')), tensor(bad, [N], 'int32')))
      .toThrow(`crossEntropy: Expected indices in [0, ${V}) or the ignore index -100 for targets but received ${V + 1} at position 3`);
  });

  itOnDevice('with a count given, bad device targets are reported at the next synchronize, in the forward and the backward', () => {
    const [N, V] = [4, 3];
    const x = dev(values(N * V, 1), [N, V], 'float32');
    const r = native().crossEntropy(x, ints([0, 2, -5, 1], [N], 'cuda'), null, -100, 3);
    expect(() => native().cudaSynchronize()).toThrow('Expected indices in [0, 3) or the ignore index -100 for targets but received -5 at position 2');
    const good = native().crossEntropy(x, ints([0, 2, 1, 1], [N], 'cuda'), null, -100, 4);
    const g = dev([1], [], 'float32');
    native().crossEntropyBackward(g, x, ints([0, 2, 1, 7], [N], 'cuda'), null, good.lse, -100, 4);
    expect(() => native().cudaSynchronize()).toThrow('Expected indices in [0, 3) or the ignore index -100 for targets but received 7 at position 3');
    for (const t of [r.loss, r.lse, good.loss, good.lse]) t.dispose();
    expect(() => native().cudaSynchronize()).not.toThrow();
  });

  it('argmaxRows picks the first of equal maxima, as the CPU', () => {
    for (const dtype of DTYPES)
      for (const [R, C] of [[5, 7], [3, 2000], [2, 1]] as const) {
        // Few distinct values, so ties are common (more so once rounded to bf16).
        const x = quantize(values(R * C, R * C, 3).map((v) => Math.round(v * 4) / 4), dtype);
        const got = native().argmaxRows(dev(x, [R, C], dtype));
        expect(got.dtype).toBe('int32');
        expect(Array.from(get(got))).toEqual(Array.from(get(native().argmaxRows(cpu64(x, [R, C])))));
      }
  });
});
