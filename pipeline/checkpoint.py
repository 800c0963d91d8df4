"""Run checkpoints (last.pt, best.pt): what they hold, how they are written and how a run
resumes from one exactly (same step, optimizer, schedule, RNG streams and data order).

Loading a checkpoint for inference is pipeline.model.load_checkpoint; this module is the
training side of the same file.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline import distributed
from pipeline.common import CATEGORIES, atomic_write_with, config_to_dict, package_versions
from pipeline.config import TrainConfig
from pipeline.ema import inference_model
from pipeline.trainer import TrainState


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Writes the state of a run; under DDP every rank calls `save` for last.pt (its RNG stream
    is gathered so each rank resumes its own), rank 0 alone writes."""

    def __init__(self, cfg: TrainConfig, init_info: dict, dist: distributed.DistInfo):
        self.cfg, self.init_info, self.dist = cfg, init_info, dist

    def save(self, path: Path, state: TrainState, metrics: dict | None = None, gather: bool = True) -> None:
        """Collective when `gather` (last.pt, which resume reads); rank 0 alone otherwise."""
        rngs = [rng_state()]
        if self.dist.enabled and gather:
            gathered = [None] * self.dist.world_size
            torch.distributed.all_gather_object(gathered, rngs[0])
            rngs = gathered
        if not self.dist.is_main:
            return
        # `model` is what inference loads (the average when there is one); `train_model` the
        # raw weights a resume continues from
        ema = state.ema
        content = dict(
            model=inference_model(state.model, ema).state_dict(), optimizer=state.optimizer.state_dict(),
            scheduler=state.scheduler.state_dict(), scaler=state.scaler.state_dict() if state.scaler else None,
            step=state.step, rng=rngs, config=config_to_dict(self.cfg), categories=CATEGORIES,
            init=self.init_info, versions=package_versions(), best=state.best, metrics=metrics,
            train_time=state.train_time, budget=state.budget)
        if ema is not None:
            content.update(train_model=state.model.state_dict(), ema_updates=int(ema.n_averaged))
        atomic_write_with(path, lambda tmp: torch.save(content, tmp))


def restore(state: TrainState, ckpt: dict, rank: int) -> None:
    """Continue `state` from a last.pt: optimizer, schedule, scaler, counters and this rank's RNG."""
    state.optimizer.load_state_dict(ckpt["optimizer"])
    state.scheduler.load_state_dict(ckpt["scheduler"])
    if state.scaler is not None and ckpt.get("scaler"):
        state.scaler.load_state_dict(ckpt["scaler"])
    state.step, state.best = int(ckpt["step"]), ckpt.get("best")
    state.train_time = float(ckpt.get("train_time", 0.0))
    state.budget = ckpt.get("budget")
    set_rng_state(ckpt["rng"][min(rank, len(ckpt["rng"]) - 1)])
    if state.ema is not None and "train_model" in ckpt:  # else the average starts again from here
        state.ema.module.load_state_dict(ckpt["model"])
        state.ema.n_averaged.fill_(int(ckpt["ema_updates"]))
