"""Which Cycles device renders: `render.device` plus what Cycles reports -> one choice.

    auto                 the best GPU backend Cycles reports devices for (OptiX, then CUDA,
                         HIP, Metal), else the CPU
    cpu | cuda | optix | hip | metal   that backend; an error when Cycles reports no device of it

Pure (no bpy): blender.cycles asks Cycles for its devices and hands them in, so the rule is
tested without a GPU. Every GPU of the chosen backend is used (Cycles' multi-device); one
process per GPU is `--shard` with CUDA_VISIBLE_DEVICES / HIP_VISIBLE_DEVICES set per process.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.common import UserError

# OptiX first: same NVIDIA cards as CUDA, with hardware ray tracing on RTX-class GPUs
AUTO_ORDER = ("optix", "cuda", "hip", "metal")
DEVICES = ("auto", "cpu", *AUTO_ORDER)


@dataclass(frozen=True)
class DeviceChoice:
    requested: str           # render.device as configured
    backend: str             # cpu | optix | cuda | hip | metal
    names: tuple[str, ...]   # the devices Cycles renders on ("CPU" for the CPU)
    reason: str              # why, for the one log line

    @property
    def is_gpu(self) -> bool:
        return self.backend != "cpu"

    def log_line(self) -> str:
        return f"render: device {self.requested} -> {self.backend} ({self.reason})"

    def manifest(self) -> dict:
        return {"requested": self.requested, "backend": self.backend, "devices": list(self.names)}


def choose_device(requested: str, available: dict[str, list[str]]) -> DeviceChoice:
    """`available`: backend -> names of the GPUs Cycles reports for it (empty lists allowed)."""
    if requested not in DEVICES:
        raise UserError(f"render.device: {requested!r}; expected one of {', '.join(DEVICES)}")
    if requested == "cpu":
        return DeviceChoice("cpu", "cpu", ("CPU",), "asked for")
    found = {b: tuple(available.get(b) or ()) for b in AUTO_ORDER}
    if requested == "auto":
        for backend in AUTO_ORDER:
            if found[backend]:
                return DeviceChoice("auto", backend, found[backend], _gpus(found[backend]))
        return DeviceChoice("auto", "cpu", ("CPU",), "Cycles reports no GPU")
    if not found[requested]:
        others = [b for b in AUTO_ORDER if found[b]]
        hint = f"Cycles reports: {', '.join(others)}" if others else "Cycles reports no GPU here"
        raise UserError(f"render.device: {requested!r} asked for but Cycles finds no {requested.upper()} "
                        f"device ({hint}); expected auto or cpu on this machine")
    return DeviceChoice(requested, requested, found[requested], _gpus(found[requested]))


def _gpus(names: tuple[str, ...]) -> str:
    return f"{len(names)} GPU{'s' if len(names) > 1 else ''}: {', '.join(names)}"
