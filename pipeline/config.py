"""Training config schema (configs/train*.yaml). Loaded with pipeline.common.load_config."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.common import StrictModel
from pipeline.data import CROWD_MODES
from pipeline.model import ModelConfig


class DataConfig(StrictModel):
    train: str | None = None          # dataset folder; --data overrides
    ann_file: str | None = None       # default <train>/annotations.json
    val: str | None = None            # separate validation set; else a split of `train`
    val_fraction: float = Field(0.1, ge=0, lt=1)
    split_seed: int = 0
    class_map: dict[str, str] = {}    # foreign category name -> ours (e.g. person: pedestrian)
    skip_bad: bool = False            # skip and count bad records instead of stopping
    # what crowd-marked instances (rendered ones are mostly hidden or tiny) are to training:
    # background (left out of targets, so their visible part is taught as background), ignore
    # (neither positive nor negative for the samplers, pipeline.crowd), target (ordinary
    # instances). COCOeval ignores detections on them whatever this says.
    crowd: Literal[CROWD_MODES] = "background"  # type: ignore[valid-type]
    batch_size: int = Field(2, ge=1)  # per process
    workers: int = Field(2, ge=0)


class AugmentConfig(StrictModel):
    """One `strength` (0 = none .. 1 = strong) sets every op; a per-op value overrides it."""
    strength: float = Field(0.5, ge=0, le=1)
    hflip: float | None = Field(None, ge=0, le=1)      # probability (default 0.5 if strength > 0)
    scale: float | None = Field(None, ge=0, lt=1)      # max relative zoom in/out (0.4 * strength)
    translate: float | None = Field(None, ge=0, le=0.5)  # max shift, fraction of size (0.15 * s)
    color: float | None = Field(None, ge=0, le=1)      # brightness/contrast/saturation jitter (0.4 * s)
    blur: float | None = Field(None, ge=0, le=1)       # probability of Gaussian/motion blur (0.3 * s)
    noise: float | None = Field(None, ge=0, le=1)      # probability of Gaussian noise (0.3 * s)
    jpeg: float | None = Field(None, ge=0, le=1)       # probability of JPEG artefacts (0.3 * s)
    min_area: int = Field(16, ge=1)   # instances with fewer visible pixels after cropping are dropped
    # Simple Copy-Paste: probability that a training image gets instances of another one pasted
    # on (pipeline/copy_paste.py); not derived from `strength`, so older recipes stay as they were
    copy_paste: float = Field(0.0, ge=0, le=1)
    copy_paste_classes: list[str] = []  # category names whose instances are pasted; [] = all
    # probability that an instance of `recolor_classes` gets a random hue and saturation inside
    # its exact mask (pipeline/recolor.py): its paint stops being a cue, its shape has to be
    recolor: float = Field(0.0, ge=0, le=1)
    recolor_classes: list[str] = ["pallet_jack"]

    @field_validator("copy_paste_classes", "recolor_classes")
    @classmethod
    def _known_classes(cls, v):
        from pipeline.common import CATEGORIES
        names = [c["name"] for c in CATEGORIES]
        bad = [n for n in v if n not in names]
        if bad:
            raise ValueError(f"unknown class {bad[0]!r} (expected one of {names})")
        return v


class SolverConfig(StrictModel):
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = Field(0.02, gt=0)     # for batch 16 (torchvision reference); scale with batch size
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    pretrained_lr_mult: float = Field(0.1, gt=0, le=1)  # lr factor of pretrained layers vs new heads
    max_iters: int = Field(20000, ge=1)  # --max-iters overrides
    # a time budget instead of a step count (as Ultralytics' `time`): after a few steps the run
    # measures its pace and sets max_iters so that training (steps and loading, not validation)
    # takes this many minutes on this machine; replaces max_iters (pipeline.hooks.TimeBudget)
    max_minutes: float | None = Field(None, gt=0)
    warmup_iters: int = Field(500, ge=0)
    warmup_factor: float = Field(0.001, gt=0, le=1)
    schedule: Literal["cosine", "step"] = "cosine"
    steps: list[float] = [0.67, 0.89]  # step schedule: fractions of max_iters where lr *= gamma
    gamma: float = Field(0.1, gt=0, le=1)
    min_lr_factor: float = Field(0.0, ge=0, le=1)  # cosine floor
    clip_grad_norm: float | None = Field(10.0, gt=0)
    # moving average of the weights for validation and inference (pipeline/ema.py); 0 = off
    ema_decay: float = Field(0.0, ge=0, lt=1)
    amp: Literal["auto", "off", "fp16", "bf16"] = "auto"  # auto: fp16 on CUDA, bf16 on a CPU with bf16 units, else off
    # channels-last memory format; auto: on for CUDA with AMP (tensor cores), off elsewhere
    channels_last: Literal["auto", "on", "off"] = "auto"

    @field_validator("amp", mode="before")
    @classmethod
    def _yaml_off_is_false(cls, v):  # YAML reads a bare `off` as False
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v

    @field_validator("channels_last", mode="before")
    @classmethod
    def _yaml_on_is_true(cls, v):  # YAML reads a bare `on` / `off` as True / False
        return {False: "off", True: "on"}.get(v, v) if isinstance(v, bool) else v

    @model_validator(mode="after")
    def _steps_are_fractions(self):
        if any(not 0 < s < 1 for s in self.steps):
            raise ValueError("solver.steps are fractions of max_iters in (0, 1)")
        return self


class LogConfig(StrictModel):
    log_every: int = Field(20, ge=1)          # metrics.jsonl + TensorBoard scalars
    checkpoint_every: int = Field(500, ge=1)  # last.pt
    eval_every: int = Field(2000, ge=0)       # validation + best.pt (0 = only at the end)
    tb_images: int = Field(4, ge=0)           # validation images drawn with predictions
    val_max_images: int | None = Field(None, ge=1)  # cap validation cost on big sets
    # what best.pt is chosen by (segm falls back to bbox on box-only validation sets); on a
    # validation set of a few dozen images every choice is noisy: compare with last.pt.
    # last: best.pt is the latest validated model, the end of the schedule (what torchvision's
    # references and detectron2 evaluate); the run's headline is then segm AP
    best_metric: Literal["segm_AP", "segm_AP50", "bbox_AP", "bbox_AP50", "last"] = "segm_AP"


class TrainConfig(StrictModel):
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    threads: int | None = Field(None, ge=1)  # torch CPU threads (None = torch default)
    model: ModelConfig = ModelConfig()
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    solver: SolverConfig = SolverConfig()
    log: LogConfig = LogConfig()
