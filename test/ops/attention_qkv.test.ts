/**
 * attentionQkv (q, k and v as the slices of one fused projection's output, read in place with a row stride of
 * 3·H·Dh, and one dqkv written back) against attention() on the three slices as separate tensors: the same kernels
 * with other strides, so the same bits, forward and backward, for every mask mode, padded and varlen, float32 and
 * float64; the slices are checked against the naive float64 reference too (through attention-problems' cases).
 * Then the fused projection of BERT's self-attention and of the ViT's MultiHeadAttention against three separate ones.
 */
import { describe, expect, it } from 'vitest';
import { add, attention, backward, mul, Rng, scope, sum, tensor, type DType, type Tensor } from '../../src/index.js';
import { attentionQkv } from '../../src/ops/attention.js';
import { concatRows } from '../../src/ops/concat.js';
import { BertSelfAttention } from '../../src/models/bert/layers.js';
import { MultiHeadAttention } from '../../src/nn/attention.js';
import { linear } from '../../src/ops/linalg.js';
import { reshape } from '../../src/ops/elementwise.js';
import { gradcheck, randLeaf } from '../helpers/gradcheck.js';
import { interleaveQkv, makeSpec, qkvSlice, roundSpec, toFused, upstream, type Case } from '../helpers/attention-problems.js';
import { naiveAttentionForward, tokenCount, type NaiveAttnSpec } from '../helpers/naive-attention.js';
import { assertClose, tolFor } from '../helpers/tolerance.js';

const cases: Array<Case & { edit?: (spec: NaiveAttnSpec) => void }> = [
  { name: 'plain L=97 Dh=40', L: 97, H: 3, Dh: 40 },
  { name: 'plain L=300 Dh=64 (several query and key tiles)', L: 300, H: 2, Dh: 64 },
  { name: 'plain L=1 Dh=59 H=1 (scalar tails)', L: 1, H: 1, Dh: 59 },
  { name: 'keyPadding+ALiBi+bias+MTO+entropy', L: 97, H: 6, Dh: 24, keyPadding: true, alibi: true, bias: true, tokenMask: true, exclude: true, entropy: true },
  { name: 'attnMask L=7', L: 7, H: 2, Dh: 64, attnMask: true },
  { name: 'varlen+ALiBi+bias+attnMask+MTO+entropy', lens: [97, 0, 13, 64], L: 97, H: 4, Dh: 40, alibi: true, bias: true, attnMask: true, tokenMask: true, exclude: true, entropy: true },
  { name: 'varlen with every sequence empty', lens: [0, 0], L: 4, H: 2, Dh: 24 },
  // 0% and 100% masked: every token masked (excludeMaskedKeys then excludes nothing, since it applies to visible
  // queries only, and every row's entropy is measured), none masked (no row measured), and a batch row whose keys are
  // all padding (out 0, lse −∞, zero gradients).
  {
    name: 'tokenMask all 1 + exclude + entropy (100% masked)', L: 97, H: 2, Dh: 40, tokenMask: true, exclude: true, entropy: true,
    edit: (s) => (s.tokenMask = Uint8Array.from(s.tokenMask!, () => 1)),
  },
  {
    name: 'tokenMask all 0 + exclude + entropy (0% masked)', L: 97, H: 2, Dh: 40, tokenMask: true, exclude: true, entropy: true,
    edit: (s) => (s.tokenMask = Uint8Array.from(s.tokenMask!, () => 0)),
  },
  {
    name: 'a fully padded batch row + bias', B: 2, L: 97, H: 2, Dh: 24, keyPadding: true, bias: true,
    edit: (s) => {
      const kp = Uint8Array.from(s.keyPadding!);
      kp.fill(1, s.L, 2 * s.L);
      s.keyPadding = kp;
    },
  },
];

