"""An exponential moving average of the weights (`solver.ema_decay`), as Ultralytics, timm and
detectron2's d2go keep one: validation, best.pt and every inference checkpoint use the
average; training steps the raw weights.

The average is torch's own AveragedModel. Its decay ramps up, min(decay, (1 + n) / (10 + n))
after n updates (TensorFlow's ExponentialMovingAverage with num_updates), so the average of a
short from-scratch run does not drag the random initial weights along for hundreds of steps.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel


def ramped_decay(decay: float, n: int) -> float:
    """The decay applied at the update after `n` earlier ones."""
    return min(decay, (1 + n) / (10 + n))


def build_ema(model: nn.Module, decay: float) -> AveragedModel | None:
    """The average of `model`'s parameters and buffers, or None when `decay` is 0 (off)."""
    if not decay:
        return None

    @torch.no_grad()
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n: torch.Tensor) -> None:
        d = ramped_decay(decay, int(n))
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1.0 - d)
        else:  # integer buffers (BatchNorm's num_batches_tracked) follow the model
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)

    ema = AveragedModel(model, multi_avg_fn=update, use_buffers=True)
    ema.eval()  # it is only ever run for inference
    return ema


def inference_model(model: nn.Module, ema: AveragedModel | None) -> nn.Module:
    """The weights a run validates and exports: the average when there is one."""
    return ema.module if ema is not None else model
