"""pipeline.archs: the light from-scratch variants build, train a step, reload, and follow the
weights policy (ImageNet backbone files made here: none can be downloaded on this machine)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import mobilenet_v3_large, resnet18
from torchvision.ops.misc import FrozenBatchNorm2d

from pipeline.archs import ARCH_DEFAULTS, LIGHT_ARCHS, backbone_stages
from pipeline.common import CATEGORIES, UserError
from pipeline.model import (
    ModelConfig,
    build_model,
    model_from_checkpoint,
    param_groups,
    set_trainable,
)

TINY = dict(weights="none", min_size=96, max_size=128, rpn_post_nms_top_n_train=200,
            rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=50, box_batch_size_per_image=32)


def _batch():
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 96, 128, generator=g) for _ in range(2)]
    targets = []
    for _ in images:
        masks = torch.zeros(2, 96, 128, dtype=torch.uint8)
        masks[0, 20:80, 30:50] = 1   # a tall pedestrian
        masks[1, 60:85, 70:120] = 1  # a wide pallet jack
        targets.append({"boxes": torch.tensor([[30.0, 20, 50, 80], [70, 60, 120, 85]]),
                        "labels": torch.tensor([1, 2]), "masks": masks})
    return images, targets


@pytest.mark.parametrize("arch", LIGHT_ARCHS)
def test_light_arch_builds_trains_and_reloads(arch, tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, trainable_stages=5, **TINY)
    model, info = build_model(cfg)
    assert info["norm"] == "gn" and info["pretrained"] is False
    # GroupNorm everywhere that normalises, no BatchNorm left to learn batch-2 statistics
    assert not [m for m in model.modules() if isinstance(m, (nn.BatchNorm2d, FrozenBatchNorm2d))]
    assert any(isinstance(m, nn.GroupNorm) for m in model.backbone.body.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.backbone.fpn.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.roi_heads.mask_head.modules())
    rh = model.roi_heads
    assert rh.box_predictor.cls_score.out_features == 3
    assert rh.box_predictor.bbox_pred.out_features == 12
    assert rh.mask_predictor.mask_fcn_logits.out_channels == 3
    levels = len(ARCH_DEFAULTS[arch]["anchor_sizes"])
    assert len(model.rpn.anchor_generator.sizes) == levels
    assert model.rpn.head.cls_logits.out_channels == len(ARCH_DEFAULTS[arch]["aspect_ratios"])

    model.train()
    images, targets = _batch()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith("backbone.body.") for k in changed) and any(k.startswith("roi_heads.") for k in changed)

    # a checkpoint of this project rebuilds the same network with the same outputs
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "config": {"model": {**cfg.model_dump(), "norm": info["norm"]}},
                "categories": CATEGORIES, "step": 1}, path)
    loaded, _ = model_from_checkpoint(path)
    model.eval()
    with torch.no_grad():
        a = model.backbone(images[0][None])
        b = loaded.backbone(images[0][None])
    assert all(torch.equal(a[k], b[k]) for k in a)
    with torch.no_grad():
        out = loaded([images[0]])[0]
    assert set(out) == {"boxes", "labels", "scores", "masks"} and out["masks"].shape[1:] == (1, 96, 128)


@pytest.mark.parametrize("arch", LIGHT_ARCHS)
def test_backbone_stages_cover_the_body_and_unfreeze_top_first(arch):
    model, _ = build_model(ModelConfig(arch=arch, **TINY))
    stages = backbone_stages(model)
    assert len(stages) == 5
    params = {n.split(".")[0] for n, _ in model.backbone.body.named_parameters()}
    assert params == {n for g in stages for n in g} & params
    cfg = ModelConfig(arch=arch, **TINY)
    set_trainable(model, cfg, 1)
    trainable = {n.split(".")[2] for n, p in model.named_parameters()
                 if p.requires_grad and n.startswith("backbone.body.")}
    assert trainable == set(stages[0]) & params
    set_trainable(model, cfg, 5)
    assert all(p.requires_grad for p in model.backbone.body.parameters())


def _imagenet_file(arch: str, tmp_path):
    torch.manual_seed(3)
    net = resnet18() if arch == "maskrcnn_resnet18_fpn" else mobilenet_v3_large()
    name = "resnet18-f37072fd.pth" if arch == "maskrcnn_resnet18_fpn" else "mobilenet_v3_large-8738ca79.pth"
    (tmp_path / "checkpoints").mkdir(exist_ok=True)
    path = tmp_path / "checkpoints" / name
    torch.save(net.state_dict(), path)
    return net.state_dict(), path


@pytest.mark.parametrize("arch", ["maskrcnn_resnet18_fpn", "maskrcnn_mobilenet_v3_large_fpn"])
def test_imagenet_backbone_from_cache_and_from_a_path(arch, tmp_path, monkeypatch):
    sd, path = _imagenet_file(arch, tmp_path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model, info = build_model(ModelConfig(arch=arch, **{**TINY, "weights": "auto"}))
    assert info["pretrained"] == "backbone" and info["norm"] == "frozen_bn"
    assert "IMAGENET1K_V1" in info["source"]
    first_conv = "conv1.weight" if "resnet" in arch else "features.0.0.weight"
    body_key = first_conv.removeprefix("features.")
    assert torch.equal(model.backbone.body.state_dict()[body_key], sd[first_conv])
    # ImageNet statistics are kept: the backbone's BN is frozen, FPN and heads use GroupNorm
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.body.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in model.backbone.fpn.modules())
    # pretrained lr multiplier for the body only: FPN and heads are new
    pre, new = param_groups(model, 1e-3, 0.1, info["pretrained"])
    assert {id(p) for p in pre["params"]} == {id(p) for p in model.backbone.body.parameters()}
    assert pre["lr"] == pytest.approx(1e-4) and new["lr"] == 1e-3
    model2, info2 = build_model(ModelConfig(arch=arch, **{**TINY, "weights": str(path)}))
    assert info2["pretrained"] == "backbone" and info2["source"].startswith("file")
    assert torch.equal(model2.backbone.body.state_dict()[body_key], sd[first_conv])


def test_imagenet_policy_falls_back_loudly_and_fails_when_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cfg = ModelConfig(arch="maskrcnn_resnet18_fpn", allow_download=False, **{**TINY, "weights": "auto"})
    with pytest.warns(UserWarning, match="RANDOM init"):
        _, info = build_model(cfg)
    assert info["pretrained"] is False and info["norm"] == "gn"
    assert "ImageNet weights unavailable" in info["source"]
    assert "RANDOM init" in capsys.readouterr().err
    with pytest.raises(UserError, match="model.weights=imagenet: ImageNet weights unavailable"):
        build_model(cfg.model_copy(update={"weights": "imagenet"}))
    with pytest.raises(UserError, match="COCO weights exist for the R50 variants only"):
        build_model(cfg.model_copy(update={"weights": "coco"}))
    with pytest.raises(UserError, match="imagenet_weights_path .* not found"):
        build_model(cfg.model_copy(update={"weights": "imagenet", "imagenet_weights_path": str(tmp_path / "x")}))
    # a backbone of another architecture is refused with the file named
    _, path = _imagenet_file("maskrcnn_mobilenet_v3_large_fpn", tmp_path)
    with pytest.raises(UserError, match="backbone weights do not fit maskrcnn_resnet18_fpn"):
        build_model(cfg.model_copy(update={"weights": str(path)}))


def test_arch_options_override_the_defaults():
    model, _ = build_model(ModelConfig(arch="maskrcnn_resnet18_fpn", fpn_channels=64, anchor_sizes=[8, 16, 32, 64, 128],
                                       aspect_ratios=[1.0, 2.5], mask_head_convs=3, mask_head_channels=32, **TINY))
    assert model.backbone.out_channels == 64
    assert [s[0] for s in model.rpn.anchor_generator.sizes] == [8, 16, 32, 64, 128]
    assert model.rpn.head.cls_logits.out_channels == 2
    assert model.roi_heads.mask_predictor.mask_fcn_logits.in_channels == 32
    with pytest.raises(UserError, match="model.anchor_sizes: maskrcnn_resnet18_fpn has 5 feature levels, got 3"):
        build_model(ModelConfig(arch="maskrcnn_resnet18_fpn", anchor_sizes=[8, 16, 32], **TINY))
    with pytest.raises(ValueError, match="positive"):
        ModelConfig(aspect_ratios=[0.0, 1.0])
