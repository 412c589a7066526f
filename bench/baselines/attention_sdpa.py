#!/usr/bin/env python3
"""PyTorch SDPA attention on CUDA, flash backend forced: the attention baseline of bench/cuda.ts.

q, k, v and the output gradient are bfloat16, stored [B, L, H, Dh] as cloze's
attention takes them and passed to scaled_dot_product_attention as the
[B, H, L, Dh] view (transpose(1, 2), no copy: the flash kernel only needs the
head dimension contiguous). No mask, no dropout, scale 1/sqrt(Dh). The flash
backend is forced with torch.nn.attention.sdpa_kernel(SDPBackend.FLASH_ATTENTION)
(torch >= 2.3; torch.backends.cuda.sdp_kernel on 2.0-2.2), so a GPU or shape the
flash kernel does not support is an error, not a silent fallback.

Three timings, each the median of samples of `batch` calls between two
torch.cuda.synchronize() calls on the host clock, as the cloze side does:
fwd (under no_grad), bwd (torch.autograd.grad on a kept graph,
retain_graph=True) and fwd+bwd. Prints one JSON object; errors are JSON too.
"""
import argparse
import json
import sys

from bench_common import cuda_facts, fail, time_batched


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--heads", type=int, default=12)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--min-sample-ms", type=float, default=50.0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()



def flash_only(torch):
    """A context manager that allows only the flash SDPA backend."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        return sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    except ImportError:
        pass
    if hasattr(torch.backends.cuda, "sdp_kernel"):
        return torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False, enable_mem_efficient=False)
    fail(f"torch {torch.__version__} has no scaled_dot_product_attention backend selection (needs torch >= 2.0)")


def main():
    a = parse()
    try:
        import torch
        import torch.nn.functional as F
    except Exception as e:  # noqa: BLE001 - reported to the caller
        fail(f"cannot import torch with {sys.executable}: {e}")
    if not torch.cuda.is_available():
        fail(f"torch {torch.__version__} ({sys.executable}) has no usable CUDA device (built for CUDA {torch.version.cuda})")
    if not hasattr(F, "scaled_dot_product_attention"):
        fail(f"torch {torch.__version__} has no scaled_dot_product_attention (needs torch >= 2.0)")
    dev = torch.device("cuda")
    torch.manual_seed(a.seed)
    B, L, H, Dh = a.batch, a.length, a.heads, a.head_dim
    shape = (B, L, H, Dh)
    q, k, v = (torch.randn(shape, device=dev, dtype=torch.bfloat16).requires_grad_() for _ in range(3))
    g = torch.randn(shape, device=dev, dtype=torch.bfloat16).transpose(1, 2)
    bhld = lambda t: t.transpose(1, 2)  # noqa: E731 - [B, L, H, Dh] storage as [B, H, L, Dh]

    def forward():
        return F.scaled_dot_product_attention(bhld(q), bhld(k), bhld(v))

    def fwd():
        with torch.no_grad():
            forward()

    kept = {}

    def bwd():
        torch.autograd.grad(kept["out"], (q, k, v), g, retain_graph=True)

    def fwd_bwd():
        torch.autograd.grad(forward(), (q, k, v), g)

    with flash_only(torch):
        try:
            fwd_bwd()
        except RuntimeError as e:
            fail(f"the flash SDPA backend cannot run this case on {torch.cuda.get_device_name()}: {str(e).splitlines()[0]}")
        t_fwd = time_batched(torch.cuda.synchronize, fwd, a.warmup, a.reps, a.min_sample_ms)
        kept["out"] = forward()
        t_bwd = time_batched(torch.cuda.synchronize, bwd, a.warmup, a.reps, a.min_sample_ms)
        del kept["out"]
        torch.cuda.reset_peak_memory_stats()
        t_both = time_batched(torch.cuda.synchronize, fwd_bwd, a.warmup, a.reps, a.min_sample_ms)
    print(
        json.dumps(
            {
                **cuda_facts(torch),
                "backend": "flash (forced)",
                "length": L,
                "fwd": t_fwd,
                "bwd": t_bwd,
                "fwd_bwd": t_both,
                "peak_bytes": torch.cuda.max_memory_allocated(),
            }
        )
    )


if __name__ == "__main__":
    main()
