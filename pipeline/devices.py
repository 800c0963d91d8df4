"""The torch device a stage runs on, from a config string: one rule for every stage.

    auto        CUDA when torch sees a GPU, else the CPU
    cpu | cuda | cuda:N | mps   that device; an error if this machine does not have it

`auto` never picks MPS, so every machine without CUDA runs (and times) the same way by
default; ask for `mps` by name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipeline.common import UserError

if TYPE_CHECKING:
    import torch


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


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
