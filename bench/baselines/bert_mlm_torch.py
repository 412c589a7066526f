#!/usr/bin/env python3
"""PyTorch eager BERT MLM training step on CUDA, bf16 autocast: the MLM baseline of bench/cuda.ts.

The same BERT as bench/baselines/mlm_torch.py (plain torch.nn, no
transformers: word + position + token-type embeddings, LayerNorm, dropout;
post-LN layers with q/k/v linears, GELU (erf) FFN; the MLM head gathers the
masked rows, then dense -> GELU -> LayerNorm -> decoder tied to the word
embeddings + bias, mean cross-entropy), at bert-base size by default. On the
GPU: parameters in float32 (the master weights), the forward under
torch.autocast('cuda', dtype=torch.bfloat16), attention through
F.scaled_dot_product_attention with no mask when every token is real (as
Hugging Face's sdpa path does; PyTorch then picks its flash kernel) and no
attention-probability dropout (cloze's fused kernel has none). --attention
math switches to the explicit softmax(q·kᵀ)·v. Hidden dropout 0.1.

One step: zero_grad(set_to_none), forward, backward, clip_grad_norm_(1.0),
torch.optim.AdamW (PyTorch's default implementation for CUDA tensors, i.e.
foreach; --fused uses fused=True), then loss.item(), which waits for the
whole step, so the host clock around a step measures its GPU work
(bench_common.time_steps). Batch: the xorshift batch of bench/lib/mlm_batch.ts.
Prints one JSON object; errors are JSON too.
"""
import argparse
import json
import sys

from bench_common import cuda_facts, fail, time_steps
from mlm_torch import build, mlm_batch


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--length", type=int, default=128)
    p.add_argument("--mask-ratio", type=float, default=0.15)
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--hidden", type=int, default=768)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--intermediate", type=int, default=3072)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--attention", choices=["sdpa", "math"], default="sdpa")
    p.add_argument("--fused", action="store_true", help="torch.optim.AdamW(fused=True)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--seed", type=int, default=1234)
    return p.parse_args()



def adamw_impl(torch, params, fused):
    """Which AdamW implementation ran: fused, or the one torch defaults to for these tensors."""
    if fused:
        return "AdamW fused"
    try:
        from torch.optim.optimizer import _default_to_fused_or_foreach

        _, foreach = _default_to_fused_or_foreach(params, differentiable=False, use_fused=False)
        return "AdamW foreach" if foreach else "AdamW for-loop"
    except Exception:  # noqa: BLE001 - a private helper; informational only
        return "AdamW default"

def main():
    a = parse()
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - reported to the caller
        fail(f"cannot import torch with {sys.executable}: {e}")
    if not torch.cuda.is_available():
        fail(f"torch {torch.__version__} ({sys.executable}) has no usable CUDA device (built for CUDA {torch.version.cuda})")
    if a.attention == "sdpa" and not hasattr(torch.nn.functional, "scaled_dot_product_attention"):
        fail(f"torch {torch.__version__} has no scaled_dot_product_attention (needs torch >= 2.0; or pass --attention math)")
    dev = torch.device("cuda")
    torch.manual_seed(0)
    B, L = a.batch, a.length
    ids_l, rows_l, targets_l = mlm_batch(B, L, a.vocab, a.mask_ratio, a.seed)
    ids = torch.tensor(ids_l, dtype=torch.long, device=dev).view(B, L)
    # Every token is real: no mask, as Hugging Face's sdpa path drops an all-ones mask.
    mask = None
    rows = torch.tensor(rows_l, dtype=torch.long, device=dev)
    targets = torch.tensor(targets_l, dtype=torch.long, device=dev)
    a.autocast_bf16 = True  # the key-padding mask, when there is one, in the bf16 of autocast
    model = build(torch, a).to(dev)
    model.train()
    named = list(model.named_parameters())
    decay = [p for n, p in named if n.endswith("weight") and "ln" not in n]
    no_decay = [p for n, p in named if not (n.endswith("weight") and "ln" not in n)]
    groups = [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=1e-4, fused=True) if a.fused else torch.optim.AdamW(groups, lr=1e-4)
    params = list(model.parameters())
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(ids, mask, rows, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())

    try:
        step()
    except RuntimeError as e:
        fail(f"the step failed on {torch.cuda.get_device_name()}: {str(e).splitlines()[0]}")
    torch.cuda.reset_peak_memory_stats()
    t = time_steps(step, a.warmup, a.reps)
    med = t["median_ms"]
    print(
        json.dumps(
            {
                **cuda_facts(torch),
                "attention": a.attention,
                "optimizer": adamw_impl(torch, params, a.fused),
                "params": sum(p.numel() for p in params),
                "masked_rows": len(rows_l),
                "median_ms": med,
                "samples_ms": t["samples_ms"],
                "tokens_per_s": B * L / (med / 1e3),
                "losses": losses,
                "peak_bytes": torch.cuda.max_memory_allocated(),
            }
        )
    )


if __name__ == "__main__":
    main()
