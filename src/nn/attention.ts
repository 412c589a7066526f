/** Multi-head self-attention on the fused kernel, with HF BERT's parameter names. */
import { attention, attentionQkv, type AttentionOptions } from '../ops/attention.js';
import { reshape } from '../ops/elementwise.js';
import type { Tensor } from '../tensor.js';
import { expected } from '../errors.js';
import { checkInt } from '../validate.js';
import { Linear, type InitOptions } from './layers.js';
import { Module } from './module.js';
import { profileLabel } from '../profile/state.js';
import { projectQkv, qkvFusable } from './qkv.js';

export class MultiHeadAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly output: Linear;
  readonly headDim: number;
  /** One stacked QKV projection where possible (src/nn/qkv.ts); false: three (setFusions, for ablations). */
  fuseQkv = true;

  constructor(
    readonly dim: number,
    readonly heads: number,
    init: InitOptions,
  ) {
    super();
    checkInt(dim, 'dim', 1);
    checkInt(heads, 'heads', 1);
    if (dim % heads !== 0) throw expected(`a width divisible by heads (${heads})`, 'dim', dim);
    this.headDim = dim / heads;
    this.query = this.registerModule('query', new Linear(dim, dim, init));
    this.key = this.registerModule('key', new Linear(dim, dim, init));
    this.value = this.registerModule('value', new Linear(dim, dim, init));
    this.output = this.registerModule('output', new Linear(dim, dim, init));
  }

  /** x: [B, L, D] (or [nnz, D] with cuSeqlens) → same shape. */
  forward(x: Tensor, opts: AttentionOptions = {}): { out: Tensor; entropy?: Tensor } {
    const lead = x.shape.slice(0, -1);
    const split = (t: Tensor): Tensor => reshape(t, [...lead, this.heads, this.headDim]);
    let r;
    if (this.fuseQkv && qkvFusable(this.query, this.key, this.value)) {
      // One GEMM of width 3D instead of three (src/nn/qkv.ts); attention reads q, k and v in place from its output.
      const qkv = profileLabel('attention QKV', () => projectQkv(this.query, this.key, this.value, x));
      r = attentionQkv(reshape(qkv, [...lead, 3, this.heads, this.headDim]), opts);
    } else {
      const [q, k, v] = profileLabel('attention QKV', () => [this.query.forward(x), this.key.forward(x), this.value.forward(x)] as const);
      r = attention(split(q), split(k), split(v), opts);
    }
    const merged = reshape(r.out, [...lead, this.dim]);
    const out = profileLabel('attention output', () => this.output.forward(merged));
    return r.entropy ? { out, entropy: r.entropy } : { out };
  }
}
