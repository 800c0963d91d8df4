"""One training step, the learning-rate schedule, and validation with COCO metrics."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable

import torch
from torch import nn

from pipeline.coco_eval import GroundTruth, evaluate_coco
from pipeline.common import UserError
from pipeline.config import SolverConfig
from pipeline.devices import cpu_has_bf16
from pipeline.inference_settings import DEFAULT_MASK_THRESHOLD
from pipeline.model import param_groups


class TrainingDiverged(RuntimeError):
    """Loss became NaN/inf; the message names the step and the loss terms."""


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype. auto: fp16 on CUDA; bf16 on a CPU with bf16 units (bench/train.py on 2
    Zen 4 cores: 1.17x a MobileNetV3 step, 1.49x a ResNet-18 one), else fp32."""
    if amp == "auto" and device.type == "cpu":
        return torch.bfloat16 if cpu_has_bf16() else None
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp in ("auto", "fp16"):
        if device.type != "cuda":
            raise UserError("solver.amp=fp16 needs CUDA (use bf16 on CPU, or off)")
        return torch.float16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"solver.amp=bf16: {torch.cuda.get_device_name(device)} has no bf16 units "
                        f"(expected an Ampere or newer GPU; use fp16 or auto)")
    return torch.bfloat16


def dtype_name(dtype: torch.dtype | None) -> str | None:
    """How logs, summary.json and the benchmarks name an autocast dtype: bfloat16, float16 or None."""
    return str(dtype).removeprefix("torch.") if dtype else None


def use_channels_last(setting: str, device: torch.device, dtype: torch.dtype | None) -> bool:
    """NHWC activations: tensor-core convolutions under CUDA AMP read them without transposes.
    auto keeps NCHW elsewhere: on 2 CPU cores (bench/train.py, MobileNetV3 demo) NHWC gave fp32
    1.01x and made bf16 1.4x slower."""
    if setting == "auto":
        return device.type == "cuda" and dtype is not None
    return setting == "on"


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ---------------------------------------------------------------- optimizer and schedule

def lr_factor(step: int, s: SolverConfig) -> float:
    """Multiplier of the base lr at optimizer step `step`: linear warm-up, then cosine or steps."""
    if step < s.warmup_iters:
        a = step / s.warmup_iters
        return s.warmup_factor * (1 - a) + a
    if s.schedule == "step":
        return s.gamma ** sum(step >= f * s.max_iters for f in s.steps)
    span = max(1, s.max_iters - s.warmup_iters)
    t = min(1.0, (step - s.warmup_iters) / span)
    return s.min_lr_factor + (1 - s.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * t))


def build_optimizer(model: nn.Module, s: SolverConfig, pretrained: bool) -> torch.optim.Optimizer:
    """SGD or AdamW over `param_groups`, built after the model is on its device.

    AdamW is fused where every parameter is on a CPU or CUDA device: one kernel for all tensors
    instead of a loop of small ops (the 2-core demo model's 209 tensors: 6.8 ms a step against
    26.9). SGD is not: torch's fused SGD fails on a step where a parameter unfrozen by gradual
    unfreezing has a gradient but no momentum buffer yet, while fused AdamW starts its state."""
    groups = param_groups(model, s.lr, s.pretrained_lr_mult, pretrained)
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=s.lr, weight_decay=s.weight_decay, fused=fused)


def build_scheduler(optimizer: torch.optim.Optimizer, s: SolverConfig) -> torch.optim.lr_scheduler.LambdaLR:
    # a closure (not an object) so the scheduler's state dict stays plain data
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, s))


# ---------------------------------------------------------------- one step

