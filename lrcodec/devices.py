"""Where the float transforms run. The exact entropy model (``lrcodec.format.exact``) always runs on
the CPU in float64, whatever is chosen here: that is what keeps files portable."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")  # and cuda:N, a CUDA device by its index
DEVICE_HELP = "auto|cpu|cuda|cuda:N"


def check_device(name: str) -> str:
    """The name, if it names a device kind (``DEVICES`` or cuda:N); a one-line error otherwise."""
    from .errors import LrcodecError

    if name in DEVICES or re.fullmatch(r"cuda:\d+", name):
        return name
    raise LrcodecError(f"unknown device {name!r} (choose from {DEVICE_HELP})")


def resolve_device(name: str = "auto"):
    """cpu, cuda or cuda:N (refused with a clear error where there is no such device), or auto:
    cuda if present."""
    import torch

    from .errors import LrcodecError

    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise LrcodecError(f"--device {name}: no CUDA device is available to this PyTorch build")
        index = name.partition(":")[2]
        if index and int(index) >= torch.cuda.device_count():
            raise LrcodecError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                               f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return torch.device(name)


def bf16_native(device) -> bool:
    """Whether bfloat16 convolutions run natively on the device. On a CPU without bf16
    instructions autocast is emulated (measured on an AVX-512 CPU without them: 1.5x slower)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return _cpu_has_bf16()


@lru_cache(maxsize=1)
def _cpu_has_bf16() -> bool:
    """Whether the CPU has bf16 instructions and oneDNN may use them, asked once per process
    (refinement asks for every image). oneDNN's own answer alone also says yes on AVX-512 CPUs
    that only emulate bf16; the flags alone ignore ONEDNN_MAX_CPU_ISA, by which a capped
    process behaves as the smaller CPU would."""
    import torch

    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    native = "amx_bf16" in flags or "avx512_bf16" in flags
    return native and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
