/** 1,000 training steps of a small MLP + attention model leave the live native bytes flat. */
import { describe, expect, it } from 'vitest';
import {
  AdamW, add, backward, crossEntropy, Dropout, Embedding, gelu, LayerNorm, Linear, liveBytes, mean, Module,
  MultiHeadAttention, reshape, Rng, scale, scope, tensor, type Tensor,
} from '../src/index.js';

class TinyModel extends Module {
  readonly emb: Embedding;
  readonly ln1: LayerNorm;
  readonly attn: MultiHeadAttention;
  readonly ln2: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly drop: Dropout;
  readonly head: Linear;
  constructor(rng: Rng, readonly vocab: number, readonly dim: number) {
    super();
    this.emb = this.registerModule('emb', new Embedding(vocab, dim, { rng }));
    this.ln1 = this.registerModule('ln1', new LayerNorm(dim));
    this.attn = this.registerModule('attn', new MultiHeadAttention(dim, 4, { rng }));
    this.ln2 = this.registerModule('ln2', new LayerNorm(dim));
    this.fc1 = this.registerModule('fc1', new Linear(dim, 2 * dim, { rng }));
    this.fc2 = this.registerModule('fc2', new Linear(2 * dim, dim, { rng }));
    this.drop = this.registerModule('drop', new Dropout(0.1, 3));
    this.head = this.registerModule('head', new Linear(dim, vocab, { rng }));
  }
  loss(ids: Tensor, tokenMask: Tensor, rows: Tensor, targets: Tensor): Tensor {
    const x = this.emb.forward(ids);
    const a = this.attn.forward(this.ln1.forward(x), { tokenMask, excludeMaskedKeys: true, entropy: true });
    const h = add(x, this.drop.forward(a.out));
    const f = add(h, this.fc2.forward(gelu(this.fc1.forward(this.ln2.forward(h)))));
    const logits = this.head.forward(reshape(f, [-1, this.dim]));
    return add(crossEntropy(logits, targets, { rows }), scale(mean(a.entropy!), 0.01));
  }
}

describe('memory', () => {
  it('live native bytes stay flat over 1,000 forward/backward/update steps', () => {
    const rng = new Rng(0);
    const [B, L, V, D] = [2, 9, 23, 32];
    const model = new TinyModel(rng, V, D);
    const opt = new AdamW(model.parameters(), { lr: 1e-3 });
    const step = (): number =>
      scope(() => {
        const ids = tensor(Array.from({ length: B * L }, () => rng.int(V)), [B, L], 'int32');
        const tm = Array.from({ length: B * L }, () => (rng.uniform() < 0.4 ? 1 : 0));
        const tokenMask = tensor(tm, [B, L], 'uint8');
        const rowsIdx = tm.map((m, i) => (m ? i : -1)).filter((i) => i >= 0);
        if (rowsIdx.length === 0) rowsIdx.push(0);
        const rows = tensor(rowsIdx, [rowsIdx.length], 'int32');
        const targets = tensor(rowsIdx.map(() => rng.int(V)), [rowsIdx.length], 'int32');
        opt.zeroGrad();
        const loss = model.loss(ids, tokenMask, rows, targets);
        backward(loss);
        opt.clipGradNorm(1);
        opt.step();
        return loss.item();
      });
    const first = step();
    const baseline = liveBytes();
    let last = first;
    for (let i = 1; i < 1000; i++) {
      last = step();
      if (i % 100 === 0) expect(liveBytes()).toBe(baseline);
    }
    expect(liveBytes()).toBe(baseline);
    expect(Number.isFinite(last)).toBe(true);
    opt.dispose();
    model.dispose();
  });
});
