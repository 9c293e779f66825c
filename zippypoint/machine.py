"""The machine a number was measured on: CPU model and ISA flags (stdlib only, a leaf module).

Used by the benchmark environment, the evaluation report, the ONNX latency notes and the training log.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# ISA extensions that decide which kernels ONNX Runtime, oneDNN and OpenCV can use
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx_vnni", "avx512_bf16", "avx512_vpopcntdq", "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd",
             "asimddp", "i8mm")


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """First processor block of /proc/cpuinfo as key -> value ({} where there is none); read once per process
    (the default runtime consults the flags on every extractor built without a named runtime)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.split("\n\n", 1)[0].splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    return info


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo where there is one, else ``platform.processor()``."""
    info = _cpuinfo()
    return info.get("model name") or platform.processor() or platform.machine()


def isa_flags() -> dict[str, bool]:
    """Which of ``ISA_FLAGS`` the CPU reports (x86 ``flags`` or ARM ``Features``); empty off Linux."""
    info = _cpuinfo()
    present = set((info.get("flags") or info.get("Features") or "").split())
    return {flag: flag in present for flag in ISA_FLAGS} if present else {}


def prefers_one_bit_ir(flags: dict[str, bool] | None = None) -> bool:
    """True on an x86 CPU (AVX2 or later) without AMX int8 tiles: there the 1-bit OpenVINO IR (binary blocks as
    BinaryConvolution) outruns the int8 one, measured with AVX2 only, AVX-512, and AVX-512 VNNI
    (docs/isa-levels.md). False with AMX (where int8 convolutions run on the tiles and the int8 IR was the faster
    one), on ARM (OpenVINO has no 1-bit kernel there) or where the flags cannot be read (nothing known, nothing
    changed). ``flags``: ``isa_flags()`` of this CPU by default."""
    flags = isa_flags() if flags is None else flags
    if not flags.get("avx2"):  # not x86 with AVX2 (ARM, or unknown): no evidence for the 1-bit IR there
        return False
    return not flags.get("amx_int8")


def int8_products_saturate(flags: dict[str, bool] | None = None) -> bool:
    """True where ONNX Runtime's u8 x s8 int8 kernels may saturate: an x86 CPU without VNNI (AVX-512 VNNI, AVX-VNNI
    or AMX int8). There it multiplies with ``vpmaddubsw``, which adds each pair of u8 x s8 products in 16 bits and
    clips at 32767: two codes near 255 times weights near 127 overflow. Also True on x86 where the flags cannot be
    read (the unsaturating path is correct everywhere, only slower); False on ARM and other CPUs.
    ``flags``: ``isa_flags()`` of this CPU by default."""
    flags = isa_flags() if flags is None else flags
    if not flags:
        return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
    if not (flags.get("sse4_2") or flags.get("avx2")):
        return False
    return not (flags.get("avx512_vnni") or flags.get("avx_vnni") or flags.get("amx_int8"))
