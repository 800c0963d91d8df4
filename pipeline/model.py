"""Mask R-CNN for our classes: weights resolution, 3-class heads, freezing, checkpoints.

The networks are assembled in pipeline.archs (not with `maskrcnn_resnet50_fpn(...)`) because
torchvision picks plain BatchNorm and ignores `trainable_backbone_layers` when no weights are
given; building them ourselves keeps the norm and our freezing rules identical with and
without weights.
"""

from __future__ import annotations

import os
import socket
import sys
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import nn
from torchvision.models import MobileNet_V3_Large_Weights, ResNet18_Weights, ResNet34_Weights
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.mask_rcnn import (
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_V2_Weights,
    MaskRCNN_ResNet50_FPN_Weights,
    MaskRCNNPredictor,
)
from torchvision.ops.misc import FrozenBatchNorm2d

from pipeline.archs import (
    ARCHS,
    R50_ARCHS,
    backbone_stages,
    boxes_in_fp32,
    build_arch,
    default_norm,
)
from pipeline.common import CATEGORIES, StrictModel, UserError

NUM_CLASSES = len(CATEGORIES) + 1  # + background

# What `weights: auto` loads: COCO detectors for R50, ImageNet classifiers for the light backbones.
PRETRAINED_WEIGHTS = {
    "maskrcnn_resnet50_fpn": MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
    "maskrcnn_resnet50_fpn_v2": MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
    "maskrcnn_resnet18_fpn": ResNet18_Weights.IMAGENET1K_V1,
    "maskrcnn_resnet34_fpn": ResNet34_Weights.IMAGENET1K_V1,
    "maskrcnn_mobilenet_v3_large_fpn": MobileNet_V3_Large_Weights.IMAGENET1K_V1,
}


