"""The torch device a stage runs on, from a config string: one rule for every stage.

    auto        CUDA when torch sees a GPU, else the CPU
    cpu | cuda | cuda:N | mps   that device; an error if this machine does not have it

`auto` never picks MPS, so every machine without CUDA runs (and times) the same way by
default; ask for `mps` by name.

`cpu_has_bf16` tells whether the CPU computes bf16 natively (AVX512-BF16 or AMX on x86, the
BF16 extension on Arm): there bf16 autocast makes a CPU training step 1.2-1.5x faster; without
those units oneDNN emulates it and a step can get slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.common import UserError

if TYPE_CHECKING:
    import torch


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


_CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 flags / Arm "Features"


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """From /proc/cpuinfo (Linux); False where it cannot be read (then bf16 is asked for by name)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features") and _CPU_BF16_FLAGS & set(value.split()):
            return True
    return False


def resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"device: {name!r} is not a torch device (auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device: {name} asked for but CUDA is not available here (use device=auto or cpu)")
    if dev.type == "mps" and not _mps_available():
        raise UserError(f"device: {name} asked for but MPS is not available here (use device=auto or cpu)")
    return dev