describe('attentionQkv equals attention on the three slices, bit for bit', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    for (const c of cases)
      it(`${c.name}, ${dtype}`, () => {
        const spec = roundSpec(makeSpec(c, 41), dtype);
        c.edit?.(spec);
        const entropy = c.entropy ?? false;
        const tokens = tokenCount(spec);
        const row = spec.H * spec.Dh;
        const { W, We } = upstream(spec, 42);
        // The separate form, and its gradients.
        const sep = scope(() => {
          const f = toFused(spec, dtype, entropy, true);
          const r = attention(f.q, f.k, f.v, f.opts);
          let loss = sum(mul(r.out, tensor(W, r.out.shape, dtype)));
          if (entropy) loss = add(loss, sum(mul(r.entropy!, tensor(We, r.entropy!.shape, dtype))));
          backward(loss);
          const g = (t: Tensor): number[] => Array.from(t.grad!.toArray());
          return {
            out: Array.from(r.out.toArray()), entropy: r.entropy ? Array.from(r.entropy.toArray()) : null,
            dq: g(f.q), dk: g(f.k), dv: g(f.v), dbias: f.bias ? g(f.bias) : null,
          };
        });
        // The packed form over the same values.
        const packed = scope(() => {
          const f = toFused(spec, dtype, entropy, true);
          const lead = spec.cuSeqlens ? [tokens] : [spec.B, spec.L];
          const qkv = tensor(interleaveQkv(spec.q, spec.k, spec.v, tokens, row), [...lead, 3, spec.H, spec.Dh], dtype);
          qkv.requiresGrad = true;
          const r = attentionQkv(qkv, f.opts);
          expect(r.out.shape).toEqual([...lead, spec.H, spec.Dh]);
          let loss = sum(mul(r.out, tensor(W, r.out.shape, dtype)));
          if (entropy) loss = add(loss, sum(mul(r.entropy!, tensor(We, r.entropy!.shape, dtype))));
          backward(loss);
          const d = qkv.grad!.toArray();
          return {
            out: Array.from(r.out.toArray()), entropy: r.entropy ? Array.from(r.entropy.toArray()) : null,
            dq: Array.from(qkvSlice(d, 0, tokens, row)), dk: Array.from(qkvSlice(d, 1, tokens, row)), dv: Array.from(qkvSlice(d, 2, tokens, row)),
            dbias: f.bias ? Array.from(f.bias.grad!.toArray()) : null,
          };
        });
        expect(packed).toEqual(sep);
        // And both against the float64 reference (the separate form's own tests cover the gradients).
        const ref = naiveAttentionForward(spec);
        assertClose(packed.out, ref.out, tolFor(dtype), `${c.name} out`);
      });
});

describe('attentionQkv refuses what it cannot read, naming qkv', () => {
  it('a shape without the 3 slices, or of the wrong rank', () => {
    const t = tensor(new Array(2 * 3 * 2 * 2 * 4).fill(0), [2, 3, 2, 2, 4]);
    expect(() => attentionQkv(t)).toThrow(/Expected qkv of shape \[B, L, 3, H, Dh\] for qkv but received float32 tensor \[2, 3, 2, 2, 4\]/);
    expect(() => attentionQkv(tensor([0, 0, 0, 0], [2, 2]))).toThrow(/qkv of shape \[B, L, 3, H, Dh\]/);
    const cu = tensor([0, 2], [2], 'int32');
    expect(() => attentionQkv(tensor(new Array(2 * 2 * 2 * 4).fill(0), [2, 2, 2, 4]), { cuSeqlens: cu, maxSeqlen: 2 })).toThrow(
      /Expected qkv of shape \[nnz, 3, H, Dh\] with cuSeqlens for qkv/,
    );
  });
});

describe('finite-difference gradients (float64)', () => {
  it('attentionQkv: padded with key padding, L = 5, H = 2, Dh = 3 (odd sizes)', () => {
    const rng = new Rng(17);
    const kp = tensor([0, 0, 0, 1, 1, 0, 0, 0, 0, 0], [2, 5], 'uint8');
    gradcheck(([qkv]) => attentionQkv(qkv!, { keyPadding: kp }).out, [randLeaf([2, 5, 3, 2, 3], rng)]);
  });
  it('attentionQkv: varlen with an empty sequence, with the entropy output in the loss', () => {
    const rng = new Rng(18);
    const cu = tensor([0, 3, 3, 7], [4], 'int32');
    gradcheck(([qkv]) => {
      const r = attentionQkv(qkv!, { cuSeqlens: cu, maxSeqlen: 4, entropy: true });
      return [r.out, r.entropy!];
    }, [randLeaf([7, 3, 2, 3], rng)]);
  });
  it('concatRows: three inputs of 2, 1 and 3 rows', () => {
    const rng = new Rng(19);
    gradcheck((xs) => concatRows(xs), [randLeaf([2, 5], rng), randLeaf([1, 5], rng), randLeaf([3, 5], rng)]);
  });
});

describe('concatRows', () => {
  it('stacks along the first dimension and hands each input its rows of the gradient', () => {
    scope(() => {
      const a = tensor([1, 2, 3, 4], [2, 2]);
      const b = tensor([5, 6], [1, 2]);
      a.requiresGrad = true;
      b.requiresGrad = true;
      const c = concatRows([a, b]);
      expect(c.shape).toEqual([3, 2]);
      expect(Array.from(c.toArray())).toEqual([1, 2, 3, 4, 5, 6]);
      backward(sum(mul(c, tensor([1, 10, 100, 1000, 1e4, 1e5], [3, 2]))));
      expect(Array.from(a.grad!.toArray())).toEqual([1, 10, 100, 1000]);
      expect(Array.from(b.grad!.toArray())).toEqual([1e4, 1e5]);
    });
  });
  it('refuses mismatched shapes, dtypes and an empty list, naming the tensor', () => {
    expect(() => concatRows([])).toThrow(/a non-empty array of tensors/);
    expect(() => concatRows([tensor([1, 2], [1, 2]), tensor([1, 2, 3], [1, 3])])).toThrow(/Expected a shape \[\*, 2\] .* for tensors\[1\]/);
    expect(() => concatRows([tensor([1, 2], [1, 2]), tensor([1, 2], [1, 2], 'float64')])).toThrow(/tensors\[1\]/);
  });
});

