"""argparse types shared by the PyTorch reference scripts (a bad value names the option and what is expected),
and microvision's `precision = "auto"` rule."""
import argparse

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_native_bf16():
    """Whether the CPU multiplies bf16 natively (AVX512-BF16 or AMX-BF16), as src/device.rs reads it."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name, dev):
    """"fp32" or "bf16" for a --precision of auto/fp32/bf16: auto is bf16 on CUDA and on CPUs with
    native bf16, fp32 elsewhere (bf16 emulated is slower than fp32), as microvision resolves it."""
    if name != "auto":
        return name
    return "bf16" if dev == "cuda" or cpu_has_native_bf16() else "fp32"


def _int_at_least(low, expected):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    return parse


# An integer >= 1 (batch size, steps, repeats, runs).
positive_int = _int_at_least(1, "a positive integer")
# An integer >= 0 (threads and epochs, where 0 means the default; seeds).
non_negative_int = _int_at_least(0, "0 or a positive integer")
