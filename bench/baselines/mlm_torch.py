#!/usr/bin/env python3
"""PyTorch eager BERT MLM training step: the baseline of bench/mlm-step.ts.

A BERT encoder written in plain torch.nn (no transformers): word + position +
token-type embeddings, LayerNorm, dropout; post-LN layers with separate q/k/v
linears and eager softmax attention (additive key-padding mask, no
attention-probability dropout, as cloze's fused kernel has none), GELU (erf)
FFN; the MLM head gathers the masked rows, then dense → GELU → LayerNorm →
decoder tied to the word embeddings + bias, then mean cross-entropy. One
training step is forward, backward, clip_grad_norm_(1.0) and
torch.optim.AdamW (weights decayed, biases and norms not, as cloze's AdamW).
build() is shared: BertMlm.encode (the encoder alone, with an optional
word-embedding perturbation) and head_hidden (the head's transform) serve
finetune_torch.py, which builds it without the MLM head for mlp-ft.

Batch: B×L ids, all tokens real, M = round(B·L·ratio) masked rows at random
positions; the same 32-bit xorshift as bench/lib/mlm_batch.ts, so both sides
mask the same positions. Prints one JSON object on stdout.

Memory: peak_rss_bytes is VmHWM at exit, the whole process's peak resident
set since exec (torch import, model, optimizer state, every step).
step_rss_growth_bytes is the peak growth over one step after warm-up, after
malloc_trim and a VmHWM reset through /proc/self/clear_refs (bench/lib/rss.ts
measures the cloze side the same way).
"""
import argparse
import json
import math
import sys

from bench_common import fail, step_report, time_steps


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--mask-ratio", type=float, default=0.15)
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=1024)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seed", type=int, default=1234)
    return p.parse_args()


def xorshift(seed):
    """32-bit xorshift (13, 17, 5), the generator of bench/lib/mlm_batch.ts."""
    x = (seed * 2654435761) % 2**32 or 1
    while True:
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        yield x


def mlm_batch(B, L, V, ratio, seed):
    """ids [B·L] in [5, V), masked rows: the first M of a Fisher–Yates shuffle, sorted; targets in [5, V)."""
    g = xorshift(seed)
    n = B * L
    ids = [5 + next(g) % (V - 5) for _ in range(n)]
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        j = next(g) % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    M = round(n * ratio)
    rows = sorted(perm[:M])
    targets = [5 + next(g) % (V - 5) for _ in range(M)]
    return ids, rows, targets


def build(torch, a):
    nn = torch.nn
    F = torch.nn.functional
    D, H = a.hidden, a.heads
    Dh = D // H

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.query = nn.Linear(D, D)
            self.key = nn.Linear(D, D)
            self.value = nn.Linear(D, D)
            self.attn_out = nn.Linear(D, D)
            self.ln1 = nn.LayerNorm(D, eps=1e-12)
            self.inter = nn.Linear(D, a.intermediate)
            self.out = nn.Linear(a.intermediate, D)
            self.ln2 = nn.LayerNorm(D, eps=1e-12)
            self.drop = nn.Dropout(a.dropout)

        def forward(self, x, add_mask):
            B, L, _ = x.shape
            split = lambda t: t.view(B, L, H, Dh).transpose(1, 2)  # noqa: E731
            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            if getattr(a, "attention", "math") == "sdpa":
                ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=add_mask)
            else:
                s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(Dh)
                if add_mask is not None:
                    s = s + add_mask
                ctx = torch.matmul(torch.softmax(s, dim=-1), v)
            ctx = ctx.transpose(1, 2).reshape(B, L, D)
            h = self.ln1(x + self.drop(self.attn_out(ctx)))
            return self.ln2(h + self.drop(self.out(F.gelu(self.inter(h)))))

    class BertMlm(nn.Module):
        def __init__(self):
            super().__init__()
            self.word = nn.Embedding(a.vocab, D)
            self.pos = nn.Embedding(512, D)
            self.tok_type = nn.Embedding(2, D)
            self.ln = nn.LayerNorm(D, eps=1e-12)
            self.drop = nn.Dropout(a.dropout)
            self.layers = nn.ModuleList([Layer() for _ in range(a.layers)])
            if getattr(a, "mlm_head", True):
                self.head_dense = nn.Linear(D, D)
                self.head_ln = nn.LayerNorm(D, eps=1e-12)
                self.decoder_bias = nn.Parameter(torch.zeros(a.vocab))
            for m in self.modules():
                if isinstance(m, (nn.Linear, nn.Embedding)):
                    nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
                if isinstance(m, nn.Linear):
                    nn.init.zeros_(m.bias)

        def encode(self, ids, attention_mask, token_type_ids=None, word_delta=None):
            """Final hidden states [B, L, D]; word_delta [B, L, D] is added to the word embeddings alone (PGD)."""
            B, L = ids.shape
            pos = torch.arange(L, device=ids.device).unsqueeze(0).expand(B, L)
            w = self.word(ids)
            if word_delta is not None:
                w = w + word_delta
            types = torch.zeros_like(ids) if token_type_ids is None else token_type_ids
            x = self.drop(self.ln(w + self.pos(pos) + self.tok_type(types)))
            add_mask = None
            if attention_mask is not None:
                # Under bf16 autocast (the CUDA baseline) q, k, v are bf16: SDPA wants the additive mask in their dtype.
                mdt = torch.bfloat16 if getattr(a, "autocast_bf16", False) else torch.float32
                add_mask = (1.0 - attention_mask[:, None, None, :].to(mdt)) * torch.finfo(mdt).min
            for layer in self.layers:
                x = layer(x, add_mask)
            return x

        def head_hidden(self, h):
            """The MLM head's transform on gathered rows [M, D]: dense → GELU → LayerNorm."""
            return self.head_ln(F.gelu(self.head_dense(h)))

        def forward(self, ids, attention_mask, rows, targets):
            B, L = ids.shape
            x = self.encode(ids, attention_mask)
            h = self.head_hidden(x.reshape(B * L, D).index_select(0, rows))
            logits = F.linear(h, self.word.weight, self.decoder_bias)
            return F.cross_entropy(logits, targets)

    return BertMlm()


def main():
    a = parse()
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - reported to the caller
        fail(f"cannot import torch with {sys.executable}: {e}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    B, L = a.batch, a.length
    ids_l, rows_l, targets_l = mlm_batch(B, L, a.vocab, a.mask_ratio, a.seed)
    ids = torch.tensor(ids_l, dtype=torch.long).view(B, L)
    mask = torch.ones(B, L, dtype=torch.long)
    rows = torch.tensor(rows_l, dtype=torch.long)
    targets = torch.tensor(targets_l, dtype=torch.long)
    model = build(torch, a)
    model.train()
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and "ln" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (n.endswith("weight") and "ln" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-4
    )
    params = list(model.parameters())
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(ids, mask, rows, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())

    t = time_steps(step, a.warmup, a.reps)
    med = t["median_ms"]
    print(json.dumps(step_report(torch, params, t, losses,
        masked_rows=len(rows_l),
        tokens_per_s=B * L / (med / 1e3),
    )))


if __name__ == "__main__":
    main()