class ModelConfig(StrictModel):
    # R50 variants: the only ones with COCO weights (GPU users). Light variants: GroupNorm FPNs
    # that train from random init on a CPU (pipeline.archs), with ImageNet backbone weights
    # where they can be had.
    arch: Literal[ARCHS] = "maskrcnn_resnet50_fpn"  # type: ignore[valid-type]
    # auto: R50: torchvision COCO weights, light: ImageNet backbone weights, if cached or
    # downloadable, else random init (loud warning); coco / imagenet: the same but fail instead
    # of falling back; none: random init; anything else: a file path (a checkpoint of this
    # project, a detector state dict, or a classification backbone state dict)
    weights: str = "auto"
    coco_weights_path: str | None = None      # a local copy of torchvision's COCO file (offline machines)
    imagenet_weights_path: str | None = None  # a local copy of torchvision's ImageNet backbone file
    allow_download: bool = True
    min_size: int = Field(800, ge=32)
    max_size: int = Field(1333, ge=32)
    # test-time resize (detectron2's MIN_SIZE_TEST): validation, evaluate, video and export run at
    # this size unless they override it; null = min_size / max_size. Small far objects gain from
    # a larger test size than the CPU budget allows in training (README recipe table)
    test_min_size: int | None = Field(None, ge=32)
    test_max_size: int | None = Field(None, ge=32)
    # multi-scale training (detectron2's MIN_SIZE_TRAIN choice): each training image is resized
    # to one of these shorter sides, drawn by torch's seeded generator (saved in checkpoints);
    # [] trains at min_size. max_size still caps the longer side, so raise it with them
    train_min_sizes: list[int] = []
    # box deltas leave the RPN head and box predictor in fp32, so anchors, proposals and box
    # targets are decoded in fp32 under autocast (detectron2 does the same): torchvision casts
    # them to the deltas' dtype, and bf16 puts pixel coordinates 256-512 on a 2 px grid (a
    # 2 px proposal there collapses to zero width: NaN box targets). The demo's 320 px recipe
    # was chosen with it off (README "Box coding in fp32")
    fp32_box_coding: bool = True
    # finetune: backbone stages per trainable_stages + FPN + RPN + ROI heads train;
    # features: backbone body and FPN frozen, RPN and ROI heads train (feature extraction);
    # roi_heads: backbone, FPN and RPN frozen, only the ROI box/mask heads train.
    mode: Literal["finetune", "features", "roi_heads"] = "finetune"
    trainable_stages: int = Field(3, ge=0, le=5)  # 0..5 backbone stages from the top (layer4 first)
    # gradual unfreezing: one more backbone stage every `unfreeze_every` steps (0 = off), up to
    # `unfreeze_max_stages`; only in finetune mode
    unfreeze_every: int = Field(0, ge=0)
    unfreeze_max_stages: int = Field(5, ge=0, le=5)
    # backbone normalisation; auto: frozen BN under pretrained weights, R50 per `frozen_bn`,
    # GroupNorm for the light variants from random init. Runs record the resolved value.
    norm: Literal["auto", "frozen_bn", "bn", "gn"] = "auto"
    frozen_bn: bool = True      # R50 backbone BatchNorm as FrozenBatchNorm2d (torchvision's choice)
    # random init only: frozen BN statistics measured on this many training images (0 = identity BN)
    bn_calibration_images: int = Field(16, ge=0)
    # architecture shape; None = the arch's default (pipeline.archs.ARCH_DEFAULTS)
    fpn_channels: int | None = Field(None, ge=8)
    anchor_sizes: list[int] | None = None       # one size (px at model input) per FPN level
    aspect_ratios: list[float] | None = None    # height / width, shared by every level
    rpn_conv_depth: int | None = Field(None, ge=1)
    box_head_convs: int | None = Field(None, ge=0)  # 0: torchvision's two-FC head
    box_head_fc: int | None = Field(None, ge=8)
    mask_head_convs: int | None = Field(None, ge=1)
    mask_head_channels: int | None = Field(None, ge=8)
    box_score_thresh: float = Field(0.05, ge=0, le=1)
    box_detections_per_img: int = Field(100, ge=1)
    # sampling sizes (torchvision defaults); smaller ones make CPU steps several times cheaper
    rpn_pre_nms_top_n_train: int = Field(2000, ge=1)
    rpn_post_nms_top_n_train: int = Field(2000, ge=1)
    rpn_pre_nms_top_n_test: int = Field(1000, ge=1)
    rpn_post_nms_top_n_test: int = Field(1000, ge=1)
    rpn_batch_size_per_image: int = Field(256, ge=1)
    box_batch_size_per_image: int = Field(512, ge=1)
    box_positive_fraction: float = Field(0.25, gt=0, le=1)

    @field_validator("train_min_sizes")
    @classmethod
    def _sizes(cls, v):
        if any(s < 32 for s in v):
            raise ValueError(f"shorter sides in px (>= 32), got {v}")
        return v

    @field_validator("aspect_ratios", "anchor_sizes")
    @classmethod
    def _positive(cls, v):
        if v is not None and (not v or any(x <= 0 for x in v)):
            raise ValueError("expected a non-empty list of positive numbers")
        return v


def replace_heads(model: MaskRCNN, num_classes: int, fp32_box_coding: bool = True) -> None:
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    if fp32_box_coding:
        boxes_in_fp32(model.roi_heads.box_predictor)
    old = model.roi_heads.mask_predictor
    model.roi_heads.mask_predictor = MaskRCNNPredictor(old.conv5_mask.in_channels, old.conv5_mask.out_channels,
                                                       num_classes)
    init_new_heads(model)


@torch.no_grad()
def init_new_heads(model: MaskRCNN) -> None:
    """Small init of the class-specific layers (detectron2's choice). torchvision's kaiming
    fan_out init of the 1x1 mask-logit conv has std sqrt(2/num_classes) ~ 0.8 for 3 classes,
    which starts the mask loss near 6-30 instead of ln 2 and makes early training unstable."""
    box = model.roi_heads.box_predictor
    nn.init.normal_(box.cls_score.weight, std=0.01)
    nn.init.normal_(box.bbox_pred.weight, std=0.001)
    nn.init.zeros_(box.cls_score.bias)
    nn.init.zeros_(box.bbox_pred.bias)
    logits = model.roi_heads.mask_predictor.mask_fcn_logits
    nn.init.normal_(logits.weight, std=0.001)
    nn.init.zeros_(logits.bias)


