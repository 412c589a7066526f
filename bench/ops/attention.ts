/**
 * The fused attention kernel, q, k, v [B, L, H, Dh], no mask, scale 1/√Dh, at
 * the shapes of bert-tiny and bert-mini (32×128) and of vit-micro-fmnist's
 * encoder under MAE (the 12 visible of 49 tokens) and SimMIM (all 49).
 * FLOPs by FlashAttention's convention: forward 4·B·H·L²·Dh, backward 2.5×.
 */
import { attentionFlops } from '../lib/flops.js';
import { bertShape, vitShape } from '../lib/model-shapes.js';
import { dims, type OpCase } from '../lib/op-case.js';

const attention = (model: string, B: number, L: number, H: number, Dh: number, what = ''): OpCase => ({
  op: 'attention',
  model,
  shape: `q, k, v ${dims([B, L, H, Dh])}${what}`,
  bound: 'compute',
  setup(ctx) {
    const shape = [B, L, H, Dh];
    const q = ctx.rand(shape);
    const k = ctx.rand(shape);
    const v = ctx.rand(shape);
    const dout = ctx.rand(shape);
    const opts = { scale: 1 / Math.sqrt(Dh) };
    const n = ctx.addon;
    const r = ctx.keep(n.attention(q, k, v, opts));
    const f = attentionFlops(B, H, L, Dh);
    return {
      fwd: { run: () => n.attention(q, k, v, opts), flops: f.fwd },
      bwd: { run: () => n.attentionBackward(dout, q, k, v, r.out, r.lse, opts), flops: f.bwd },
    };
  },
});

// The same kernels over one qkv [B, L, 3, H, Dh] (a fused QKV projection's output), read with a 3·H·Dh row stride:
// the BERT layers' form since the projection was fused.
const attentionQkv = (model: string, B: number, L: number, H: number, Dh: number): OpCase => ({
  op: 'attentionQkv',
  model,
  shape: `qkv ${dims([B, L, 3, H, Dh])}`,
  bound: 'compute',
  setup(ctx) {
    const qkv = ctx.rand([B, L, 3, H, Dh]);
    const dout = ctx.rand([B, L, H, Dh]);
    const opts = { scale: 1 / Math.sqrt(Dh) };
    const n = ctx.addon;
    const r = ctx.keep(n.attentionQkv(qkv, opts));
    const f = attentionFlops(B, H, L, Dh);
    return {
      fwd: { run: () => n.attentionQkv(qkv, opts), flops: f.fwd },
      bwd: { run: () => n.attentionQkvBackward(dout, qkv, r.out, r.lse, opts), flops: f.bwd },
    };
  },
});

const tiny = bertShape('bert-tiny');
const mini = bertShape('bert-mini');
const vit = vitShape();

export const cases: OpCase[] = [
  attention(tiny.label, tiny.B, tiny.L, tiny.heads, tiny.Dh),
  attention(mini.label, mini.B, mini.L, mini.heads, mini.Dh),
  attentionQkv(mini.label, mini.B, mini.L, mini.heads, mini.Dh),
  attention(vit.label, vit.B, vit.keep, vit.heads, vit.Dh, ' (MAE encoder: visible tokens)'),
  attention(vit.label, vit.B, vit.L, vit.heads, vit.Dh, ' (SimMIM encoder, MAE decoder: all tokens)'),
];
