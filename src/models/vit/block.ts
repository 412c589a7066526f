/**
 * The pre-LN transformer block of ViT/MAE: x + attn(LN(x)), then x + MLP(LN(x)),
 * each branch through drop path (stochastic depth) when fine-tuning sets a rate.
 * Attention runs on the fused kernel, so MTO's exclusion and entropy come from
 * the options the caller passes per block.
 */
import { MultiHeadAttention } from '../../nn/attention.js';
import { LayerNorm, Linear, type InitOptions } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { xavierFill } from '../../nn/init.js';
import { add, gelu } from '../../ops/elementwise.js';
import type { AttentionOptions } from '../../ops/attention.js';
import type { Tensor } from '../../tensor.js';
import { dropPath } from '../../nn/drop-path.js';
import { Rng } from '../../rng.js';

/** A Linear with MAE's xavier-uniform weight and zero bias. */
export function xavierLinear(inp: number, out: number, init: InitOptions): Linear {
  const l = new Linear(inp, out, init);
  xavierFill(l.weight, init.rng);
  return l;
}

export class Mlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(dim: number, hidden: number, init: InitOptions) {
    super();
    this.fc1 = this.registerModule('fc1', xavierLinear(dim, hidden, init));
    this.fc2 = this.registerModule('fc2', xavierLinear(hidden, dim, init));
  }
  forward(x: Tensor): Tensor {
    return this.fc2.forward(gelu(this.fc1.forward(x)));
  }
}

export class VitBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly norm2: LayerNorm;
  readonly mlp: Mlp;
  /** Drop-path rate of both residual branches in training (0 in pre-training; fine-tuning sets it). */
  dropPath = 0;
  /** Draws the per-sample drop decisions; set with dropPath. */
  dropRng: Rng = new Rng(0);
  constructor(dim: number, heads: number, mlpRatio: number, lnEps: number, init: InitOptions) {
    super();
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, lnEps, init.dtype));
    this.attn = this.registerModule('attn', new MultiHeadAttention(dim, heads, init));
    for (const l of [this.attn.query, this.attn.key, this.attn.value, this.attn.output]) {
      xavierFill(l.weight, init.rng);
    }
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, lnEps, init.dtype));
    this.mlp = this.registerModule('mlp', new Mlp(dim, Math.round(dim * mlpRatio), init));
  }

  /** x [B, L, D]; `opts` carries MTO's token mask, exclusion and entropy request. */
  forward(x: Tensor, opts: AttentionOptions = {}): { out: Tensor; entropy?: Tensor } {
    const a = this.attn.forward(this.norm1.forward(x), opts);
    const drop = (t: Tensor): Tensor => dropPath(t, this.dropPath, this.dropRng, this.training);
    const h = add(x, drop(a.out));
    const out = add(h, drop(this.mlp.forward(this.norm2.forward(h))));
    return a.entropy ? { out, entropy: a.entropy } : { out };
  }
}
