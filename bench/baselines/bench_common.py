"""Helpers shared by the PyTorch baselines: which BLAS torch runs, peak-RSS growth, timing, and the report."""

import json
import math
import statistics
import sys
import time


def blas_core():
    """The BLAS torch's matrix products run on: OpenBLAS's kernel family when torch links the system BLAS (Debian's
    torch says BLAS_INFO=generic and resolves to libopenblas), else what torch was built with (MKL for the PyPI
    wheels). Loading libopenblas.so.0 unasked would name a library such a torch never calls."""
    import re

    try:
        import torch

        config = torch.__config__.show()
    except Exception as e:  # noqa: BLE001 - informational only
        return f"unknown ({e.__class__.__name__})"
    m = re.search(r"BLAS_INFO=([^,\s]+)", config)
    info = m.group(1) if m else "unknown"
    if info not in ("generic", "open", "openblas", "unknown"):
        mkl = re.search(r"Math Kernel Library Version ([0-9.]+)", config)
        dnn = re.search(r"MKL-DNN v(\S+)", config)
        extra = "".join([f", MKL {mkl.group(1)}" if mkl else "", f", oneDNN {dnn.group(1)}" if dnn else ""])
        return f"BLAS_INFO={info}{extra}"
    try:
        import ctypes

        # The OpenBLAS this process has mapped (a wheel may bundle its own under a hashed name); the system one
        # only when none is mapped yet.
        torch.ones(2, 2) @ torch.ones(2, 2)
        with open("/proc/self/maps") as f:
            mapped = sorted({line.split()[-1] for line in f if "openblas" in line.split()[-1].lower()})
        lib = ctypes.CDLL(mapped[0] if mapped else "libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        lib.openblas_get_config.restype = ctypes.c_char_p
        return f"{lib.openblas_get_config().decode()} (core {lib.openblas_get_corename().decode()})"
    except Exception as e:  # noqa: BLE001 - informational only
        return f"BLAS_INFO={info}, OpenBLAS not loadable ({e.__class__.__name__})"


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_rss_growth(fn):
    """Bytes of peak RSS above the RSS before fn(), or None without /proc support."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except Exception:  # noqa: BLE001 - not glibc: measure without trimming
        pass
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status_kib("VmRSS")
    except OSError:
        fn()
        return None
    fn()
    return (status_kib("VmHWM") - before) * 1024


def time_steps(step, warmup, reps):
    """Warm up (at least once), then time `reps` calls of step().

    Returns median_ms, samples_ms, cpu_user_ms and cpu_sys_ms per call (summed over
    threads), and step_rss_growth_bytes: the peak-RSS growth of one more call.
    """
    import resource
    import statistics
    import time

    for _ in range(max(1, warmup)):
        step()
    samples = []
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        samples.append((time.perf_counter() - t0) * 1e3)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "median_ms": statistics.median(samples),
        "samples_ms": samples,
        "cpu_user_ms": (r1.ru_utime - r0.ru_utime) * 1e3 / reps,
        "cpu_sys_ms": (r1.ru_stime - r0.ru_stime) * 1e3 / reps,
        "step_rss_growth_bytes": peak_rss_growth(step),
    }


def fail(msg):
    """Reports a baseline that cannot run as JSON (the caller prints the reason) and exits 0."""
    print(json.dumps({"ok": False, "error": msg}))
    sys.exit(0)


def step_report(torch, params, t, losses, **extra):
    """The fields every timed-step baseline reports (versions, threads, BLAS, parameter count, time_steps's
    figures, losses and memory), plus the baseline's own `extra` fields."""
    return {
        "ok": True,
        "torch": torch.__version__,
        "python": sys.executable,
        "threads": torch.get_num_threads(),
        "blas": blas_core(),
        "params": sum(p.numel() for p in params),
        "median_ms": t["median_ms"],
        "samples_ms": t["samples_ms"],
        "cpu_user_ms": t["cpu_user_ms"],
        "cpu_sys_ms": t["cpu_sys_ms"],
        "losses": losses,
        "step_rss_growth_bytes": t["step_rss_growth_bytes"],
        "peak_rss_bytes": status_kib("VmHWM") * 1024,
        **extra,
    }


def time_batched(sync, fn, warmup, reps, min_sample_ms):
    """Median ms per call of fn; calls are batched so that a sample, between two sync() calls on the host clock,
    lasts >= min_sample_ms (as bench/lib/cuda-device.ts times the cloze side). sync: torch.cuda.synchronize on a GPU."""
    sync()
    warm = max(1, warmup)
    t0 = time.perf_counter()
    for _ in range(warm):
        fn()
    sync()
    per_call = (time.perf_counter() - t0) * 1e3 / warm
    batch = max(1, math.ceil(min_sample_ms / max(per_call, 1e-3)))
    t0 = time.perf_counter()
    for _ in range(batch):
        fn()
    sync()
    per_call = (time.perf_counter() - t0) * 1e3 / batch
    batch = max(1, math.ceil(min_sample_ms / max(per_call, 1e-3)))
    samples = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) * 1e3 / batch)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "max_ms": max(samples), "samples_ms": samples, "batch": batch}


def cuda_facts(torch, cuda=True):
    """The fields every CUDA baseline reports first (TorchCudaFacts in bench/lib/cuda-torch.ts): ok, torch's
    version, the python, the CUDA runtime torch was built with, and the device (cpu for a CPU check run)."""
    return {
        "ok": True,
        "torch": torch.__version__,
        "python": sys.executable,
        "cuda": torch.version.cuda,
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }
