"""The periodic work of a training run, one hook each (pipeline/trainer.py runs them in order):

- TimeBudget: solver.max_minutes, the number of steps that fits it at the measured pace.
- Unfreeze: trainable backbone stages on the model.unfreeze_every schedule.
- MetricsWriter: loss terms, learning rates and step time to metrics.jsonl and TensorBoard.
- Validation: COCO AP on the validation set (masks at the best of engine.MASK_THRESHOLDS), its
  record, RUN/curve.png and best.pt.
- PeriodicCheckpoint: last.pt, which --resume reads.

Only rank 0 writes files; collective work (checkpoint RNG gathering, barriers, loss
averaging) runs on every rank.
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pipeline import distributed
from pipeline.checkpoint import Checkpointer
from pipeline.coco_eval import GroundTruth
from pipeline.common import UserError, atomic_write_text
from pipeline.curves import plot_run
from pipeline.ema import inference_model
from pipeline.engine import MASK_THRESHOLDS, coco_metrics, predict
from pipeline.inference_settings import DEFAULT_MASK_THRESHOLD
from pipeline.model import ModelConfig, at_test_size, set_trainable, trainable_stages_at
from pipeline.trainer import Hook, TrainState


class MetricsLog:
    """metrics.jsonl: one JSON object per logged step or evaluation. On resume, records after
    the checkpoint's step are dropped so the file matches the run being continued."""

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        if resume_step is not None and path.exists():
            keep = [ln for ln in path.read_text().splitlines()
                    if ln.strip() and json.loads(ln).get("step", 0) <= resume_step]
            atomic_write_text(path, "".join(ln + "\n" for ln in keep))
        elif resume_step is None:
            atomic_write_text(path, "")

    def write(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


# the pace of a time-budgeted run is first measured over MEASURE_STEPS steps after the first
# SKIP_STEPS of a session, which are slower (allocator and thread-pool warm-up). The pace drifts
# as training goes on (the demo: 0.80 s/step over steps 6-25, 0.73 over the run), so the plan is
# revised at REVISIONS even intervals from the pace over the interval just past, as Ultralytics
# re-plans its `time` budget every epoch; none in the last interval, where a change would bend
# the end of the LR schedule.
SKIP_STEPS = 5
MEASURE_STEPS = 20
REVISIONS = 10


def budget_steps(minutes: float, budget: dict) -> int:
    """Steps in all that fill `minutes` of training time at the pace of the plan made at
    budget["step"], when budget["train_time"] seconds had been spent: what a resumed run
    continues with, given the same minutes."""
    left = minutes * 60 - budget["train_time"]
    return budget["step"] + max(0, math.floor(left / budget["s_per_step"]))


class TimeBudget(Hook):
    """solver.max_minutes: measures the seconds per step (steps and loading, as train_time counts
    them; the mean over ranks under DDP) and sets max_iters, and with it the LR schedule, to what
    fits the budget, revising it as the pace changes. The plan is kept in last.pt, so a resumed
    run (also one given other minutes) goes on from it instead of measuring again."""

    def __init__(self, minutes: float, solver, all_reduce: Callable | None, log: MetricsLog | None):
        self.minutes, self.solver, self.all_reduce, self.log = minutes, solver, all_reduce, log
        self.since: tuple[int, float] | None = None

    def before_train(self, state: TrainState) -> None:
        self.start = state.step
        if state.budget is None:  # the loop must run long enough to measure
            state.max_iters = max(state.max_iters, state.step + SKIP_STEPS + MEASURE_STEPS)

    def after_step(self, state: TrainState) -> None:
        b = state.budget
        if b is None:
            if state.step == self.start + SKIP_STEPS:
                self.since = (state.step, state.train_time)
            elif self.since is not None and state.step == self.since[0] + MEASURE_STEPS:
                self.plan(state, self.since)
            return
        interval = max(MEASURE_STEPS, state.max_iters // REVISIONS)
        if state.step >= b["step"] + interval and state.step + interval < state.max_iters:
            self.plan(state, (b["step"], b["train_time"]))

    def plan(self, state: TrainState, since: tuple[int, float]) -> None:
        """A plan from the pace of the steps after `since` (step, train_time)."""
        pace = torch.tensor([(state.train_time - since[1]) / (state.step - since[0])])
        if self.all_reduce is not None:
            pace = self.all_reduce(pace)
        first = state.budget is None
        state.budget = {"minutes": self.minutes, "s_per_step": round(float(pace), 6), "step": state.step,
                        "train_time": round(state.train_time, 3)}
        apply_budget(state, self.solver, self.minutes)
        if self.log is not None:
            if first:  # said once; the revisions are in metrics.jsonl
                tqdm.write(f"time budget: {self.minutes:g} min at {float(pace):.3f} s/step "
                           f"-> {state.max_iters} steps (solver.max_iters replaced)")  # not inside the bar
            self.log.write({"step": state.step, "event": "budget", **state.budget, "max_iters": state.max_iters})


def apply_budget(state: TrainState, solver, minutes: float) -> None:
    """Set the run's length from state.budget (planned now or read from last.pt): the loop's
    bound, and solver.max_iters, which the LR schedule and the saved config read. A resume may
    ask for other minutes than the plan was made for: the plan records the ones it now serves."""
    state.budget["minutes"] = minutes
    state.max_iters = solver.max_iters = max(state.step, budget_steps(minutes, state.budget))


class Unfreeze(Hook):
    """Sets the trainable stages for the current step; DDP is re-wrapped on a change because it
    fixes its parameter set at construction."""

    def __init__(self, model_cfg: ModelConfig, wrap: Callable, log: MetricsLog | None):
        self.cfg, self.wrap, self.log = model_cfg, wrap, log
        self.stages: int | None = None

    def before_train(self, state: TrainState) -> None:
        self.stages = trainable_stages_at(self.cfg, state.step)
        set_trainable(state.model, self.cfg, self.stages)
        state.net = self.wrap(state.model)
        state.model.train()

    def before_step(self, state: TrainState) -> None:
        stages = trainable_stages_at(self.cfg, state.step)
        if stages == self.stages:
            return
        self.stages = stages
        set_trainable(state.model, self.cfg, stages)
        state.net = self.wrap(state.model)
        if self.log:
            self.log.write({"step": state.step, "event": "unfreeze", "trainable_stages": stages})


class MetricsWriter(Hook):
    """Every `every` steps (and the last): the loss terms averaged across ranks, lrs, s/it."""

    def __init__(self, every: int, log: MetricsLog | None, tb, dist: distributed.DistInfo,
                 stages: Unfreeze):
        self.every, self.log, self.tb, self.dist, self.stages = every, log, tb, dist, stages
        self.window: list[float] = []

    def after_step(self, state: TrainState) -> None:
        self.window.append(state.step_seconds)
        if state.step % self.every and state.step != state.max_iters:
            return
        losses = state.losses
        if self.dist.enabled:
            keys = sorted(losses)
            avg = distributed.all_reduce_mean(torch.tensor([losses[k] for k in keys], device=state.device))
            losses = dict(zip(keys, avg.tolist(), strict=True))
        if self.dist.is_main:
            lrs = state.lrs()
            self.log.write({"step": state.step, **{k: round(v, 6) for k, v in losses.items()},
                            **{f"lr_{k}": v for k, v in lrs.items()}, "trainable_stages": self.stages.stages,
                            "s_per_it": round(sum(self.window) / len(self.window), 4),
                            "time": round(time.time() - state.started, 2)})
            for k, v in losses.items():
                self.tb.add_scalar(f"train/{k}", v, state.step)
            for k, v in lrs.items():
                self.tb.add_scalar(f"lr/{k}", v, state.step)
        self.window = []

    def after_train(self, state: TrainState) -> None:
        if self.tb is not None:
            self.tb.close()


class Validation(Hook):
    """Every `every` steps (and the last) on rank 0: COCO metrics on the validation set, an
    eval record, the redrawn curve, and best.pt when the headline metric improves. Other
    ranks wait at a barrier so no rank runs ahead into the next collective."""

    def __init__(self, every: int, loader, gt: GroundTruth | None, out: Path, log: MetricsLog | None, tb,
                 tb_images: int, checkpointer: Checkpointer, best_metric: str, model_cfg: ModelConfig):
        self.every, self.loader, self.gt, self.out, self.log = every, loader, gt, out, log
        self.tb, self.tb_images, self.checkpointer = tb, tb_images, checkpointer
        self.best_metric, self.model_cfg = best_metric, model_cfg

    def after_step(self, state: TrainState) -> None:
        if not ((self.every and state.step % self.every == 0) or state.step == state.max_iters):
            return
        if self.loader is not None:
            state.last_metrics = self.validate(state)
            head = headline(state.last_metrics, self.best_metric)
            if head is not None:
                self.log.write({"step": state.step, "event": "eval", head[0]: head[1],
                                "train_time": round(state.train_time, 2), "wall": round(time.time() - state.started, 2),
                                **state.last_metrics})
                plot_run(self.out)
                if improves(state.best, head, self.best_metric):
                    state.best = {"metric": "last" if self.best_metric == "last" else head[0],
                                  "value": head[1], "step": state.step}
                    self.checkpointer.save(self.out / "best.pt", state, state.last_metrics, gather=False)
        distributed.barrier()

    def validate(self, state: TrainState) -> dict | None:
        with at_test_size(inference_model(state.model, state.ema), self.model_cfg) as model:   # as evaluate runs it
            # the mask threshold inference will use is chosen here, on the validation set (evaluate,
            # video and export read it from the checkpoint's metrics)
            thresholds = MASK_THRESHOLDS if self.gt.has_masks else (DEFAULT_MASK_THRESHOLD,)
            results, kept = predict(model, self.loader, state.device, state.dtype, keep_outputs=self.tb_images,
                                    mask_thresholds=thresholds)
        try:
            metrics = coco_metrics(self.gt, results)
        except UserError as e:  # e.g. a validation split holding only negatives
            warnings.warn(f"validation at step {state.step} skipped: {e}", stacklevel=2)
            return None
        if self.tb is not None:
            for iou_type, m in metrics.items():
                for k in ("AP", "AP50", "AP75"):
                    if m.get(k) is not None:
                        self.tb.add_scalar(f"val_{iou_type}/{k}", m[k], state.step)
                for cls, ap in m["per_class"].items():
                    if ap is not None:
                        self.tb.add_scalar(f"val_{iou_type}/AP_{cls}", ap, state.step)
            log_images(self.tb, kept, state.step, metrics.get("segm", {}).get("mask_threshold", DEFAULT_MASK_THRESHOLD))
        return metrics


class PeriodicCheckpoint(Hook):
    """last.pt every `every` steps and at the last step (on every rank: it gathers RNG state)."""

    def __init__(self, every: int, path: Path, checkpointer: Checkpointer):
        self.every, self.path, self.checkpointer = every, path, checkpointer

    def after_step(self, state: TrainState) -> None:
        if state.step % self.every == 0 or state.step == state.max_iters:
            self.checkpointer.save(self.path, state, state.last_metrics)


def headline(metrics: dict | None, best_metric: str) -> tuple[str, float] | None:
    """(name, value) of the metric best.pt is chosen by (`log.best_metric`; segm AP for "last");
    a segm metric falls back to its bbox twin on box-only validation sets."""
    if not metrics:
        return None
    iou_type, key = ("segm", "AP") if best_metric == "last" else best_metric.split("_", 1)
    iou_type = iou_type if iou_type in metrics else "bbox"
    value = metrics[iou_type].get(key)
    return (f"{iou_type}_{key}", float(value if value is not None else 0.0))


def improves(best: dict | None, head: tuple[str, float], best_metric: str | None = None) -> bool:
    """Whether this validation's headline replaces the recorded best: always under
    log.best_metric "last". A best chosen by another metric (a run resumed with a different
    log.best_metric) cannot be compared with it, so the first validation after the change
    replaces it, with a warning."""
    if best is None or best_metric == "last":
        return True
    if best["metric"] != head[0]:
        warnings.warn(f"log.best_metric is now {head[0]}, best.pt (step {best['step']}) was chosen by "
                      f"{best['metric']}: this validation's model replaces it", stacklevel=2)
        return True
    return head[1] > best["value"]


def log_images(tb, kept: list[tuple], step: int, mask_threshold: float) -> None:
    from pipeline.draw import draw_detections

    for i, (im, o) in enumerate(kept):
        rgb = (im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        keep = o["scores"] >= 0.5
        masks = (o["masks"][keep, 0] > mask_threshold).numpy() if "masks" in o else None
        drawn = draw_detections(rgb, o["boxes"][keep].numpy(), o["labels"][keep].numpy(),
                                o["scores"][keep].numpy(), masks)
        tb.add_image(f"val/predictions_{i}", drawn, step, dataformats="HWC")
