"""The training loop. It only steps the optimizer; everything periodic (logging, validation,
best and last checkpoints, stage unfreezing) is a Hook (pipeline/hooks.py), as in detectron2.

Hooks run in list order at four points: before_train, before_step, after_step, after_train.
`after_train` runs even when the loop stops on an exception, so files are closed and nothing
already written is lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel
from tqdm import tqdm

from pipeline.engine import train_step


@dataclass
class TrainState:
    """What a checkpoint holds and hooks read: the model, its optimizer state and the counters."""

    model: nn.Module               # the bare model: checkpoints and validation use it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler | None
    device: torch.device
    dtype: torch.dtype | None      # autocast dtype, None for full precision
    max_iters: int
    step: int = 0
    train_time: float = 0.0        # seconds in training steps, summed over resumes
    best: dict | None = None       # {"metric", "value", "step"} of best.pt
    last_metrics: dict | None = None
    losses: dict[str, float] = field(default_factory=dict)  # of the last step
    step_seconds: float = 0.0      # of the last step
    first_loss: float | None = None
    last_loss: float | None = None
    net: nn.Module | None = None   # what the step runs: the model or its DDP wrapper
    ema: AveragedModel | None = None  # moving average of `model` (pipeline/ema.py), None when off
    started: float = 0.0           # time.time() when this session's loop began (wall-clock records)
    budget: dict | None = None     # solver.max_minutes: the measured pace and the steps it gave (hooks.TimeBudget)

    def lrs(self) -> dict[str, float]:
        return {g["name"]: g["lr"] for g in self.optimizer.param_groups}


class Hook:
    """A piece of periodic work around the loop; override the points it needs."""

    def before_train(self, state: TrainState) -> None: ...

    def before_step(self, state: TrainState) -> None: ...

    def after_step(self, state: TrainState) -> None: ...

    def after_train(self, state: TrainState) -> None: ...


def train(state: TrainState, batches: Iterable, hooks: list[Hook], clip_grad_norm: float | None,
          all_reduce: Callable | None = None, progress: bool = True) -> TrainState:
    """Step until `state.max_iters`. Raises engine.TrainingDiverged on a non-finite loss, before
    that step's update (hooks' after_train still run)."""
    if state.net is None:
        state.net = state.model
    pbar = tqdm(total=state.max_iters, initial=state.step, disable=not progress, dynamic_ncols=True,
                desc="train")
    times: list[float] = []
    it = iter(batches)
    state.started = time.time()
    try:
        for h in hooks:
            h.before_train(state)
        while state.step < state.max_iters:
            for h in hooks:
                h.before_step(state)
            if pbar.total != state.max_iters:  # a time budget sized the run
                pbar.total = state.max_iters
                pbar.refresh()
            t0 = time.time()
            images, targets = next(it)
            state.losses = train_step(state.net, images, targets, state.optimizer, state.scaler, state.device,
                                      state.dtype, clip_grad_norm, state.step, all_reduce=all_reduce)
            state.scheduler.step()
            if state.ema is not None:
                state.ema.update_parameters(state.model)
            state.step += 1
            state.step_seconds = time.time() - t0
            state.train_time += state.step_seconds
            loss = state.losses["loss"]
            state.first_loss = loss if state.first_loss is None else state.first_loss
            state.last_loss = loss
            times = (times + [state.step_seconds])[-20:]
            pbar.set_postfix(loss=f"{loss:.3f}", lr=f"{state.lrs()['heads']:.2g}",
                             its=f"{len(times) / sum(times):.2f}")
            pbar.update(1)
            for h in hooks:
                h.after_step(state)
    finally:
        pbar.close()
        for h in hooks:
            h.after_train(state)
    return state
