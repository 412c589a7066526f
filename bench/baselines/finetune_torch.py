#!/usr/bin/env python3
"""PyTorch eager BERT fine-tuning step: the baseline of bench/finetune-step.ts.

The encoder is bench/baselines/mlm_torch.py's plain torch.nn BERT (no
transformers: word + position + token-type embeddings, LayerNorm, dropout;
post-LN layers, eager softmax attention with an additive key-padding mask and
no attention-probability dropout, as cloze's fused kernel has none; GELU (erf)
FFN), with one of cloze's two fine-tuning heads on top:

  mlp-ft  BertForSequenceClassification: the [CLS] row → pooler (dense + tanh)
          → dropout → linear head [C] → mean cross-entropy.
  mvp     MVP: the [MASK] row of every templated sequence (sequence e·T + t
          for example e and template t) → the MLM head's transform (dense →
          GELU → LayerNorm) → the logits of the K label words only (the K rows
          of the tied decoder and their biases) → max over each class's words
          → mean over the T templates → mean cross-entropy.

--adv adds one-step L2 PGD on the word embeddings as src/tasks/finetune/pgd.ts
does it: a random start u ~ U[-1, 1) scaled to norm eps per sequence, its
gradient in eval mode (no dropout) through torch.autograd.grad (no weight
gradients), delta = proj_eps(delta0 + 1.5·eps·g/‖g‖), then the training pass
on word_embeddings(ids) + delta.

One step is cloze's training loop's: zero_grad(set_to_none), the loss,
backward, clip_grad_norm_(1.0), torch.optim.AdamW (lr 1e-4, betas 0.9/0.999,
eps 1e-8, weight decay 0.01 on matrices, none on biases and norms) with a
LambdaLR of cloze's schedule (10% linear warmup, linear decay), and
loss.item(). Inputs are random token ids, every sequence full length (mask all
ones), a different pre-built batch each step. Prints one JSON object.
"""
import argparse
import json
import sys

from bench_common import fail, step_report, time_steps
from mlm_torch import build


def ints(s):
    return [int(x) for x in s.split(",") if x != ""]


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", choices=["mlp-ft", "mvp"], required=True)
    p.add_argument("--adv", action="store_true", help="one-step L2 PGD on the word embeddings")
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batch", type=int, default=32, help="examples per step")
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--intermediate", type=int, default=1024)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--classes", type=int, default=2)
    p.add_argument("--words", type=ints, default=None, help="mvp: the K label word ids")
    p.add_argument("--class-of", type=ints, default=None, help="mvp: each label word's class")
    p.add_argument("--mask-pos", type=ints, default=None, help="mvp: the [MASK] position of each template's sequences")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.999)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--warmup-ratio", type=float, default=0.1)
    p.add_argument("--pgd-eps", type=float, default=1.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--seed", type=int, default=1234)
    return p.parse_args()



def main():
    a = parse()
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - reported to the caller
        fail(f"cannot import torch with {sys.executable}: {e}")
    nn = torch.nn
    F = torch.nn.functional
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    B, L, D, C = a.batch, a.length, a.hidden, a.classes
    mvp = a.method == "mvp"
    if mvp:
        if not (a.words and a.class_of and a.mask_pos) or len(a.words) != len(a.class_of):
            fail("mvp needs --words, --class-of (as many) and --mask-pos")
        T = len(a.mask_pos)
        class_words = [torch.tensor([k for k, c in enumerate(a.class_of) if c == cl], dtype=torch.long) for cl in range(C)]
        if any(len(w) == 0 for w in class_words):
            fail("every class needs a label word (--class-of)")
        words = torch.tensor(a.words, dtype=torch.long)
    else:
        T = 1
    S = B * T  # sequences per step
    a.mlm_head = mvp  # mlp-ft: BertForSequenceClassification has no MLM head

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = build(torch, a)
            if not mvp:
                self.pooler = nn.Linear(D, D)
                self.drop = nn.Dropout(a.dropout)
                self.classifier = nn.Linear(D, C)
                for m in (self.pooler, self.classifier):
                    nn.init.normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)

        def forward(self, ids, mask, rows, delta=None):
            x = self.bert.encode(ids, mask, None, delta)
            if not mvp:
                return self.classifier(self.drop(torch.tanh(self.pooler(x[:, 0]))))
            h = self.bert.head_hidden(x.reshape(S * L, D).index_select(0, rows))
            scores = F.linear(h, self.bert.word.weight.index_select(0, words), self.bert.decoder_bias.index_select(0, words))
            s = scores.view(B, T, -1)
            per_class = torch.stack([s.index_select(2, w).amax(dim=2) for w in class_words], dim=2)  # [B, T, C]
            return per_class.mean(dim=1)

    model = Classifier()
    model.train()
    named = list(model.named_parameters())
    # Matrices (linear and embedding weights) decayed; biases and LayerNorms not, as cloze's Parameter.decay.
    groups = [
        {"params": [p for _, p in named if p.dim() >= 2], "weight_decay": a.weight_decay},
        {"params": [p for _, p in named if p.dim() < 2], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps)
    total = max(1, a.warmup) + a.reps + 1  # time_steps' warm-up, timed and RSS steps
    warm = round(a.warmup_ratio * total)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / max(1, warm) if s < warm else max(0.0, (total - s) / max(1, total - warm))
    )
    params = [p for _, p in named]

    gen = torch.Generator().manual_seed(a.seed)
    batches = [
        (torch.randint(1000, a.vocab, (S, L), generator=gen), torch.randint(0, C, (B,), generator=gen)) for _ in range(total)
    ]
    mask = torch.ones(S, L, dtype=torch.long)
    rows = (
        torch.tensor([(e * T + t) * L + a.mask_pos[t] for e in range(B) for t in range(T)], dtype=torch.long) if mvp else None
    )
    alpha = 1.5 * a.pgd_eps
    losses = []

    def per_seq_norm(x):
        return x.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1)

    def pgd(ids, labels):
        u = torch.rand(S, L, D, generator=gen) * 2 - 1
        d0 = (a.pgd_eps * u / per_seq_norm(u)).requires_grad_(True)
        model.eval()
        (g,) = torch.autograd.grad(F.cross_entropy(model(ids, mask, rows, d0), labels), d0)
        model.train()
        d = d0.detach() + alpha * g / per_seq_norm(g)
        return d * torch.clamp(a.pgd_eps / per_seq_norm(d), max=1.0)

    def step():
        ids, labels = batches[len(losses) % len(batches)]
        opt.zero_grad(set_to_none=True)
        delta = pgd(ids, labels) if a.adv else None
        loss = F.cross_entropy(model(ids, mask, rows, delta), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, a.clip)
        opt.step()
        sched.step()
        losses.append(loss.item())

    t = time_steps(step, a.warmup, a.reps)
    med = t["median_ms"]
    print(json.dumps(step_report(torch, params, t, losses,
        sequences=S,
        examples_per_s=B / (med / 1e3),
    )))


if __name__ == "__main__":
    main()
