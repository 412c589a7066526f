/**
 * The BERT encoder's building blocks, one module per HF submodule so that
 * parameter names match `transformers`' BertModel exactly. Every block takes
 * hidden states [B, L, D] (padded) or [nnz, D] (packed), with the attention
 * layout given by `AttentionLayout`.
 */
import { attention, attentionQkv } from '../../ops/attention.js';
import { projectQkv, qkvFusable } from '../../nn/qkv.js';
import { add, gelu, reshape } from '../../ops/elementwise.js';
import { geglu } from '../../ops/geglu.js';
import { Dropout, LayerNorm, Linear, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { profileLabel } from '../../profile/state.js';
import type { Tensor } from '../../tensor.js';
import type { LayerAttentionBiasFn } from './batch.js';
import type { BertConfig } from './config.js';

/** How attention sees the rows: padded with a key-padding mask, or packed with cuSeqlens. */
export interface AttentionLayout {
  /** uint8 [B, L], 1 = padding (padded layout). */
  keyPadding?: Tensor;
  /** int32 [B+1] (packed layout; rows are [nnz, D]). */
  cuSeqlens?: Tensor;
  maxSeqlen?: number;
  /** [H] ALiBi slopes, or none for absolute positions. */
  alibiSlopes?: Tensor;
  /** Padded layout: an additive attention bias [B, L, L] per layer, shared by the heads (ASA's adversarial masks). */
  layerBias?: LayerAttentionBias;
}

/**
 * The attention bias [B, L, L] of encoder layer `layer` from that layer's
 * input x [B, L, D] and the key padding (uint8 [B, L], 1 = padding), added to
 * every head's scores through the fused kernel's `bias`.
 */
export type LayerAttentionBias = LayerAttentionBiasFn;

export { ModuleList } from '../../nn/module-list.js';

/** Optional inputs of a layer forward used by the MLM decoders (pre-training only). */
export interface LayerExtra {
  /** Keys and values from this tensor (same shape as the query input); the query input is the residual. */
  kv?: Tensor;
}

/** attention.self: the q, k, v projections and the fused attention kernel. */
export class BertSelfAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  /** One stacked QKV projection where possible (src/nn/qkv.ts); false: three (setFusions, for ablations). */
  fuseQkv = true;
  constructor(
    readonly hidden: number,
    readonly heads: number,
    init: InitOptions,
  ) {
    super();
    this.query = this.registerModule('query', new Linear(hidden, hidden, init));
    this.key = this.registerModule('key', new Linear(hidden, hidden, init));
    this.value = this.registerModule('value', new Linear(hidden, hidden, init));
  }
  /**
   * x [..., D] → context [..., D] (heads merged, before the output projection); `bias` [B, L, L] is added to every head's scores.
   * `extra.kv` (same shape as x): keys and values come from it, queries from x (DeBERTa's enhanced mask decoder).
   */
  forward(x: Tensor, layout: AttentionLayout, bias?: Tensor, extra: LayerExtra = {}): Tensor {
    const lead = x.shape.slice(0, -1);
    const split = (t: Tensor): Tensor => reshape(t, [...lead, this.heads, this.hidden / this.heads]);
    const { keyPadding, cuSeqlens, maxSeqlen, alibiSlopes } = layout;
    const opts = { keyPadding, cuSeqlens, maxSeqlen, alibiSlopes, ...(bias ? { bias } : {}) };
    if (!extra.kv && this.fuseQkv && qkvFusable(this.query, this.key, this.value)) {
      // One GEMM of width 3D instead of three (src/nn/qkv.ts); attention reads q, k and v in place from its output.
      const qkv = profileLabel('attention QKV', () => projectQkv(this.query, this.key, this.value, x));
      const r = attentionQkv(reshape(qkv, [...lead, 3, this.heads, this.hidden / this.heads]), opts);
      return reshape(r.out, [...lead, this.hidden]);
    }
    const kv = extra.kv ?? x;
    const [q, k, v] = profileLabel('attention QKV', () => [this.query.forward(x), this.key.forward(kv), this.value.forward(kv)] as const);
    const r = attention(split(q), split(k), split(v), opts);
    return reshape(r.out, [...lead, this.hidden]);
  }
}

