"""ONNX export of a random-init tiny Mask R-CNN: parity with PyTorch, and the video CLI on the .onnx."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers_clip import make_clip, save_tiny_checkpoint

from pipeline import export, video
from pipeline.common import UserError
from pipeline.export import compare_outputs
from pipeline.inference_settings import InferenceSettings
from pipeline.predictors import OnnxPredictor


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("run") / "best.pt", min_size=128, max_size=160, max_dets=10,
                                mask_threshold=0.45)


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    clip = make_clip(tmp_path_factory.mktemp("clip") / "clip", num_frames=3)
    out = checkpoint.parent / "model.onnx"
    rc = export.main(["--checkpoint", str(checkpoint), "--out", str(out), "--check-images",
                      str(clip / "images"), "threads=1", "num_check_images=2"])
    return rc, out, clip


@pytest.mark.slow
def test_export_parity_report(exported, checkpoint, capsys):
    rc, out, _ = exported
    assert rc == 0 and out.is_file()
    rep = json.loads(out.with_suffix(".parity.json").read_text())
    assert rep["passed"] and rep["failures"] == []
    assert len(rep["per_image"]) == 2
    w = rep["worst"]
    assert w["paired"] > 0 and w["required_unpaired"] == 0
    assert w["max_box_diff"] <= 1.0 and w["max_score_diff"] <= 0.01 and w["mean_mask_iou"] >= 0.9
    assert rep["exporter"].startswith("torch.onnx.export(dynamo=False)")
    assert rep["checkpoint"]["path"] == str(checkpoint)
    # parity binarised at the checkpoint's mask threshold, and the graph carries it to OnnxPredictor
    assert rep["config"]["mask_threshold"] == 0.45
    assert OnnxPredictor(out, InferenceSettings(threads=1)).mask_threshold == 0.45
    assert OnnxPredictor(out, InferenceSettings(threads=1, mask_threshold=0.5)).mask_threshold == 0.5


@pytest.mark.slow
def test_onnx_predictor_matches_torch_on_other_size(exported, checkpoint):
    """The graph has dynamic height/width: a frame size unlike the export example works too."""
    import torch

    from pipeline.model import model_from_checkpoint

    _, out, _ = exported
    model, _ = model_from_checkpoint(checkpoint)
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (90, 150, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    with torch.inference_mode():
        ref = {k: v.numpy() for k, v in model([x])[0].items()}
    pred = OnnxPredictor(out, InferenceSettings(threads=1))
    got = pred.raw(x.numpy())
    assert got["masks"].shape[2:] == (90, 150)
    r = compare_outputs(ref, got, float(model.roi_heads.score_thresh), 10, 0.01)
    assert r["paired"] > 0 and r["required_unpaired"] == 0 and r["max_box_diff"] < 1.0
    # the predictor interface: thresholded, typed like the torch one
    (p,) = OnnxPredictor(out, InferenceSettings(threads=1, score_threshold=0.0, mask_threshold=0.5))([img])
    assert p.boxes.dtype == np.float32 and p.labels.dtype == np.int64
    assert p.masks.dtype == bool and p.masks.shape == (len(p.boxes), 90, 150)


@pytest.mark.slow
def test_video_cli_runs_the_onnx_model(exported, tmp_path, capsys):
    _, out, clip = exported
    mp4 = tmp_path / "onnx.mp4"
    assert video.main(["--checkpoint", str(out), "--source", str(clip), "--out", str(mp4), "--quiet",
                       "model.threads=1"]) == 0
    header = json.loads(mp4.with_suffix(".jsonl").read_text().splitlines()[0])
    assert header["predictor"].startswith("onnxruntime") and header["checkpoint"]["path"] == str(out)
    s = json.loads(mp4.with_suffix(".summary.json").read_text())
    assert s["frames"] == 3 and "tracking" in s["metrics"]


def test_compare_outputs_flags_differences():
    box = np.array([[10, 10, 50, 50], [60, 10, 90, 40]], np.float32)
    masks = np.zeros((2, 1, 100, 100), np.float32)
    masks[0, 0, 10:50, 10:50] = 1
    masks[1, 0, 10:40, 60:90] = 1
    ref = {"boxes": box, "labels": np.array([1, 2]), "scores": np.array([0.9, 0.8]), "masks": masks}
    same = compare_outputs(ref, ref, 0.05, 100, 0.01)
    assert same["paired"] == 2 and same["max_box_diff"] == 0 and same["mean_mask_iou"] == 1.0
    moved = {**ref, "boxes": box + np.array([[3, 0, 3, 0], [0, 0, 0, 0]], np.float32),
             "labels": np.array([1, 1])}  # second detection changes class: no partner
    r = compare_outputs(ref, moved, 0.05, 100, 0.01)
    assert r["paired"] == 1 and r["max_box_diff"] == pytest.approx(3) and r["required_unpaired"] == 1
    # a detection sitting on the score threshold may be missing on the other side
    edge = {**ref, "scores": np.array([0.9, 0.055])}
    one = {k: v[:1] for k, v in edge.items()}
    assert compare_outputs(edge, one, 0.05, 100, 0.01)["required_unpaired"] == 0


def test_export_and_predictor_errors(tmp_path):
    with pytest.raises(UserError, match="expected a .onnx"):
        export.main(["--checkpoint", "x.pt", "--out", str(tmp_path / "m.txt")])
    with pytest.raises(UserError, match="folder not found"):
        export.main(["--checkpoint", "x.pt", "--out", str(tmp_path / "m.onnx"), "--check-images",
                     str(tmp_path / "nope")])
    with pytest.raises(UserError, match="checkpoint not found"):
        export.main(["--checkpoint", str(tmp_path / "x.pt"), "--out", str(tmp_path / "m.onnx")])
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(UserError, match="onnxruntime cannot load it"):
        OnnxPredictor(tmp_path / "bad.onnx")
    assert not (tmp_path / "m.onnx").exists()
