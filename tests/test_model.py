"""pipeline.model: heads, weights resolution, freezing, checkpoints."""

from __future__ import annotations

import warnings

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2
from torchvision.ops.misc import FrozenBatchNorm2d

from pipeline.archs import build_arch
from pipeline.common import CATEGORIES, UserError
from pipeline.data import CocoDetection
from pipeline.model import (
    ModelConfig,
    at_test_size,
    build_model,
    calibrate_frozen_bn,
    load_checkpoint,
    model_from_checkpoint,
    param_groups,
    set_trainable,
    trainable_stages_at,
)

TINY = dict(weights="none", min_size=96, max_size=128)


@pytest.fixture(scope="module")
def model_and_info():
    torch.manual_seed(0)
    return build_model(ModelConfig(**TINY))


def test_heads_have_three_classes(model_and_info):
    model, info = model_and_info
    rh = model.roi_heads
    assert rh.box_predictor.cls_score.out_features == 3
    assert rh.box_predictor.bbox_pred.out_features == 3 * 4
    assert rh.mask_predictor.mask_fcn_logits.out_channels == 3
    assert info["source"].startswith("random") and info["pretrained"] is False
    model.eval()
    with torch.no_grad():
        out = model([torch.rand(3, 96, 128)])[0]
    assert set(out) == {"boxes", "labels", "scores", "masks"}
    assert out["masks"].shape[1:] == (1, 96, 128)
    assert set(out["labels"].tolist()) <= {1, 2}


@pytest.mark.parametrize("arch,reference", [("maskrcnn_resnet50_fpn", maskrcnn_resnet50_fpn),
                                            ("maskrcnn_resnet50_fpn_v2", maskrcnn_resnet50_fpn_v2)])
def test_architecture_matches_torchvision_so_coco_weights_load(arch, reference):
    ours = build_arch(ModelConfig(arch=arch, **TINY), 91, "frozen_bn").state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = reference(weights=None, weights_backbone=None, num_classes=91).state_dict()
    strip = lambda sd: {k: tuple(v.shape) for k, v in sd.items() if not k.endswith("num_batches_tracked")}  # noqa: E731
    assert strip(ours) == strip(theirs)


def test_backbone_bn_is_frozen(model_and_info):
    model, _ = model_and_info
    bns = [m for m in model.backbone.body.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(bns) == 53  # every BatchNorm of ResNet-50
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.body.modules())


def _trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("stages", [0, 1, 3, 5])
def test_finetune_trains_exactly_the_top_stages(model_and_info, stages):
    model, _ = model_and_info
    cfg = ModelConfig(**TINY, trainable_stages=stages)
    set_trainable(model, cfg, stages)
    tr = _trainable(model)
    body = {n.split(".")[2] for n in tr if n.startswith("backbone.body.")}
    assert body == set(["layer4", "layer3", "layer2", "layer1", "conv1"][:stages])
    everything_else = {n for n, _ in model.named_parameters() if not n.startswith("backbone.body.")}
    assert everything_else <= tr  # FPN, RPN and ROI heads train


def test_feature_extraction_modes(model_and_info):
    model, _ = model_and_info
    names = {n for n, _ in model.named_parameters()}
    set_trainable(model, ModelConfig(**TINY, mode="features"), 5)
    assert _trainable(model) == {n for n in names if n.startswith(("rpn.", "roi_heads."))}
    set_trainable(model, ModelConfig(**TINY, mode="roi_heads"), 5)
    assert _trainable(model) == {n for n in names if n.startswith("roi_heads.")}
    assert trainable_stages_at(ModelConfig(**TINY, mode="features", trainable_stages=3), 0) == 0


def test_gradual_unfreezing_schedule(model_and_info):
    cfg = ModelConfig(**TINY, trainable_stages=1, unfreeze_every=10, unfreeze_max_stages=3)
    assert [trainable_stages_at(cfg, s) for s in (0, 9, 10, 19, 20, 1000)] == [1, 1, 2, 2, 3, 3]
    model, _ = model_and_info
    set_trainable(model, cfg, trainable_stages_at(cfg, 10))
    body = {n.split(".")[2] for n in _trainable(model) if n.startswith("backbone.body.")}
    assert body == {"layer4", "layer3"}
    assert trainable_stages_at(ModelConfig(**TINY, trainable_stages=2), 10_000) == 2