describe('BERT self-attention: the fused QKV projection against three separate ones', () => {
  for (const dtype of ['float32', 'float64'] as DType[])
    it(`the same context and gradients for every parameter and the input (${dtype}, with key padding)`, () => {
      const B = 2, L = 37, D = 48, H = 3;
      const rng = new Rng(5);
      const attn = new BertSelfAttention(D, H, { rng, dtype, std: 0.2 });
      // Non-zero biases, so that their stacking is seen.
      for (const p of [attn.query.bias!, attn.key.bias!, attn.value.bias!]) p.native.write(dtype === 'float64' ? Float64Array.from({ length: D }, () => rng.uniform() - 0.5) : Float32Array.from({ length: D }, () => rng.uniform() - 0.5));
      const xv = Array.from({ length: B * L * D }, () => rng.uniform() * 2 - 1);
      const kp = Array.from({ length: B * L }, (_, i) => (i % L > 30 && i >= L ? 1 : 0));
      const wv = Array.from({ length: B * L * D }, () => rng.uniform() * 2 - 1);
      const params = [attn.query.weight, attn.query.bias!, attn.key.weight, attn.key.bias!, attn.value.weight, attn.value.bias!];
      const pass = (fused: boolean): { y: number[]; grads: number[][] } =>
        scope(() => {
          for (const p of params) {
            p.grad?.dispose();
            p.grad = null;
          }
          const x = tensor(xv, [B, L, D], dtype);
          x.requiresGrad = true;
          const layout = { keyPadding: tensor(kp, [B, L], 'uint8') };
          // The separate path is the one DeBERTa's decoder takes (keys and values from another input); here that
          // input is x itself.
          const y = fused ? attn.forward(x, layout) : attn.forward(x, layout, undefined, { kv: x });
          backward(sum(mul(y, tensor(wv, y.shape, dtype))));
          return { y: Array.from(y.toArray()), grads: [x, ...params].map((t) => Array.from(t.grad!.toArray())) };
        });
      const a = pass(true);
      const b = pass(false);
      // One GEMM of width 3D against three of width D (and, for dx, one of depth 3D against three summed): the same
      // products, summed in other orders.
      const tol = dtype === 'float64' ? { atol: 1e-12, rtol: 1e-12 } : { atol: 2e-5, rtol: 2e-5 };
      assertClose(a.y, b.y, tol, 'context');
      a.grads.forEach((g, i) => assertClose(g, b.grads[i]!, tol, i === 0 ? 'dx' : `d${['Wq', 'bq', 'Wk', 'bk', 'Wv', 'bv'][i - 1]}`));
    });
});

describe("MultiHeadAttention (the ViT's): the fused QKV projection against three separate ones", () => {
  it('the same output and gradients for every projection parameter and the input (float64, varlen)', () => {
    const D = 24, H = 2, lens = [5, 0, 11];
    const nnz = lens.reduce((a, b) => a + b, 0);
    const rng = new Rng(9);
    const mha = new MultiHeadAttention(D, H, { rng, dtype: 'float64', std: 0.3 });
    for (const p of [mha.query.bias!, mha.key.bias!, mha.value.bias!]) p.native.write(Float64Array.from({ length: D }, () => rng.uniform() - 0.5));
    const xv = Array.from({ length: nnz * D }, () => rng.uniform() * 2 - 1);
    const wv = Array.from({ length: nnz * D }, () => rng.uniform() * 2 - 1);
    const cu = [0, 5, 5, 16];
    const params = [mha.query.weight, mha.query.bias!, mha.key.weight, mha.key.bias!, mha.value.weight, mha.value.bias!, mha.output.weight, mha.output.bias!];
    const pass = (fused: boolean): { y: number[]; grads: number[][] } =>
      scope(() => {
        for (const p of params) {
          p.grad?.dispose();
          p.grad = null;
        }
        const x = tensor(xv, [nnz, D], 'float64');
        x.requiresGrad = true;
        const opts = { cuSeqlens: tensor(cu, [4], 'int32'), maxSeqlen: 11 };
        let y: Tensor;
        if (fused) {
          y = mha.forward(x, opts).out;
        } else {
          const split = (t: Tensor): Tensor => reshape(t, [nnz, H, D / H]);
          const lin = (l: typeof mha.query): Tensor => linear(x, l.weight, l.bias);
          const r = attention(split(lin(mha.query)), split(lin(mha.key)), split(lin(mha.value)), opts);
          y = linear(reshape(r.out, [nnz, D]), mha.output.weight, mha.output.bias);
        }
        backward(sum(mul(y, tensor(wv, y.shape, 'float64'))));
        return { y: Array.from(y.toArray()), grads: [x, ...params].map((t) => Array.from(t.grad!.toArray())) };
      });
    const a = pass(true);
    const b = pass(false);
    const tol = { atol: 1e-12, rtol: 1e-12 };
    assertClose(a.y, b.y, tol, 'output');
    a.grads.forEach((g, i) => assertClose(g, b.grads[i]!, tol, `gradient ${i}`));
  });
});