/** The output projection, dropout and LayerNorm shared by attention.output and output. */
export class BertProjection extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm;
  readonly dropout: Dropout;
  /** The profile's label of the dense GEMM ('attention output' or 'FFN out'). */
  private readonly site: string;
  /** The residual add fused with the dropout (dropoutAdd); false: the chain (setFusions, for ablations). */
  fuseResidual = true;
  constructor(inFeatures: number, c: BertConfig, init: InitOptions, dropoutSeed: number, site = 'projection') {
    super();
    this.site = site;
    this.dense = this.registerModule('dense', new Linear(inFeatures, c.hidden, init));
    this.LayerNorm = this.registerModule('LayerNorm', new LayerNorm(c.hidden, c.layerNormEps, init.dtype));
    this.dropout = this.registerModule('dropout', new Dropout(c.hiddenDropout, dropoutSeed));
  }
  /** Post-LN: LN(residual + drop(dense(x))). Pre-LN: residual + drop(dense(x)) (the LN ran before the sublayer). */
  forward(x: Tensor, residual: Tensor, post: boolean): Tensor {
    const h = profileLabel(this.site, () => this.dense.forward(x));
    const y = this.fuseResidual ? this.dropout.forwardAdd(h, residual) : add(residual, this.dropout.forward(h));
    return post ? this.LayerNorm.forward(y) : y;
  }
}

export class BertAttention extends Module {
  readonly self: BertSelfAttention;
  readonly output: BertProjection;
  constructor(c: BertConfig, init: InitOptions, dropoutSeed: number) {
    super();
    this.self = this.registerModule('self', new BertSelfAttention(c.hidden, c.heads, init));
    this.output = this.registerModule('output', new BertProjection(c.hidden, c, init, dropoutSeed, 'attention output'));
  }
}

/**
 * intermediate.dense: Linear(D, I) then GELU; for GeGLU, Linear(D, 2I, no
 * bias) then GELU(first half)·(second half), keeping the HF name.
 */
export class BertIntermediate extends Module {
  readonly dense: Linear;
  constructor(
    c: BertConfig,
    init: InitOptions,
    readonly gated: boolean,
  ) {
    super();
    const out = gated ? 2 * c.intermediate : c.intermediate;
    this.dense = this.registerModule('dense', new Linear(c.hidden, out, { ...init, bias: !gated }));
  }
  forward(x: Tensor): Tensor {
    const h = profileLabel('FFN in', () => this.dense.forward(x));
    return this.gated ? geglu(h) : gelu(h);
  }
}

/**
 * One encoder layer. Post-LN (BERT): h = LN₁(x + Attn(x)), y = LN₂(h + FFN(h)).
 * Pre-LN: h = x + Attn(LN₁(x)), y = h + FFN(LN₂(h)), where LN₁ is
 * attention.output.LayerNorm and LN₂ is output.LayerNorm, so both variants
 * share one set of names.
 */
export class BertLayer extends Module {
  readonly attention: BertAttention;
  readonly intermediate: BertIntermediate;
  readonly output: BertProjection;
  private readonly post: boolean;
  constructor(c: BertConfig, init: InitOptions, dropoutSeeds: [number, number]) {
    super();
    this.post = c.norm === 'post';
    this.attention = this.registerModule('attention', new BertAttention(c, init, dropoutSeeds[0]));
    this.intermediate = this.registerModule('intermediate', new BertIntermediate(c, init, c.ffn === 'geglu'));
    this.output = this.registerModule('output', new BertProjection(c.intermediate, c, init, dropoutSeeds[1], 'FFN out'));
  }
  /**
   * `bias`: an additive attention bias [B, L, L] shared by the heads (ASA), or none. `extra.kv`: keys and
   * values from another tensor (pre-LN: through the same LN₁), x stays the query and the residual.
   * Without `extra` the plain path is unchanged.
   */
  forward(x: Tensor, layout: AttentionLayout, bias?: Tensor, extra: LayerExtra = {}): Tensor {
    const a = this.attention;
    if (this.post) {
      const h = a.output.forward(a.self.forward(x, layout, bias, extra), x, true);
      return this.output.forward(this.intermediate.forward(h), h, true);
    }
    const ln1 = a.output.LayerNorm;
    const pre = extra.kv ? { ...extra, kv: ln1.forward(extra.kv) } : extra;
    const h = a.output.forward(a.self.forward(ln1.forward(x), layout, bias, pre), x, false);
    return this.output.forward(this.intermediate.forward(this.output.LayerNorm.forward(h)), h, false);
  }
}
