"""Mask R-CNN R50-FPN for our classes: weights resolution, 3-class heads, freezing, checkpoints.

The model is assembled here (not with `maskrcnn_resnet50_fpn(...)`) because torchvision picks
plain BatchNorm and ignores `trainable_backbone_layers` when no weights are given; building it
ourselves keeps FrozenBatchNorm2d and our freezing rules identical with and without weights.
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor, RPNHead
from torchvision.models.detection.mask_rcnn import (
    MaskRCNN,
    MaskRCNN_ResNet50_FPN_V2_Weights,
    MaskRCNN_ResNet50_FPN_Weights,
    MaskRCNNHeads,
    MaskRCNNPredictor,
)
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops.misc import FrozenBatchNorm2d

from pipeline.common import CATEGORIES, StrictModel, UserError

NUM_CLASSES = len(CATEGORIES) + 1  # + background

# Backbone stages in the order they are unfrozen (torchvision's trainable_backbone_layers order).
STAGES = ["layer4", "layer3", "layer2", "layer1", "conv1"]

COCO_WEIGHTS = {
    "maskrcnn_resnet50_fpn": MaskRCNN_ResNet50_FPN_Weights.COCO_V1,
    "maskrcnn_resnet50_fpn_v2": MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1,
}


class ModelConfig(StrictModel):
    arch: Literal["maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2"] = "maskrcnn_resnet50_fpn"
    # auto: torchvision COCO weights if cached/downloadable, else random init (loud warning);
    # coco: same but fail instead of falling back; none: random init; anything else: a file path
    weights: str = "auto"
    coco_weights_path: str | None = None   # a local copy of torchvision's COCO file (offline machines)
    allow_download: bool = True
    min_size: int = Field(800, ge=32)
    max_size: int = Field(1333, ge=32)
    # finetune: backbone stages per trainable_stages + FPN + RPN + ROI heads train;
    # features: backbone body and FPN frozen, RPN and ROI heads train (feature extraction);
    # roi_heads: backbone, FPN and RPN frozen, only the ROI box/mask heads train.
    mode: Literal["finetune", "features", "roi_heads"] = "finetune"
    trainable_stages: int = Field(3, ge=0, le=5)  # 0..5 backbone stages from the top (layer4 first)
    # gradual unfreezing: one more backbone stage every `unfreeze_every` steps (0 = off), up to
    # `unfreeze_max_stages`; only in finetune mode
    unfreeze_every: int = Field(0, ge=0)
    unfreeze_max_stages: int = Field(5, ge=0, le=5)
    frozen_bn: bool = True      # backbone BatchNorm as FrozenBatchNorm2d (torchvision's choice)
    # random init only: frozen BN statistics measured on this many training images (0 = identity BN)
    bn_calibration_images: int = Field(16, ge=0)
    box_score_thresh: float = Field(0.05, ge=0, le=1)
    box_detections_per_img: int = Field(100, ge=1)
    # sampling sizes (torchvision defaults); smaller ones make CPU steps several times cheaper
    rpn_pre_nms_top_n_train: int = Field(2000, ge=1)
    rpn_post_nms_top_n_train: int = Field(2000, ge=1)
    rpn_pre_nms_top_n_test: int = Field(1000, ge=1)
    rpn_post_nms_top_n_test: int = Field(1000, ge=1)
    rpn_batch_size_per_image: int = Field(256, ge=1)
    box_batch_size_per_image: int = Field(512, ge=1)


def _build_arch(cfg: ModelConfig, num_classes: int) -> MaskRCNN:
    norm = FrozenBatchNorm2d if cfg.frozen_bn else nn.BatchNorm2d
    body = resnet50(weights=None, norm_layer=norm)
    kw: dict[str, Any] = dict(min_size=cfg.min_size, max_size=cfg.max_size,
                              box_score_thresh=cfg.box_score_thresh,
                              box_detections_per_img=cfg.box_detections_per_img,
                              rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
                              rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
                              rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
                              rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
                              rpn_batch_size_per_image=cfg.rpn_batch_size_per_image,
                              box_batch_size_per_image=cfg.box_batch_size_per_image)
    if cfg.arch == "maskrcnn_resnet50_fpn":
        backbone = _resnet_fpn_extractor(body, 5)
        return MaskRCNN(backbone, num_classes=num_classes, **kw)
    # v2 (Li et al. 2021 recipe), as torchvision.models.detection.maskrcnn_resnet50_fpn_v2 builds it
    backbone = _resnet_fpn_extractor(body, 5, norm_layer=nn.BatchNorm2d)
    anchor_sizes = ((32,), (64,), (128,), (256,), (512,))
    anchors = AnchorGenerator(anchor_sizes, ((0.5, 1.0, 2.0),) * len(anchor_sizes))
    rpn_head = RPNHead(backbone.out_channels, anchors.num_anchors_per_location()[0], conv_depth=2)
    box_head = FastRCNNConvFCHead((backbone.out_channels, 7, 7), [256, 256, 256, 256], [1024],
                                  norm_layer=nn.BatchNorm2d)
    mask_head = MaskRCNNHeads(backbone.out_channels, [256, 256, 256, 256], 1, norm_layer=nn.BatchNorm2d)
    return MaskRCNN(backbone, num_classes=num_classes, rpn_anchor_generator=anchors,
                    rpn_head=rpn_head, box_head=box_head, mask_head=mask_head, **kw)


def replace_heads(model: MaskRCNN, num_classes: int) -> None:
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    model.roi_heads.mask_predictor = MaskRCNNPredictor(256, 256, num_classes)
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


def _coco_state_dict(cfg: ModelConfig) -> tuple[dict | None, str]:
    """torchvision's COCO weights from a local path, the hub cache, or a download; (None, why) if none."""
    weights = COCO_WEIGHTS[cfg.arch]
    fname = os.path.basename(weights.url)
    candidates = []
    if cfg.coco_weights_path:
        candidates.append(Path(cfg.coco_weights_path))
    candidates.append(Path(torch.hub.get_dir()) / "checkpoints" / fname)
    for p in candidates:
        if p.is_file():
            try:
                return torch.load(p, map_location="cpu", weights_only=True), f"torchvision {weights} from {p}"
            except Exception as e:  # a truncated download in the cache should not look like success
                return None, f"{p} unreadable ({type(e).__name__}: {e})"
    if cfg.coco_weights_path:
        return None, f"coco_weights_path {cfg.coco_weights_path} not found"
    if not cfg.allow_download:
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


