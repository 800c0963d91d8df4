"""Mask R-CNN architectures assembled from torchvision parts.

Two families share one builder:
- R50-FPN (v1 and v2): exactly torchvision's layout, so its COCO weights load.
- Light FPN variants (ResNet-18, ResNet-34, MobileNetV3-Large) meant to train from random
  init on a CPU: GroupNorm in backbone, FPN and heads (He et al., "Rethinking ImageNet
  Pre-training": GN trains from scratch at batch 2, where BatchNorm statistics are noise),
  anchors sized for warehouse objects at CPU input sizes, and slimmer heads.

Every knob that differs between them (norm, FPN width, anchors, head depth) is a
ModelConfig field whose `None` means "this architecture's default" (ARCH_DEFAULTS).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from torch import nn
from torchvision.models import mobilenet_v3_large, resnet18, resnet34, resnet50
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import (
    FastRCNNConvFCHead,
    FastRCNNPredictor,
    RPNHead,
    TwoMLPHead,
)
from torchvision.models.detection.mask_rcnn import MaskRCNN, MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from pipeline import crowd
from pipeline.common import UserError

if TYPE_CHECKING:
    from pipeline.model import ModelConfig

R50_ARCHS = ("maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2")
LIGHT_ARCHS = ("maskrcnn_resnet18_fpn", "maskrcnn_resnet34_fpn", "maskrcnn_mobilenet_v3_large_fpn")
ARCHS = R50_ARCHS + LIGHT_ARCHS

_R50_ANCHORS = [32, 64, 128, 256, 512]
# Light variants run at min_size ~320-416 on a CPU, where a far pedestrian is 15-30 px tall and
# a near one ~250; these sizes (one per level, P2..P6) cover that. Tall ratios for people.
_LIGHT_ANCHORS = [16, 32, 64, 128, 256]
_LIGHT_RATIOS = [0.5, 1.0, 2.0, 3.0]

# Per-architecture defaults for every `None` field of ModelConfig's architecture section.
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {
    "maskrcnn_resnet50_fpn": dict(fpn_channels=256, anchor_sizes=_R50_ANCHORS, aspect_ratios=[0.5, 1.0, 2.0],
                                  rpn_conv_depth=1, box_head_convs=0, box_head_fc=1024,
                                  mask_head_convs=4, mask_head_channels=256),
    "maskrcnn_resnet50_fpn_v2": dict(fpn_channels=256, anchor_sizes=_R50_ANCHORS, aspect_ratios=[0.5, 1.0, 2.0],
                                     rpn_conv_depth=2, box_head_convs=4, box_head_fc=1024,
                                     mask_head_convs=4, mask_head_channels=256),
    **{a: dict(fpn_channels=128, anchor_sizes=_LIGHT_ANCHORS, aspect_ratios=_LIGHT_RATIOS,
               rpn_conv_depth=1, box_head_convs=2, box_head_fc=512,
               mask_head_convs=2, mask_head_channels=128) for a in LIGHT_ARCHS},
}
ARCH_DEFAULTS["maskrcnn_mobilenet_v3_large_fpn"] = {
    **ARCH_DEFAULTS["maskrcnn_mobilenet_v3_large_fpn"],
    # three returned stages (strides 8, 16, 32) + max-pool: no stride-4 map in MobileNetV3
    "anchor_sizes": [24, 48, 96, 192]}


def spec(cfg: ModelConfig) -> dict[str, Any]:
    """The architecture fields of `cfg` with `None` replaced by the arch's default."""
    return {k: (getattr(cfg, k) if getattr(cfg, k) is not None else v)
            for k, v in ARCH_DEFAULTS[cfg.arch].items()}


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 32 groups where the width allows (MobileNet widths 16/24/72... take fewer)."""
    return nn.GroupNorm(math.gcd(channels, 32), channels)


NORM_LAYERS = {"frozen_bn": FrozenBatchNorm2d, "bn": nn.BatchNorm2d, "gn": group_norm}


def default_norm(cfg: ModelConfig, backbone_pretrained: bool) -> str:
    """Backbone norm for `norm: auto`: frozen BN under pretrained weights (their BN statistics
    are kept), else the R50 setting of `frozen_bn`, else GroupNorm for the light variants."""
    if cfg.norm != "auto":
        return cfg.norm
    if backbone_pretrained:
        return "frozen_bn"
    if cfg.arch in R50_ARCHS:
        return "frozen_bn" if cfg.frozen_bn else "bn"
    return "gn"


def _resnet_body(arch: str, norm) -> tuple[nn.Module, dict[str, str], list[int]]:
    fn = {"maskrcnn_resnet18_fpn": resnet18, "maskrcnn_resnet34_fpn": resnet34}.get(arch, resnet50)
    body = fn(weights=None, norm_layer=norm)
    c2 = body.inplanes // 8  # 64 for BasicBlock nets, 256 for Bottleneck
    return_layers = {f"layer{i}": str(i - 1) for i in range(1, 5)}
    return body, return_layers, [c2 * 2 ** i for i in range(4)]


def _mobilenet_body(norm) -> tuple[nn.Module, dict[str, str], list[int]]:
    features = mobilenet_v3_large(weights=None, norm_layer=norm).features
    # the blocks that end a resolution (torchvision's _mobilenet_extractor rule), the last three:
    # strides 8, 16, 32
    ends = [i - 1 for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    picked = ends[-3:]
    return_layers = {str(i): str(k) for k, i in enumerate(picked)}
    channels = [_out_channels(features[i]) for i in picked]
    return features, return_layers, channels


def _out_channels(block: nn.Module) -> int:
    return getattr(block, "out_channels", None) or [m for m in block.modules()
                                                     if isinstance(m, nn.Conv2d)][-1].out_channels


def build_backbone(cfg: ModelConfig, norm: str) -> BackboneWithFPN:
    s = spec(cfg)
    layer = NORM_LAYERS[norm]
    if cfg.arch == "maskrcnn_mobilenet_v3_large_fpn":
        body, return_layers, in_channels = _mobilenet_body(layer)
    else:
        body, return_layers, in_channels = _resnet_body(cfg.arch, layer)
    # torchvision's R50 v1 has a plain FPN (its COCO weights have no FPN norm); everything else
    # normalises the FPN: BN for v2 (as torchvision), GN for the light variants
    fpn_norm = {"maskrcnn_resnet50_fpn": None if norm != "gn" else group_norm,
                "maskrcnn_resnet50_fpn_v2": nn.BatchNorm2d if norm != "gn" else group_norm}.get(cfg.arch, group_norm)
    return BackboneWithFPN(body, return_layers, in_channels, s["fpn_channels"],
                           extra_blocks=LastLevelMaxPool(), norm_layer=fpn_norm)


def build_arch(cfg: ModelConfig, num_classes: int, norm: str) -> MaskRCNN:
    """The untrained network `cfg` describes, with a `norm` backbone ("frozen_bn", "bn" or "gn")."""
    s = spec(cfg)
    backbone = build_backbone(cfg, norm)
    levels = len(backbone.body.return_layers) + 1  # + the max-pool level
    if len(s["anchor_sizes"]) != levels:
        raise UserError(f"model.anchor_sizes: {cfg.arch} has {levels} feature levels, "
                         f"got {len(s['anchor_sizes'])} sizes")
    head_norm = group_norm if (cfg.arch in LIGHT_ARCHS or norm == "gn") else nn.BatchNorm2d
    ch = backbone.out_channels
    anchors = AnchorGenerator(tuple((a,) for a in s["anchor_sizes"]), (tuple(s["aspect_ratios"]),) * levels)
    mask_norm = None if (cfg.arch == "maskrcnn_resnet50_fpn" and norm != "gn") else head_norm
    parts: dict[str, nn.Module] = {}

    def make(part: str) -> None:
        if part == "rpn":
            parts[part] = RPNHead(ch, anchors.num_anchors_per_location()[0], conv_depth=s["rpn_conv_depth"])
        elif part == "box" and s["box_head_convs"]:
            parts[part] = FastRCNNConvFCHead((ch, 7, 7), [ch] * s["box_head_convs"], [s["box_head_fc"]],
                                             norm_layer=head_norm)
        elif part == "box":
            parts[part] = TwoMLPHead(ch * 7 * 7, s["box_head_fc"])
        elif part == "box_predictor":
            parts[part] = FastRCNNPredictor(s["box_head_fc"], num_classes)
        elif part == "mask":
            parts[part] = MaskRCNNHeads(ch, [s["mask_head_channels"]] * s["mask_head_convs"], 1,
                                        norm_layer=mask_norm)
        else:
            parts[part] = MaskRCNNPredictor(s["mask_head_channels"], s["mask_head_channels"], num_classes)

    # random init in the order torchvision's own builders draw it, so a seed gives the R50
    # weights torchvision would (and that earlier runs of this project had)
    order = (["rpn", "box", "mask", "mask_predictor", "box_predictor"] if cfg.arch == "maskrcnn_resnet50_fpn_v2"
             else ["mask", "mask_predictor", "rpn", "box", "box_predictor"])
    for part in order:
        make(part)
    names = [str(i) for i in range(levels - 1)]
    kw: dict[str, Any] = dict(
        min_size=tuple(cfg.train_min_sizes) or cfg.min_size, max_size=cfg.max_size,
        box_score_thresh=cfg.box_score_thresh,
        box_detections_per_img=cfg.box_detections_per_img,
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train, rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
        rpn_batch_size_per_image=cfg.rpn_batch_size_per_image, box_batch_size_per_image=cfg.box_batch_size_per_image,
        box_positive_fraction=cfg.box_positive_fraction)
    model = MaskRCNN(backbone, num_classes=None, rpn_anchor_generator=anchors, rpn_head=parts["rpn"],
                     box_roi_pool=MultiScaleRoIAlign(names, 7, 2), box_head=parts["box"],
                     box_predictor=parts["box_predictor"], mask_roi_pool=MultiScaleRoIAlign(names, 14, 2),
                     mask_head=parts["mask"], mask_predictor=parts["mask_predictor"], **kw)
    crowd.install(model)  # crowd targets (data.crowd: ignore) are left out of sampling
    if cfg.fp32_box_coding:
        boxes_in_fp32(model.rpn.head, model.roi_heads.box_predictor)
    return model


def _to_fp32(output):
    if isinstance(output, (tuple, list)):
        return type(output)(_to_fp32(o) for o in output)
    return output.float() if output.is_floating_point() else output


def boxes_in_fp32(*heads: nn.Module) -> None:
    """Box deltas and scores leave these heads in fp32 (a forward hook; no new weights).

    Under autocast torchvision's box coder casts anchors and proposals to the deltas' dtype,
    and bf16 keeps 8 bits of mantissa: pixel coordinates 256-512 land on a 2 px grid, so every
    regression target is quantised and a small proposal there collapses to zero width (a NaN
    box loss; measured: multi-scale training up to 555 px diverged at step 180). The hook only
    casts the heads' small outputs; the convolutions stay in the autocast dtype."""
    for head in heads:
        head.register_forward_hook(lambda _module, _inputs, output: _to_fp32(output))


def backbone_stages(model: MaskRCNN) -> list[list[str]]:
    """Backbone parameter-name prefixes per stage, top stage first (the order they unfreeze).
    ResNets: layer4, layer3, layer2, layer1, stem (conv1 + bn1). MobileNetV3: the blocks of each
    resolution, the stem with the first."""
    body = model.backbone.body
    names = [n for n, _ in body.named_children()]
    if "layer1" in names:
        return [["layer4"], ["layer3"], ["layer2"], ["layer1"], ["conv1", "bn1"]]
    blocks = list(body.named_children())
    cuts = [i for i, (_, m) in enumerate(blocks) if getattr(m, "_is_cn", False)]
    bounds = [0] + cuts[-4:] + [len(blocks)]
    groups = [[n for n, _ in blocks[a:b]] for a, b in zip(bounds, bounds[1:], strict=False)]
    return groups[::-1]