def test_param_groups_give_new_heads_the_full_lr(model_and_info):
    model, _ = model_and_info
    pre, heads = param_groups(model, 0.02, 0.1, pretrained=True)
    assert pre["lr"] == pytest.approx(0.002) and heads["lr"] == 0.02
    head_ids = {id(p) for p in heads["params"]}
    assert head_ids == {id(p) for p in model.roi_heads.box_predictor.parameters()} | \
        {id(p) for p in model.roi_heads.mask_predictor.parameters()}
    assert len(pre["params"]) + len(heads["params"]) == len(list(model.parameters()))
    pre, heads = param_groups(model, 0.02, 0.1, pretrained=False)  # nothing pretrained to protect
    assert pre["lr"] == heads["lr"] == 0.02


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_optimizer_steps_as_the_per_tensor_loop_through_unfreezing(model_and_info, optimizer):
    """build_optimizer's AdamW is fused on a CPU. Over two steps, where half the parameters
    get their first gradient only at the second (gradual unfreezing), every parameter moves
    as torch's per-tensor loop moves it (fp32 rounding apart), in both lr groups."""
    from pipeline.config import SolverConfig
    from pipeline.engine import build_optimizer

    model, _ = model_and_info
    s = SolverConfig(optimizer=optimizer, lr=0.01, weight_decay=1e-2)
    named = list(model.named_parameters())
    late = {n for i, (n, _) in enumerate(named) if i % 2}   # unfrozen at step 2
    start = {n: p.detach().clone() for n, p in named}
    g = torch.Generator().manual_seed(0)
    grads = [{n: torch.randn(p.shape, generator=g) for n, p in named} for _ in range(2)]
    moved = []
    for reference in (False, True):
        with torch.no_grad():
            for n, p in named:
                p.copy_(start[n])
        opt = build_optimizer(model, s, pretrained=True)
        assert opt.defaults.get("fused") is (True if optimizer == "adamw" else None)
        if reference:  # torch's per-tensor loop, same groups and hyper-parameters
            groups = [{k: v for k, v in grp.items() if k not in ("fused", "foreach")} for grp in opt.param_groups]
            opt = type(opt)(groups, foreach=False)
        for step in range(2):
            for n, p in named:
                p.grad = None if (step == 0 and n in late) else grads[step][n].clone()
            opt.step()
        moved.append({n: p.detach().clone() for n, p in named})
    with torch.no_grad():
        for n, p in named:
            p.copy_(start[n])
            p.grad = None
    assert any(not torch.equal(moved[0][n], start[n]) for n in late)
    for n in start:
        torch.testing.assert_close(moved[0][n], moved[1][n], rtol=1e-5, atol=1e-6, msg=n)


