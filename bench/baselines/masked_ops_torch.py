#!/usr/bin/env python3
"""PyTorch counterparts of cloze's masked-token kernels: the baselines of bench:cuda's "masked" section.

Three cases, forward + backward, bfloat16 inputs on CUDA (--device cpu runs the
same code in float32 on the CPU, to check the script where there is no GPU):

  mlm-head      loss = cross_entropy(linear(h, W, b), targets) on the masked
                rows only, h [M, D], W [V, D], b [V], under autocast(bf16);
                gradients for h, W and b (what cloze's fused linearCrossEntropy
                computes without the [M, V] logits).
  token-gather  MAE's encoder input: x [B, L, D] gathered at ids_keep [B, K]
                (torch.gather with the index expanded over D, as the official
                random_masking does), then its backward (a scatter-add).
  patch-loss    MAE's forward_loss with norm_pix_loss: target patches
                normalised per patch (mean, var + 1e-6), (pred - target)^2
                averaged over the patch, summed over masked patches / their
                count; gradient for pred.
  sparse-conv   SparK's official masked-dense 3x3 convolution (its
                sp_conv_forward): y = conv2d(x, W, padding=1) * mask on the
                whole [B, C, S, S] map, x zero at the masked sites (as the
                previous layer's masking leaves it), NCHW as the official code,
                W float32 under autocast; gradients for x and W. cloze
                convolves the visible sites only (its rulebook built outside
                the timed step).

The inputs have the shapes of bench/lib/cuda-masked.ts, not its values (the
losses are reported for a sanity check). One difference is deliberate: the
mlm-head's W and b are float32 here, as autocast training keeps them (cast to
bf16 on every call, gradients in float32), and b starts at zero; cloze's side
holds bf16 weights, as its mixed precision does. torch's time and memory
therefore include that cast and the float32 dW.
Timing: the median of samples of `batch` calls between two synchronizations
on the host clock, as the cloze side does. Prints one JSON object; errors are
JSON too.
"""
import argparse
import json
import sys

from bench_common import cuda_facts, fail, time_batched


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", choices=["mlm-head", "token-gather", "patch-loss", "sparse-conv"], required=True)
    p.add_argument("--rows", type=int, default=4915, help="mlm-head: masked rows M")
    p.add_argument("--hidden", type=int, default=768, help="mlm-head: D; token-gather: the token width")
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--batch", type=int, default=256, help="token-gather, patch-loss: B")
    p.add_argument("--tokens", type=int, default=196, help="token-gather, patch-loss: L")
    p.add_argument("--keep", type=int, default=49, help="token-gather: K visible tokens")
    p.add_argument("--patch", type=int, default=768, help="patch-loss: pixels per patch P")
    p.add_argument("--mask-ratio", type=float, default=0.75, help="patch-loss: share of masked patches")
    p.add_argument("--conv-batch", type=int, default=64, help="sparse-conv: B")
    p.add_argument("--conv-size", type=int, default=56, help="sparse-conv: the map side S")
    p.add_argument("--conv-channels", type=int, default=64, help="sparse-conv: C (in = out)")
    p.add_argument("--conv-cell", type=int, default=8, help="sparse-conv: side of a mask cell, masked whole")
    p.add_argument("--conv-ratio", type=float, default=0.6, help="sparse-conv: share of masked cells")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--min-sample-ms", type=float, default=50.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    return p.parse_args()


def mlm_head(torch, F, a, dev, dt, autocast):
    h = (torch.randn(a.rows, a.hidden, device=dev) * 0.5).to(dt).requires_grad_()
    w = (torch.randn(a.vocab, a.hidden, device=dev) * 0.02).requires_grad_()  # float32 weights under autocast, as in training
    b = torch.zeros(a.vocab, device=dev).requires_grad_()
    t = torch.randint(0, a.vocab, (a.rows,), device=dev)
    out = {}

    def step():
        with autocast():
            loss = F.cross_entropy(F.linear(h, w, b), t)
        gh, gw, gb = torch.autograd.grad(loss, (h, w, b))
        out["loss"] = loss

    return step, out


