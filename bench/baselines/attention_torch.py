#!/usr/bin/env python3
"""PyTorch attention with autograd: the baselines of bench/matmul-attention.ts.

Same shapes, dtype and thread count as the cloze run. q, k, v are [B*H, L, Dh]
float32; forward q@kᵀ·scale → softmax → @v, then .backward(g). --impl eager (the
default) runs that chain op by op; --impl sdpa runs torch.nn.functional.
scaled_dot_product_attention (torch 2.0 and later), whose CPU backend is a fused
flash-attention kernel in the torch 2.x releases that have one (2.13 does; 2.0 runs
the op chain there), and reports the backend torch chose. Prints one JSON
object on stdout (the bench parses it); errors are JSON too, never a traceback
alone, so the caller can print a clear "skipped" line.

Memory: peak resident-set growth over one fwd+bwd after warm-up. Cached free
heap memory is first returned (glibc malloc_trim), the kernel's high-water mark
(VmHWM) is reset by writing 5 to /proc/self/clear_refs, then read back; bench/lib/rss.ts measures the cloze side the same way. It counts
every page the process touched, allocator caching included, not tensor bytes.
(ru_maxrss cannot serve: Linux carries it across exec from the parent node.)
"""
import argparse
import json
import math
import resource
import statistics
import sys
import time

from bench_common import blas_core, peak_rss_growth


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--head-dim", type=int, default=64)
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--min-sample-ms", type=float, default=20.0)
    p.add_argument("--impl", choices=["eager", "sdpa"], default="eager")
    return p.parse_args()


def time_it(fn, warmup, reps, min_sample_ms):
    """Median ms per call, batching calls so one sample lasts >= min_sample_ms."""
    last = math.inf
    for _ in range(max(1, warmup)):
        t0 = time.perf_counter()
        fn()
        last = (time.perf_counter() - t0) * 1e3
    batch = max(1, math.ceil(min_sample_ms / max(last, 1e-3)))
    samples = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        samples.append((time.perf_counter() - t0) * 1e3 / batch)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    calls = reps * batch
    return {
        "median_ms": statistics.median(samples),
        "samples_ms": samples,
        "batch": batch,
        # CPU time per call, summed over threads, as process.cpuUsage() on the cloze side
        "cpu_user_ms": (r1.ru_utime - r0.ru_utime) * 1e3 / calls,
        "cpu_sys_ms": (r1.ru_stime - r0.ru_stime) * 1e3 / calls,
    }


def sdpa_backend(torch, q, k, v):
    """The SDPA backend torch picks for these inputs (FLASH_ATTENTION is its fused CPU kernel, MATH the op chain)."""
    try:
        choice = torch._fused_sdp_choice(q, k, v)
        try:
            from torch.nn.attention import SDPBackend  # 2.2 and later
        except ImportError:
            from torch.backends.cuda import SDPBackend  # 2.0, 2.1
        return SDPBackend(choice).name
    except Exception as e:  # noqa: BLE001 - informational only
        return f"unknown ({e.__class__.__name__})"


def main():
    a = parse()
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - reported to the caller
        print(json.dumps({"ok": False, "error": f"cannot import torch with {sys.executable}: {e}"}))
        return
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    BH, L, Dh = a.batch * a.heads, a.length, a.head_dim
    scale = 1.0 / math.sqrt(Dh)
    q = torch.rand(BH, L, Dh, dtype=torch.float32).mul_(2).sub_(1).requires_grad_()
    k = torch.rand(BH, L, Dh, dtype=torch.float32).mul_(2).sub_(1).requires_grad_()
    v = torch.rand(BH, L, Dh, dtype=torch.float32).mul_(2).sub_(1).requires_grad_()
    g = torch.rand(BH, L, Dh, dtype=torch.float32).mul_(2).sub_(1)

    backend = "eager chain"
    if a.impl == "sdpa":
        sdpa = getattr(torch.nn.functional, "scaled_dot_product_attention", None)
        if sdpa is None:
            print(json.dumps({"ok": False, "error": f"torch {torch.__version__} has no scaled_dot_product_attention (2.0 or later has)"}))
            return
        # As [B, H, L, Dh] views: torch 2.13 takes its flash kernel on the CPU for 4-D inputs only (3-D gets MATH).
        shape = (a.batch, a.heads, L, Dh)
        backend = sdpa_backend(torch, q.view(shape), k.view(shape), v.view(shape))

        def forward():
            # The default scale, 1/√Dh, is the chain's (torch 2.0 takes no scale argument). reshape: some versions
            # return the output in another memory layout.
            return sdpa(q.view(shape), k.view(shape), v.view(shape)).reshape(BH, L, Dh)

    else:

        def forward():
            s = torch.matmul(q, k.transpose(-2, -1)) * scale
            p = torch.softmax(s, dim=-1)
            return torch.matmul(p, v)

    def fwd_bwd():
        q.grad = k.grad = v.grad = None
        forward().backward(g)

    def fwd_only():
        with torch.no_grad():  # as the cloze side: forward alone, no graph
            forward()

    both = time_it(fwd_bwd, a.warmup, a.reps, a.min_sample_ms)
    q.grad = k.grad = v.grad = None
    rss_growth = peak_rss_growth(fwd_bwd)
    fwd = time_it(fwd_only, a.warmup, a.reps, a.min_sample_ms)
    print(
        json.dumps(
            {
                "ok": True,
                "torch": torch.__version__,
                "python": sys.executable,
                "threads": torch.get_num_threads(),
                "blas": blas_core(),
                "impl": a.impl,
                "backend": backend,
                "length": L,
                "fwd_bwd": both,
                "fwd": fwd,
                "peak_rss_growth_bytes": rss_growth,
            }
        )
    )


if __name__ == "__main__":
    main()