def test_weights_auto_falls_back_loudly_and_coco_fails(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cfg = ModelConfig(**{**TINY, "weights": "auto"}, allow_download=False)
    with pytest.warns(UserWarning, match="RANDOM init"):
        _, info = build_model(cfg)
    assert info["pretrained"] is False and "COCO weights unavailable" in info["source"]
    with pytest.raises(UserError, match="weights=coco: COCO weights unavailable"):
        build_model(cfg.model_copy(update={"weights": "coco"}))


def test_weights_from_cache_and_from_file(tmp_path, monkeypatch):
    """A 91-class torchvision state dict in the hub cache (auto) or given as a path: backbone
    loaded, class-specific heads re-initialised for our 3 classes."""
    torch.manual_seed(1)
    coco_like = build_arch(ModelConfig(**TINY), 91, "frozen_bn").state_dict()
    (tmp_path / "checkpoints").mkdir()
    torch.save(coco_like, tmp_path / "checkpoints" / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    model, info = build_model(ModelConfig(**{**TINY, "weights": "auto"}))
    assert info["pretrained"] and "from" in info["source"]
    assert torch.equal(model.backbone.body.layer1[0].conv1.weight, coco_like["backbone.body.layer1.0.conv1.weight"])
    assert model.roi_heads.box_predictor.cls_score.out_features == 3
    assert "roi_heads.box_predictor.cls_score.weight" in info["reinitialised"]
    model2, info2 = build_model(ModelConfig(**{**TINY, "weights": str(tmp_path / "checkpoints" /
                                                                     "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth")}))
    assert info2["source"].startswith("file") and torch.equal(
        model2.rpn.head.conv[0][0].weight, coco_like["rpn.head.conv.0.0.weight"])
    torch.save({"not": "weights"}, tmp_path / "junk.pt")
    with pytest.raises(UserError, match="neither a state dict nor a checkpoint"):
        build_model(ModelConfig(**{**TINY, "weights": str(tmp_path / "junk.pt")}))
    with pytest.raises(UserError, match="not found"):
        build_model(ModelConfig(**{**TINY, "weights": str(tmp_path / "missing.pt")}))
    v2 = build_arch(ModelConfig(**TINY, arch="maskrcnn_resnet50_fpn_v2"), 91, "frozen_bn").state_dict()
    torch.save(v2, tmp_path / "v2.pt")
    with pytest.raises(UserError, match="do not fit this architecture"):
        build_model(ModelConfig(**{**TINY, "weights": str(tmp_path / "v2.pt")}))


def _project_checkpoint(model, **changes):
    ckpt = {"model": model.state_dict(), "optimizer": {}, "scheduler": {}, "scaler": None, "step": 3,
            "rng": [], "config": {"model": ModelConfig(**TINY).model_dump()}, "categories": CATEGORIES,
            "init": {"source": "test"}, "versions": {}}
    ckpt.update(changes)
    return ckpt


def test_checkpoint_round_trip_and_refusals(tmp_path, model_and_info):
    model, _ = model_and_info
    path = tmp_path / "last.pt"
    torch.save(_project_checkpoint(model), path)
    loaded, ckpt = model_from_checkpoint(path)
    assert not loaded.training and ckpt["step"] == 3
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    assert loaded.transform.min_size == (96,) and loaded.transform.max_size == 128   # no test size: min_size
    # fine-tuning from a checkpoint of this project (synthetic -> real)
    tuned, info = build_model(ModelConfig(**{**TINY, "weights": str(path)}))
    assert "checkpoint of this project" in info["source"] and not info["reinitialised"]
    assert torch.equal(tuned.roi_heads.mask_predictor.mask_fcn_logits.weight,
                       model.roi_heads.mask_predictor.mask_fcn_logits.weight)

    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save(model.state_dict(), tmp_path / "plain.pt")
    with pytest.raises(UserError, match="not a checkpoint of this project"):
        load_checkpoint(tmp_path / "plain.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    other = [{"id": 1, "name": "person", "supercategory": "person"}]
    torch.save(_project_checkpoint(model, categories=other), tmp_path / "other.pt")
    with pytest.raises(UserError, match="checkpoint classes \\['person'\\] differ"):
        model_from_checkpoint(tmp_path / "other.pt")
    v2cfg = {"model": ModelConfig(**TINY, arch="maskrcnn_resnet50_fpn_v2").model_dump()}
    torch.save(_project_checkpoint(model, config=v2cfg), tmp_path / "arch.pt")
    with pytest.raises(UserError, match="do not fit the checkpoint's architecture"):
        model_from_checkpoint(tmp_path / "arch.pt")


def test_test_size_is_what_a_checkpoint_runs_at_outside_training(tmp_path, model_and_info):
    """model.test_min_size / test_max_size: validation (at_test_size) and every checkpoint
    consumer (model_from_checkpoint) resize to them; training keeps min_size / max_size."""
    model, _ = model_and_info
    cfg = ModelConfig(**TINY, test_min_size=160, test_max_size=200)
    path = tmp_path / "best.pt"
    torch.save(_project_checkpoint(model, config={"model": cfg.model_dump()}), path)
    loaded, _ = model_from_checkpoint(path)
    assert loaded.transform.min_size == (160,) and loaded.transform.max_size == 200
    image = torch.rand(3, 48, 64)
    assert loaded.transform([image])[0].image_sizes == [(150, 200)]   # 48 -> 160 capped by 200 on the long side
    model.eval()
    with at_test_size(model, cfg) as m:
        assert m.transform([image])[0].image_sizes == [(150, 200)]
    assert model.transform.min_size == (96,) and model.transform.max_size == 128   # restored
    assert model.transform([image])[0].image_sizes == [(96, 128)]
    model.train()
    with pytest.raises(ValueError, match="greater than or equal to 32"):
        ModelConfig(**TINY, test_min_size=8)


def test_box_deltas_are_decoded_in_fp32_under_bf16_autocast():
    from torchvision.models.detection._utils import BoxCoder

    from pipeline.model import replace_heads

    # why: torchvision decodes in the deltas' dtype, and bf16 puts x = 500 on a 4 px grid, so a
    # 2 px wide proposal there comes out zero wide (a NaN regression target in training)
    coder, anchor = BoxCoder((1.0, 1.0, 1.0, 1.0)), [torch.tensor([[500.0, 100.0, 502.0, 110.0]])]
    deltas = torch.zeros(1, 4)
    width = {dt: float(coder.decode(deltas.to(dt), anchor)[0, 0, 2] - coder.decode(deltas.to(dt), anchor)[0, 0, 0])
             for dt in (torch.bfloat16, torch.float32)}
    assert width == {torch.bfloat16: 0.0, torch.float32: 2.0}

    torch.manual_seed(0)
    model, _ = build_model(ModelConfig(**TINY))
    feats = [torch.rand(1, model.backbone.out_channels, 12, 16)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, deltas = model.rpn.head(feats)
        scores, box_deltas = model.roi_heads.box_predictor(
            torch.rand(4, model.roi_heads.box_predictor.cls_score.in_features))
    assert {t.dtype for t in (*logits, *deltas, scores, box_deltas)} == {torch.float32}
    # a predictor put in later (COCO weights, then 3-class heads) gets the same treatment
    replace_heads(model, 3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, box_deltas = model.roi_heads.box_predictor(torch.rand(4, model.roi_heads.box_predictor.cls_score.in_features))
    assert box_deltas.dtype == torch.float32
    # training under bf16: every loss finite
    model.train()
    target = {"boxes": torch.tensor([[100.0, 30.0, 104.0, 60.0], [10.0, 10.0, 40.0, 50.0]]),
              "labels": torch.tensor([1, 2]), "masks": torch.zeros(2, 96, 128, dtype=torch.uint8)}
    target["masks"][0, 30:60, 100:104] = 1
    target["masks"][1, 10:50, 10:40] = 1
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = model([torch.rand(3, 96, 128)], [target])
    assert all(torch.isfinite(v).item() for v in losses.values())
    # off (the demo recipe), the heads answer in the autocast dtype as torchvision's do
    plain, _ = build_model(ModelConfig(**TINY, fp32_box_coding=False))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, deltas = plain.rpn.head(feats)
    assert deltas[0].dtype == torch.bfloat16


def test_multi_scale_training_draws_each_image_a_size_and_runs_at_one(tmp_path):
    """model.train_min_sizes: in training every image is resized to one of them (torch's seeded
    generator, so a seed gives the same draws); validation and checkpoints run at one size."""
    cfg = ModelConfig(**{**TINY, "max_size": 400}, train_min_sizes=[64, 96, 128])
    torch.manual_seed(0)
    model, _ = build_model(cfg)
    image = torch.rand(3, 48, 64)
    model.train()

    def draws(n):
        return [model.transform([image])[0].image_sizes[0] for _ in range(n)]

    torch.manual_seed(1)
    first = draws(30)
    assert set(first) == {(64, 85), (96, 128), (128, 170)}   # every size drawn, aspect kept
    torch.manual_seed(1)
    assert draws(30) == first
    model.eval()
    with at_test_size(model, cfg) as m:   # validation: min_size, one size
        assert m.transform([image])[0].image_sizes == [(96, 128)]
    assert model.transform.min_size == (64, 96, 128)   # restored for training
    path = tmp_path / "best.pt"
    torch.save(_project_checkpoint(model, config={"model": cfg.model_dump()}), path)
    loaded, _ = model_from_checkpoint(path)
    assert loaded.transform.min_size == (96,)
    with pytest.raises(ValueError, match="shorter sides in px"):
        ModelConfig(**TINY, train_min_sizes=[16, 96])


def test_bn_calibration_normalises_a_random_backbone(coco_set_ro):
    torch.manual_seed(0)
    model, _ = build_model(ModelConfig(**TINY))
    ds = CocoDetection(coco_set_ro)
    images = [ds.load_tensor(i) for i in range(4)]

    def features():
        with torch.no_grad():
            x = model.transform(images)[0].tensors
            return model.backbone.body(x)

    before = features()["3"].std().item()
    assert calibrate_frozen_bn(model, [images[:2], images[2:]]) == 4
    after = features()["3"].std().item()
    assert before > 5 and 0.3 < after < 3  # identity BN lets activations grow; calibrated stays ~1
    bn1 = model.backbone.body.bn1
    with torch.no_grad():
        x = model.transform(images)[0].tensors
        y = bn1(model.backbone.body.conv1(x))
    assert y.mean((0, 2, 3)).abs().max() < 1e-3 and (y.var((0, 2, 3)) - 1).abs().max() < 0.05