def build_model(cfg: ModelConfig, num_classes: int = NUM_CLASSES) -> tuple[MaskRCNN, dict]:
    """Model with `num_classes`-way heads and the weights `cfg.weights` asks for, plus how it was initialised."""
    info: dict[str, Any] = {"weights": cfg.weights, "arch": cfg.arch, "pretrained": False}
    model = _build_arch(cfg, num_classes)
    if cfg.weights in ("auto", "coco"):
        sd, source = _coco_state_dict(cfg)
        if sd is None:
            if cfg.weights == "coco":
                raise UserError(f"model.weights=coco: COCO weights unavailable: {source} "
                                f"(use weights=auto to fall back to random init, or coco_weights_path=FILE)")
            msg = f"random (COCO weights unavailable: {source})"
            warnings.warn(f"\n{'!' * 72}\n  model.weights=auto: COCO weights unavailable, training from RANDOM init\n"
                          f"  ({source})\n{'!' * 72}", stacklevel=2)
            info["source"] = msg
            init_new_heads(model)
        else:
            skipped = _load_matching(model, sd, source)
            info.update(source=source, pretrained=True, reinitialised=skipped)
    elif cfg.weights == "none":
        info["source"] = "random (weights: none)"
        init_new_heads(model)
    else:
        path = Path(cfg.weights)
        if not path.is_file():
            raise UserError(f"model.weights: {path} not found (expected auto, coco, none or a file)")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise UserError(f"model.weights: {path}: not a torch weights file ({type(e).__name__})") from None
        if isinstance(obj, dict) and "model" in obj and "categories" in obj:
            sd, kind = obj["model"], "checkpoint of this project"
        elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
            sd, kind = obj, "state dict"
        else:
            raise UserError(f"model.weights: {path}: neither a state dict nor a checkpoint of this project")
        skipped = _load_matching(model, sd, f"model.weights: {path}")
        info.update(source=f"file {path} ({kind})", pretrained=True, reinitialised=skipped)
    if model.roi_heads.box_predictor.cls_score.out_features != num_classes:
        replace_heads(model, num_classes)
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
    """requires_grad per the mode: `stages` top backbone stages (+ bn1 with conv1, as torchvision)."""
    train_stages = STAGES[:stages] + (["bn1"] if stages == 5 else [])
    for name, p in model.backbone.body.named_parameters():
        p.requires_grad_(cfg.mode == "finetune" and name.split(".")[0] in train_stages)
    for p in model.backbone.fpn.parameters():
        p.requires_grad_(cfg.mode == "finetune")
    for p in model.rpn.parameters():
        p.requires_grad_(cfg.mode in ("finetune", "features"))
    for p in model.roi_heads.parameters():
        p.requires_grad_(True)


def param_groups(model: nn.Module, lr: float, pretrained_lr_mult: float, pretrained: bool) -> list[dict]:
    """All parameters (frozen ones too, so unfreezing later needs no new optimizer): replaced heads
    at `lr`, everything that came with pretrained weights at `lr * pretrained_lr_mult`."""
    head, rest = [], []
    for name, p in model.named_parameters():
        (head if name.startswith(("roi_heads.box_predictor.", "roi_heads.mask_predictor.")) else rest).append(p)
    mult = pretrained_lr_mult if pretrained else 1.0
    return [{"params": rest, "lr": lr * mult, "name": "pretrained", "lr_mult": mult},
            {"params": head, "lr": lr, "name": "heads", "lr_mult": 1.0}]


# ---------------------------------------------------------------- checkpoints

def set_inference_options(model: MaskRCNN, *, score_threshold: float | None = None,
                          min_size: int | None = None, max_size: int | None = None,
                          rpn_post_nms_top_n: int | None = None) -> MaskRCNN:
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
    return model


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
    """Eval-mode model with the checkpoint's weights, and the checkpoint dict."""
    ckpt = load_checkpoint(path)
    check_compatible(ckpt, path)
    cfg = model_config_from_checkpoint(ckpt, path)
    model = _build_arch(cfg, NUM_CLASSES)
    _load_matching_exact(model, ckpt["model"], path)
    return model.to(device).eval(), ckpt


def _load_matching_exact(model: nn.Module, sd: dict, path: str | Path) -> None:
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise UserError(f"{path}: weights do not fit the checkpoint's architecture ({first[:160]})") from None