def _torchvision_state_dict(weights, local_path: str | None, allow_download: bool,
                            field: str) -> tuple[dict | None, str]:
    """A torchvision weights file from a local path, the hub cache, or a download; (None, why) if none."""
    fname = os.path.basename(weights.url)
    candidates = []
    if local_path:
        candidates.append(Path(local_path))
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / fname)
    for p in candidates:
        if p.is_file():
            try:
                return torch.load(p, map_location="cpu", weights_only=True), f"torchvision {weights} from {p}"
            except Exception as e:  # a truncated download in the cache should not look like success
                return None, f"{p} unreadable ({type(e).__name__}: {e})"
    if local_path:
        return None, f"{field} {local_path} not found"
    if not allow_download:
        return None, f"{fname} not in {candidates[-1].parent} and downloads are off"
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(20)  # an offline machine should fall back quickly, not hang
    try:
        sd = weights.get_state_dict(progress=False, check_hash=True)
        return sd, f"torchvision {weights} downloaded to {candidates[-1]}"
    except Exception as e:
        return None, f"download of {weights.url} failed ({type(e).__name__}: {str(e)[:120]})"
    finally:
        socket.setdefaulttimeout(old)


def _load_matching(model: nn.Module, sd: dict, source: str) -> list[str]:
    """Load `sd` into `model`; class-specific predictor tensors of another class count are skipped
    (they are re-initialised), anything else missing or mismatched means another architecture."""
    own = model.state_dict()
    skipped = [k for k, v in sd.items()
               if k.startswith(("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits."))
               and k in own and own[k].shape != v.shape]
    sd = {k: v for k, v in sd.items() if k not in skipped}
    bad = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in sd and k not in skipped and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own and not k.endswith("num_batches_tracked")]
    if bad or missing or unexpected:
        detail = (f"{len(bad)} shape mismatches (e.g. {bad[:2]})" if bad else
                  f"{len(missing)} missing keys (e.g. {missing[:2]})" if missing else
                  f"{len(unexpected)} unexpected keys (e.g. {unexpected[:2]})")
        raise UserError(f"{source}: weights do not fit this architecture: {detail}")
    model.load_state_dict(sd, strict=False)
    return skipped


def _backbone_as_detector_keys(sd: dict) -> dict:
    """A classification state dict (torchvision ResNet / MobileNetV3) keyed as our backbone body;
    the classifier is dropped."""
    out = {}
    for k, v in sd.items():
        if k.startswith(("fc.", "classifier.")):
            continue
        out["backbone.body." + k.removeprefix("features.")] = v
    return out