def token_gather(torch, F, a, dev, dt, autocast):
    x = torch.randn(a.batch, a.tokens, a.hidden, device=dev).to(dt).requires_grad_()
    noise = torch.rand(a.batch, a.tokens, device=dev)
    ids_keep = torch.argsort(noise, dim=1)[:, : a.keep]
    g = torch.randn(a.batch, a.keep, a.hidden, device=dev).to(dt)
    out = {}

    def step():
        y = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, a.hidden))
        (gx,) = torch.autograd.grad(y, (x,), g)
        out["loss"] = None

    return step, out


def patch_loss(torch, F, a, dev, dt, autocast):
    pred = torch.randn(a.batch, a.tokens, a.patch, device=dev).to(dt).requires_grad_()
    target = torch.rand(a.batch, a.tokens, a.patch, device=dev).to(dt)
    masked = int(a.tokens * a.mask_ratio + 0.5)  # JavaScript's Math.round (half up), as the cloze side
    noise = torch.rand(a.batch, a.tokens, device=dev)
    mask = torch.zeros(a.batch, a.tokens, device=dev)
    mask.scatter_(1, torch.argsort(noise, dim=1)[:, :masked], 1.0)
    out = {}

    def step():
        # MAE's forward_loss (norm_pix_loss=True), in float32 as the official code computes it under autocast
        tgt = target.float()
        mean = tgt.mean(dim=-1, keepdim=True)
        var = tgt.var(dim=-1, keepdim=True)
        tgt = (tgt - mean) / (var + 1.0e-6) ** 0.5
        loss = (pred.float() - tgt) ** 2
        loss = loss.mean(dim=-1)
        loss = (loss * mask).sum() / mask.sum()
        (gp,) = torch.autograd.grad(loss, (pred,))
        out["loss"] = loss

    return step, out


def sparse_conv(torch, F, a, dev, dt, autocast):
    b, s, c, cell = a.conv_batch, a.conv_size, a.conv_channels, a.conv_cell
    g = s // cell
    masked = int(g * g * a.conv_ratio + 0.5)  # JavaScript's Math.round (half up), as the cloze side
    noise = torch.rand(b, g * g, device=dev)
    keep = torch.ones(b, g * g, device=dev)
    keep.scatter_(1, torch.argsort(noise, dim=1)[:, :masked], 0.0)
    mask = keep.view(b, 1, g, g).repeat_interleave(cell, 2).repeat_interleave(cell, 3).to(dt)
    x = (torch.randn(b, c, s, s, device=dev).to(dt) * mask).requires_grad_()
    w = (torch.randn(c, c, 3, 3, device=dev) / (9 * c) ** 0.5).requires_grad_()  # float32 weights under autocast
    gy = torch.randn(b, c, s, s, device=dev).to(dt)
    out = {}

    def step():
        with autocast():
            y = F.conv2d(x, w, padding=1) * mask
        gx, gw = torch.autograd.grad(y, (x, w), gy)
        out["loss"] = None

    return step, out


def main():
    a = parse()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - reported to the caller
        fail(f"cannot import torch with {sys.executable}: {e}")
    if a.device == "cuda" and not torch.cuda.is_available():
        fail(f"torch {torch.__version__} ({sys.executable}) has no usable CUDA device (built for CUDA {torch.version.cuda})")
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    cuda = a.device == "cuda"
    dt = torch.bfloat16 if cuda else torch.float32
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    def autocast():
        if cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()

    build = {"mlm-head": mlm_head, "token-gather": token_gather, "patch-loss": patch_loss, "sparse-conv": sparse_conv}[a.case]
    step, out = build(torch, F, a, dev, dt, autocast)
    step()
    first = out["loss"]
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    timing = time_batched(sync, step, a.warmup, a.reps, a.min_sample_ms)
    print(
        json.dumps(
            {
                **cuda_facts(torch, cuda),
                "case": a.case,
                "fwd_bwd": timing,
                "loss": None if first is None else float(first),
                "peak_bytes": torch.cuda.max_memory_allocated() if cuda else None,
            }
        )
    )


if __name__ == "__main__":
    main()
