"""Helpers shared by the PyTorch baselines: which OpenBLAS kernels torch runs, and peak-RSS growth."""


def blas_core():
    """OpenBLAS kernel family torch's BLAS resolved to, when it is OpenBLAS."""
    try:
        import ctypes

        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        lib.openblas_get_config.restype = ctypes.c_char_p
        return f"{lib.openblas_get_config().decode()} (core {lib.openblas_get_corename().decode()})"
    except Exception as e:  # noqa: BLE001 - informational only
        return f"unknown ({e.__class__.__name__})"


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