def _read_weights_file(path: Path) -> tuple[dict, str, str]:
    """(state dict keyed for the detector, scope 'detector' or 'backbone', description)."""
    if not path.is_file():
        raise UserError(f"model.weights: {path} not found (expected auto, coco, imagenet, none or a file)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"model.weights: {path}: not a torch weights file ({type(e).__name__})") from None
    if isinstance(obj, dict) and "model" in obj and "categories" in obj:
        return obj["model"], "detector", "checkpoint of this project"
    if not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise UserError(f"model.weights: {path}: neither a state dict nor a checkpoint of this project")
    if any(k.startswith("backbone.") for k in obj):
        return obj, "detector", "detector state dict"
    return _backbone_as_detector_keys(obj), "backbone", "backbone state dict"


def _norm_of_state_dict(sd: dict, cfg: ModelConfig) -> str:
    """The backbone norm a detector state dict was trained with: BN keeps running statistics."""
    if cfg.norm != "auto":
        return cfg.norm
    if any(k.startswith("backbone.body.") and k.endswith("running_mean") for k in sd):
        return default_norm(cfg, backbone_pretrained=True)
    return "gn"


class RandomInitWarning(UserWarning):
    """Training starts from random weights although pretrained ones were asked for (weights=auto)."""


def _warn_random_init(message: str, why: str) -> None:
    """The banner on stderr, once, and the same message as a RandomInitWarning for callers that
    record warnings. Shown by the warnings module too it would repeat the message with the
    caller's source line (`model, init_info = build_model(...)`), which reads like the culprit,
    so its display is ignored by default; a caller's own filters (-W, catch_warnings) still win
    because this one goes to the end of the list."""
    print(f"{'!' * 72}\n  {message}\n  ({why})\n{'!' * 72}", file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RandomInitWarning, append=True)
        warnings.warn(message, RandomInitWarning, stacklevel=3)


def build_model(cfg: ModelConfig, num_classes: int = NUM_CLASSES) -> tuple[MaskRCNN, dict]:
    """Model with `num_classes`-way heads and the weights `cfg.weights` asks for, plus how it was
    initialised (`info`: source, pretrained scope, the resolved backbone `norm`)."""
    info: dict[str, Any] = {"weights": cfg.weights, "arch": cfg.arch, "pretrained": False}
    kind = "coco" if cfg.arch in R50_ARCHS else "imagenet"
    label = {"coco": "COCO", "imagenet": "ImageNet"}[kind]
    sd, scope = None, None
    if cfg.weights in ("auto", "coco", "imagenet"):
        if cfg.weights not in ("auto", kind):
            raise UserError(f"model.weights={cfg.weights}: {cfg.arch} has torchvision {kind} weights, not "
                            f"{cfg.weights} (COCO weights exist for the R50 variants only; use auto, {kind}, "
                            f"none or a file)")
        field = f"{kind}_weights_path"
        sd, source = _torchvision_state_dict(PRETRAINED_WEIGHTS[cfg.arch], getattr(cfg, field),
                                             cfg.allow_download, field)
        if sd is None:
            if cfg.weights == kind:
                raise UserError(f"model.weights={kind}: {label} weights unavailable: {source} "
                                f"(use weights=auto to fall back to random init, or {field}=FILE)")
            _warn_random_init(f"model.weights=auto: {label} weights unavailable, training from RANDOM init",
                              source)
            info["source"] = f"random ({label} weights unavailable: {source})"
        else:
            scope = "detector" if kind == "coco" else "backbone"
            if scope == "backbone":
                sd = _backbone_as_detector_keys(sd)
    elif cfg.weights == "none":
        info["source"] = "random (weights: none)"
    else:
        path = Path(cfg.weights)
        sd, scope, what = _read_weights_file(path)
        source = f"file {path} ({what})"
    norm = (default_norm(cfg, backbone_pretrained=False) if sd is None else
            _norm_of_state_dict(sd, cfg) if scope == "detector" else default_norm(cfg, backbone_pretrained=True))
    model = build_arch(cfg, num_classes, norm)
    info["norm"] = norm
    if sd is None:
        init_new_heads(model)
    elif scope == "backbone":
        body = model.backbone.body
        try:
            body.load_state_dict({k.removeprefix("backbone.body."): v for k, v in sd.items()}, strict=True)
        except RuntimeError as e:
            raise UserError(f"{source}: backbone weights do not fit {cfg.arch} ({_first_problem(e)})") from None
        init_new_heads(model)
        info.update(source=source, pretrained="backbone", reinitialised=["everything but backbone.body"])
    else:
        skipped = _load_matching(model, sd, source if cfg.weights in ("auto", "coco") else f"model.weights: {path}")
        info.update(source=source, pretrained="detector", reinitialised=skipped)
    if model.roi_heads.box_predictor.cls_score.out_features != num_classes:
        replace_heads(model, num_classes, cfg.fp32_box_coding)
        info["reinitialised"] = ["roi_heads.box_predictor", "roi_heads.mask_predictor"]
    set_trainable(model, cfg, trainable_stages_at(cfg, 0))
    return model, info


@torch.no_grad()
def calibrate_frozen_bn(model: MaskRCNN, batches) -> int:
    """Set the statistics of a randomly initialised backbone's FrozenBatchNorm2d layers from data.

    Random init leaves frozen BN as the identity, so activations grow through the 16 residual
    blocks (mask loss ~30, gradient norm ~2000 at the first step). Here each layer's mean and
    variance become the running average of its inputs over `batches` (lists of CxHxW image
    tensors), computed in network order so every layer sees already-normalised inputs: the
    backbone starts well scaled and BN stays frozen, as with pretrained weights.
    Returns the number of images used.
    """
    layers = [m for m in model.backbone.body.modules() if isinstance(m, FrozenBatchNorm2d)]
    if not layers:
        return 0
    counts = {id(m): 0 for m in layers}

    def hook(m, inputs):
        x = inputs[0].float()
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
        n = counts[id(m)]
        m.running_mean.mul_(n / (n + 1)).add_(mean / (n + 1)) if n else m.running_mean.copy_(mean)
        m.running_var.mul_(n / (n + 1)).add_(var / (n + 1)) if n else m.running_var.copy_(var)
        counts[id(m)] = n + 1

    handles = [m.register_forward_pre_hook(hook) for m in layers]
    was_training = model.training
    model.eval()
    seen = 0
    try:
        device = next(model.parameters()).device
        for images in batches:
            image_list, _ = model.transform([im.to(device) for im in images])
            model.backbone.body(image_list.tensors)
            seen += len(images)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return seen


# ---------------------------------------------------------------- freezing

def trainable_stages_at(cfg: ModelConfig, step: int) -> int:
    """Backbone stages trainable at optimizer step `step` (gradual unfreezing schedule)."""
    if cfg.mode != "finetune":
        return 0
    if cfg.unfreeze_every <= 0:
        return cfg.trainable_stages
    return min(max(cfg.unfreeze_max_stages, cfg.trainable_stages),
               cfg.trainable_stages + step // cfg.unfreeze_every)


def set_trainable(model: MaskRCNN, cfg: ModelConfig, stages: int) -> None:
    """requires_grad per the mode: `stages` top backbone stages (pipeline.archs.backbone_stages)."""
    train_stages = {n for group in backbone_stages(model)[:stages] for n in group}
    for name, p in model.backbone.body.named_parameters():
        p.requires_grad_(cfg.mode == "finetune" and name.split(".")[0] in train_stages)
    for p in model.backbone.fpn.parameters():
        p.requires_grad_(cfg.mode == "finetune")
    for p in model.rpn.parameters():
        p.requires_grad_(cfg.mode in ("finetune", "features"))
    for p in model.roi_heads.parameters():
        p.requires_grad_(True)


def param_groups(model: nn.Module, lr: float, pretrained_lr_mult: float,
                 pretrained: bool | str) -> list[dict]:
    """All parameters (frozen ones too, so unfreezing later needs no new optimizer): new layers at
    `lr`, everything that came with pretrained weights at `lr * pretrained_lr_mult`. `pretrained`
    is the scope build_model reports: "detector" (all but the class predictors), "backbone"
    (the backbone body only), or False."""
    scope = "detector" if pretrained is True else pretrained
    new = ("roi_heads.box_predictor.", "roi_heads.mask_predictor.")
    head, rest = [], []
    for name, p in model.named_parameters():
        is_new = name.startswith(new) or (scope == "backbone" and not name.startswith("backbone.body."))
        (head if is_new else rest).append(p)
    mult = pretrained_lr_mult if scope else 1.0
    return [{"params": rest, "lr": lr * mult, "name": "pretrained", "lr_mult": mult},
            {"params": head, "lr": lr, "name": "heads", "lr_mult": 1.0}]


# ---------------------------------------------------------------- checkpoints

def set_inference_options(model: MaskRCNN, *, score_threshold: float | None = None,
                          min_size: int | None = None, max_size: int | None = None,
                          rpn_post_nms_top_n: int | None = None,
                          nms_threshold: float | None = None) -> MaskRCNN:
    """Test-time knobs shared by evaluate, video and export; None keeps the checkpoint's value.

    Fewer RPN proposals and a higher score threshold are the big CPU savings: the box head
    runs once per proposal and every kept box pastes a full-resolution mask.
    """
    if score_threshold is not None:
        model.roi_heads.score_thresh = score_threshold
    if min_size:
        model.transform.min_size = (min_size,)
    if max_size:
        model.transform.max_size = max_size
    if rpn_post_nms_top_n:
        model.rpn._post_nms_top_n["testing"] = rpn_post_nms_top_n
    if nms_threshold is not None:
        model.roi_heads.nms_thresh = nms_threshold
    return model


def inference_sizes(cfg: ModelConfig) -> tuple[int, int]:
    """(min_size, max_size) a model of `cfg` is run at outside training."""
    return cfg.test_min_size or cfg.min_size, cfg.test_max_size or cfg.max_size


@contextmanager
def at_size(model: MaskRCNN, min_size: int | None, max_size: int | None) -> Iterator[MaskRCNN]:
    """The model with its transform resized to (min_size, max_size) (None keeps that one),
    restored to its sizes before when the block ends, also on an exception."""
    t = model.transform
    before = t.min_size, t.max_size
    set_inference_options(model, min_size=min_size, max_size=max_size)
    try:
        yield model
    finally:
        t.min_size, t.max_size = before


def at_test_size(model: MaskRCNN, cfg: ModelConfig) -> AbstractContextManager[MaskRCNN]:
    """The model with its transform at the test size of `cfg`, restored to the training size after."""
    return at_size(model, *inference_sizes(cfg))


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: not a readable checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:100]})") from None
    if not isinstance(ckpt, dict) or not {"model", "config", "categories"} <= set(ckpt):
        raise UserError(f"{path}: not a checkpoint of this project (expected keys model, config, categories)")
    return ckpt