def train_step(model: nn.Module, images, targets, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler | None, device: torch.device, dtype: torch.dtype | None,
               clip_grad_norm: float | None, step: int, all_reduce=None) -> dict[str, float]:
    """Forward + backward + update; returns the loss terms. Raises TrainingDiverged before the
    update if the loss is not finite (on any rank when `all_reduce` sums across processes)."""
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [{k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()}
               for t in targets]
    with autocast(device, dtype):
        loss_dict = model(images, targets)
    loss = sum(loss_dict.values())
    check = loss.detach().float().reshape(1)
    if all_reduce is not None:
        check = all_reduce(check)
    if not torch.isfinite(check).all():
        terms = ", ".join(f"{k}={v.item():.4g}" for k, v in loss_dict.items())
        raise TrainingDiverged(f"loss is {check.item()} at step {step + 1} ({terms})")
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    else:
        loss.backward()
    grad_norm = None
    if clip_grad_norm:
        params = [p for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, clip_grad_norm))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    out = {k: float(v.detach()) for k, v in loss_dict.items()}
    out["loss"] = float(loss.detach())
    if grad_norm is not None:
        out["grad_norm"] = grad_norm
    return out


# ---------------------------------------------------------------- validation

# Mask probabilities -> binary masks: the thresholds validation tries. A head trained from random
# init on a CPU budget comes out under-confident: on the demo test set (100 images) its mask AP
# was 0.033 at torchvision's 0.5 and 0.044-0.045 at 0.3-0.4, box AP unchanged.
MASK_THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: torch.device, dtype: torch.dtype | None,
            keep_outputs: int = 0, mask_thresholds: tuple[float, ...] = (DEFAULT_MASK_THRESHOLD,),
            ) -> tuple[dict[float, list[dict]], list[tuple]]:
    """COCO results for every image in `loader`, one list per mask threshold (the boxes are the
    same in each), plus (image, output) of the first `keep_outputs`."""
    from pipeline.detections import (
        outputs_to_results,  # one converter for training and the eval CLI
    )

    was_training = model.training
    model.eval()
    results: dict[float, list[dict]] = {t: [] for t in mask_thresholds}
    kept = []
    try:
        for images, targets in loader:
            with autocast(device, dtype):
                outputs = model([im.to(device) for im in images])
            for im, t, o in zip(images, targets, outputs, strict=True):
                o = {k: v.float().cpu() for k, v in o.items()}
                for threshold in mask_thresholds:
                    results[threshold] += outputs_to_results(o, t["image_id"], threshold)
                if len(kept) < keep_outputs:
                    kept.append((im, o))
    finally:
        model.train(was_training)
    return results, kept


def _summary(r) -> dict:
    return {**r.metrics, "per_class": r.per_class, "per_class_AP50": r.per_class_ap50}


def coco_metrics(gt: GroundTruth, results: list[dict] | dict[float, list[dict]]) -> dict:
    """{'bbox': {AP, AP50, ..., per_class}, 'segm': {...}} from pipeline.coco_eval (pycocotools).
    Given results per mask threshold (predict), the masks are scored at each and reported at the
    best (ties: the one nearest 0.5), which 'segm' names as mask_threshold, with the mask AP of
    each under AP_by_mask_threshold."""
    if not isinstance(results, dict):
        return {t: _summary(r) for t, r in evaluate_coco(gt, results).items()}
    if not gt.has_masks or len(results) == 1:
        chosen = DEFAULT_MASK_THRESHOLD if DEFAULT_MASK_THRESHOLD in results else next(iter(results))
        metrics = {t: _summary(r) for t, r in evaluate_coco(gt, results[chosen]).items()}
        if "segm" in metrics:
            metrics["segm"]["mask_threshold"] = chosen
        return metrics
    segm = {t: evaluate_coco(gt, r, ("segm",))["segm"] for t, r in results.items()}
    ap = {t: r.metrics["AP"] or 0.0 for t, r in segm.items()}
    chosen = max(ap, key=lambda t: (round(ap[t], 6), -abs(t - DEFAULT_MASK_THRESHOLD)))
    # the boxes are the same in every list
    metrics = {"bbox": _summary(evaluate_coco(gt, results[chosen], ("bbox",))["bbox"]), "segm": _summary(segm[chosen])}
    metrics["segm"].update(mask_threshold=chosen, AP_by_mask_threshold={str(t): round(v, 6) for t, v in ap.items()})
    return metrics
