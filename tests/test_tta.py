"""Test-time augmentation (pipeline.tta): mirrored outputs mapped back, weighted fusion of
views, the wrapper's sizes, and the settings and backends that take or refuse it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from pydantic import ValidationError

from pipeline.common import UserError
from pipeline.inference_settings import InferenceSettings
from pipeline.predictors import load_predictor
from pipeline.tta import TTAModel, fuse, hflip_output, with_tta


def _out(boxes, scores, labels, masks=None):
    o = {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
         "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64)}
    if masks is not None:
        o["masks"] = masks
    return o


def test_hflip_output_maps_boxes_and_masks_back():
    m = torch.zeros(1, 1, 4, 10)
    m[0, 0, :, 1:3] = 1.0                      # columns 1-2 of the mirrored image
    back = hflip_output(_out([[1, 0, 3, 4]], [0.9], [1], m), width=10)
    assert back["boxes"].tolist() == [[7.0, 0.0, 9.0, 4.0]]
    assert torch.nonzero(back["masks"][0, 0, 0]).flatten().tolist() == [7, 8]
    assert back["scores"].tolist() == pytest.approx([0.9]) and back["labels"].tolist() == [1]


def test_fuse_averages_what_both_views_see_and_halves_what_one_sees():
    ma, mb = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8)
    ma[..., :4] = 1.0
    mb[..., :2] = 1.0
    a = _out([[0, 0, 10, 10], [50, 50, 60, 60]], [0.8, 0.6], [1, 2], torch.cat([ma, mb]))
    b = _out([[2, 0, 12, 10]], [0.4], [1], ma.clone())
    f = fuse([a, b], views=2)
    assert f["labels"].tolist() == [1, 2]
    # both views: score-weighted box, mean score over the views
    assert f["boxes"][0].tolist() == pytest.approx([(0 * 0.8 + 2 * 0.4) / 1.2, 0, (10 * 0.8 + 12 * 0.4) / 1.2, 10])
    assert f["scores"].tolist() == pytest.approx([0.6, 0.3])
    assert torch.equal(f["masks"][0], ma[0]) and torch.equal(f["masks"][1], mb[0])


def test_fuse_keeps_classes_and_far_boxes_apart_and_caps_the_count():
    a = _out([[0, 0, 10, 10], [0, 0, 10, 10], [30, 0, 40, 10]], [0.9, 0.8, 0.7], [1, 2, 1])
    b = _out([[0, 0, 10, 10], [0, 0, 10, 10], [30, 0, 40, 10]], [0.9, 0.8, 0.7], [1, 2, 1])
    f = fuse([a, b], views=2)
    assert f["labels"].tolist() == [1, 2, 1] and f["scores"].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert "masks" not in f
    top = fuse([a, b], views=2, max_dets=2)
    assert top["scores"].tolist() == pytest.approx([0.9, 0.8])
    empty = fuse([_out([], [], []), _out([], [], [])], views=2)
    assert empty["boxes"].shape == (0, 4) and len(empty["scores"]) == 0


class BrightSquareDetector(torch.nn.Module):
    """A 'detector' that boxes the bright pixels of each image, with a score that depends on
    nothing but the input, and records the sizes it was run at: a mirrored view must give back
    the unmirrored box and mask."""

    def __init__(self):
        super().__init__()
        self.transform = SimpleNamespace(min_size=(448,), max_size=600)
        self.roi_heads = SimpleNamespace(detections_per_img=100)
        self.sizes: list[tuple] = []

    def forward(self, images):
        self.sizes.append((self.transform.min_size, self.transform.max_size))
        outs = []
        for im in images:
            on = im[0] > 0.5
            ys, xs = torch.nonzero(on, as_tuple=True)
            box = [float(xs.min()), float(ys.min()), float(xs.max()) + 1, float(ys.max()) + 1]
            outs.append(_out([box], [0.7], [1], on[None, None].float()))
        return outs


def test_tta_model_gives_back_the_object_where_it_is_and_restores_sizes():
    im = torch.zeros(3, 40, 60)
    im[:, 10:20, 5:15] = 1.0                   # off-centre: mirroring moves it
    det = BrightSquareDetector()
    tta = TTAModel(det, flip=True, sizes=[224, 672])
    (out,) = tta([im])
    assert tta.views() == 6 and len(det.sizes) == 6
    assert det.sizes == [((448,), 600)] * 2 + [((224,), 300)] * 2 + [((672,), 900)] * 2
    assert (det.transform.min_size, det.transform.max_size) == ((448,), 600)
    assert out["boxes"][0].tolist() == pytest.approx([5.0, 10.0, 15.0, 20.0])
    assert out["scores"].tolist() == pytest.approx([0.7])
    assert torch.equal(out["masks"][0, 0] > 0.5, im[0] > 0.5)


def test_tta_model_restores_sizes_when_the_model_fails():
    det = BrightSquareDetector()
    tta = TTAModel(det, sizes=[224])
    with pytest.raises(RuntimeError):
        tta([torch.zeros(3, 8, 8)])             # no bright pixel: min() of an empty tensor
    assert (det.transform.min_size, det.transform.max_size) == ((448,), 600)


def test_tta_on_a_real_model_returns_torchvision_outputs():
    from pipeline.model import ModelConfig, build_model

    torch.manual_seed(0)
    model, _ = build_model(ModelConfig(weights="none", min_size=64, max_size=96, box_detections_per_img=10,
                                       box_score_thresh=0.0))
    model.eval()
    tta = with_tta(model, InferenceSettings(tta=True, tta_sizes=[48]))
    assert isinstance(tta, TTAModel) and with_tta(model, InferenceSettings()) is model
    imgs = [torch.rand(3, 50, 70), torch.rand(3, 40, 40)]
    with torch.inference_mode():
        outs = tta(imgs)
    for o, im in zip(outs, imgs, strict=True):
        n = len(o["boxes"])
        assert 0 < n <= 10 and o["scores"].shape == (n,) and o["labels"].shape == (n,)
        assert o["masks"].shape == (n, 1, *im.shape[1:])
        assert bool((o["scores"][:-1] >= o["scores"][1:]).all())
        assert bool((o["boxes"][:, 2] <= im.shape[2] + 1e-3).all())


def test_tta_settings_and_backends_that_refuse_it(tmp_path):
    with pytest.raises(ValidationError, match="tta_sizes is set but tta is false"):
        InferenceSettings(tta_sizes=[320])
    with pytest.raises(ValidationError, match="shorter sides"):
        InferenceSettings(tta=True, tta_sizes=[8])
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"not a graph")
    with pytest.raises(UserError, match="m.onnx: model.tta runs a .pt checkpoint"):
        load_predictor(onnx, InferenceSettings(tta=True))