def check_compatible(ckpt: dict, path: str | Path, arch: str | None = None) -> None:
    """Refuse a checkpoint whose classes (or, if given, architecture) differ from ours."""
    if [(c["id"], c["name"]) for c in ckpt["categories"]] != [(c["id"], c["name"]) for c in CATEGORIES]:
        raise UserError(f"{path}: checkpoint classes {[c['name'] for c in ckpt['categories']]} differ from "
                        f"this project's {[c['name'] for c in CATEGORIES]}")
    ck_arch = ckpt["config"].get("model", {}).get("arch")
    if arch is not None and ck_arch != arch:
        raise UserError(f"{path}: checkpoint architecture {ck_arch!r} differs from model.arch {arch!r}")


def model_config_from_checkpoint(ckpt: dict, path: str | Path) -> ModelConfig:
    try:
        data = {**ckpt["config"]["model"], "weights": "none"}
        return ModelConfig.model_validate(data)
    except Exception as e:
        raise UserError(f"{path}: checkpoint has no valid model config ({str(e).splitlines()[0]})") from None


def model_from_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[MaskRCNN, dict]:
    """Eval-mode model with the checkpoint's weights at its test size, and the checkpoint dict."""
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, path)
    cfg = model_config_from_checkpoint(ckpt, path)
    model = build_arch(cfg, NUM_CLASSES, default_norm(cfg, backbone_pretrained=False))
    _load_matching_exact(model, ckpt["model"], path)
    min_size, max_size = inference_sizes(cfg)
    set_inference_options(model, min_size=min_size, max_size=max_size)
    return model.to(device).eval(), ckpt


def _load_matching_exact(model: nn.Module, sd: dict, path: str | Path) -> None:
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        raise UserError(f"{path}: weights do not fit the checkpoint's architecture ({_first_problem(e)})") from None


def _first_problem(e: RuntimeError) -> str:
    """The first missing/unexpected/mismatched key of a load_state_dict error, not its 100 lines."""
    lines = str(e).splitlines()
    return (lines[1].strip() if len(lines) > 1 else str(e))[:160]
