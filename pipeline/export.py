"""ONNX export of a trained Mask R-CNN and a parity check against PyTorch (the graph runs in
pipeline.predictors.OnnxPredictor).

    python -m pipeline.export --checkpoint runs/NAME/best.pt --out runs/NAME/model.onnx \
        [--check-images DIR] [--config FILE] [key=value ...]

Exporter: the TorchScript-based one (`torch.onnx.export(..., dynamo=False)`, opset 17), the
path torchvision itself tests Mask R-CNN with. The dynamo exporter (torch.export) stops at
data-dependent shapes in batched_nms ("Could not guard on data-dependent expression"
measured with torch 2.14 / torchvision 0.29), so it cannot export the detection heads.
The graph takes one float image [3, H, W] in 0..1 (H and W dynamic) and returns boxes
[N, 4] xyxy, labels [N], scores [N] and masks [N, 1, H, W] (probabilities).

Parity: on sample images (a folder, else seeded random ones) both models run; detections are
paired by label and IoU, and boxes, scores and binarised masks are compared within the
configured tolerances. The numbers go to OUT.parity.json; the exit code says pass or fail.
"""

from __future__ import annotations

import argparse
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from pipeline.common import (
    UserError,
    atomic_write_json,
    atomic_write_with,
    config_to_dict,
    load_config,
    package_versions,
    run_cli,
    sha256_file,
)
from pipeline.inference_settings import InferenceSettings, checkpoint_mask_threshold
from pipeline.predictors import MASK_THRESHOLD_KEY, ONNX_OUTPUTS, OnnxPredictor
from pipeline.sources import IMAGE_SUFFIXES, _natural_key


class ExportConfig(InferenceSettings):
    """score_threshold, min_size, max_size, rpn_post_nms_top_n and nms_threshold are baked into the graph;
    mask_threshold binarises masks for the parity check (unset: the checkpoint's chosen one,
    which the graph's metadata then carries for OnnxPredictor). The graph is traced on the CPU in
    fp32, one image at a time, so device, half and batch_size are not used here."""

    opset: int = Field(17, ge=11)
    num_check_images: int = Field(4, ge=1)
    check_size: tuple[int, int] = (480, 640)     # H, W of random check images when no folder is given
    seed: int = 0
    box_atol: float = Field(1.0, gt=0)           # pixels
    score_atol: float = Field(0.01, gt=0)
    mask_iou_min: float = Field(0.9, ge=0, le=1)  # mean IoU of binarised masks over paired detections


# ---------------------------------------------------------------- export

def export_onnx(model, out: Path, example_hw: tuple[int, int], opset: int,
                metadata: dict[str, str] | None = None) -> Path:
    """The graph of `model` written to `out`, with `metadata` as the model's metadata_props."""
    import torch

    example = torch.rand(3, *example_hw, generator=torch.Generator().manual_seed(0))

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # tracer chatter about python control flow in torchvision, and dynamo=False's deprecation
            warnings.simplefilter("ignore")
            torch.onnx.export(model, ([example],), str(tmp), opset_version=opset, dynamo=False,
                              input_names=["image"], output_names=ONNX_OUTPUTS,
                              dynamic_axes={"image": {1: "height", 2: "width"}, "boxes": {0: "n"},
                                            "labels": {0: "n"}, "scores": {0: "n"},
                                            "masks": {0: "n", 2: "height", 3: "width"}})
        if metadata:
            import onnx

            graph = onnx.load(str(tmp))
            onnx.helper.set_model_props(graph, metadata)
            onnx.save(graph, str(tmp))
    return atomic_write_with(out, write)


# ---------------------------------------------------------------- parity

def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def compare_outputs(ref: dict, got: dict, score_thresh: float, max_dets: int, score_atol: float,
                    mask_threshold: float = 0.5) -> dict:
    """Pair detections (same label, Hungarian on IoU) and measure the differences.

    Detections whose score sits within `score_atol` of a cut (the score threshold, or the
    lowest score kept when the list is full) may legitimately fall on either side of it, so
    they need no partner; every other reference detection must have one.
    """
    from scipy.optimize import linear_sum_assignment

    rb, gb = ref["boxes"], got["boxes"]
    cost = 1.0 - _box_iou(rb, gb) if len(rb) and len(gb) else np.ones((len(rb), len(gb)))
    cost[ref["labels"][:, None] != got["labels"][None, :]] = 1.0
    rows, cols = linear_sum_assignment(cost) if cost.size else (np.zeros(0, int), np.zeros(0, int))
    ok = cost[rows, cols] < 0.5
    rows, cols = rows[ok], cols[ok]
    cut = score_thresh
    if len(ref["scores"]) >= max_dets:
        cut = max(cut, float(ref["scores"].min()))
    required = ref["scores"] > cut + score_atol
    unmatched = int(np.sum(required & ~np.isin(np.arange(len(rb)), rows)))
    ious = []
    for r, c in zip(rows, cols, strict=True):
        mr, mg = ref["masks"][r, 0] > mask_threshold, got["masks"][c, 0] > mask_threshold
        union = np.logical_or(mr, mg).sum()
        ious.append(1.0 if union == 0 else float(np.logical_and(mr, mg).sum() / union))
    return {"torch_detections": len(rb), "onnx_detections": len(gb), "paired": len(rows),
            "required_unpaired": unmatched,
            "max_box_diff": float(np.abs(rb[rows] - gb[cols]).max()) if len(rows) else 0.0,
            "max_score_diff": float(np.abs(ref["scores"][rows] - got["scores"][cols]).max()) if len(rows) else 0.0,
            "mean_mask_iou": float(np.mean(ious)) if ious else 1.0,
            "min_mask_iou": float(np.min(ious)) if ious else 1.0}


def check_images(folder: str | None, cfg: ExportConfig) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8) sample images: from `folder`, else seeded random ones."""
    import cv2

    if folder is None:
        rng = np.random.default_rng(cfg.seed)
        h, w = cfg.check_size
        return [(f"random_{i}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
                for i in range(cfg.num_check_images)]
    d = Path(folder)
    if not d.is_dir():
        raise UserError(f"--check-images {d}: folder not found")
    files = sorted((p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
    out = []
    for p in files:
        bgr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if bgr is not None:
            out.append((p.name, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        if len(out) == cfg.num_check_images:
            break
    if not out:
        raise UserError(f"--check-images {d}: no readable images")
    return out


def parity(model, onnx_path: Path, images: list[tuple[str, np.ndarray]], cfg: ExportConfig) -> dict:
    import torch

    pred = OnnxPredictor(onnx_path, InferenceSettings(device="cpu", threads=cfg.threads))
    per_image, t_torch, t_onnx = [], 0.0, 0.0
    for name, im in images:
        x = torch.from_numpy(im).permute(2, 0, 1).float().div(255)
        t0 = time.perf_counter()
        with torch.inference_mode():
            ref = {k: v.numpy() for k, v in model([x])[0].items()}
        t1 = time.perf_counter()
        got = pred.raw(x.numpy())
        t2 = time.perf_counter()
        t_torch, t_onnx = t_torch + t1 - t0, t_onnx + t2 - t1
        r = compare_outputs(ref, got, float(model.roi_heads.score_thresh),
                            int(model.roi_heads.detections_per_img), cfg.score_atol, cfg.mask_threshold)
        per_image.append({"image": name, **r})
    worst = {"max_box_diff": max(r["max_box_diff"] for r in per_image),
             "max_score_diff": max(r["max_score_diff"] for r in per_image),
             "mean_mask_iou": float(np.mean([r["mean_mask_iou"] for r in per_image])),
             "required_unpaired": sum(r["required_unpaired"] for r in per_image),
             "paired": sum(r["paired"] for r in per_image)}
    fails = []
    if worst["max_box_diff"] > cfg.box_atol:
        fails.append(f"box diff {worst['max_box_diff']:.3g} px > {cfg.box_atol}")
    if worst["max_score_diff"] > cfg.score_atol:
        fails.append(f"score diff {worst['max_score_diff']:.3g} > {cfg.score_atol}")
    if worst["mean_mask_iou"] < cfg.mask_iou_min:
        fails.append(f"mask IoU {worst['mean_mask_iou']:.3f} < {cfg.mask_iou_min}")
    if worst["required_unpaired"]:
        fails.append(f"{worst['required_unpaired']} detections without a partner")
    return {"passed": not fails, "failures": fails, "worst": worst, "per_image": per_image,
            "seconds_per_image": {"torch": t_torch / len(images), "onnxruntime": t_onnx / len(images)}}


# ---------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=None, help="YAML config (default: built-in defaults)")
    ap.add_argument("--checkpoint", required=True, help="checkpoint .pt of this project")
    ap.add_argument("--out", required=True, help="ONNX file to write")
    ap.add_argument("--check-images", default=None, help="folder of sample images for the parity check")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. opset=18)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, ExportConfig, args.overrides)
    out = Path(args.out)
    if out.suffix.lower() != ".onnx":
        raise UserError(f"--out {out}: expected a .onnx file name")
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder")
    if cfg.tta:
        raise UserError("tta=true: an ONNX graph is one view of the image; test-time augmentation "
                        "runs on the .pt checkpoint (evaluate and video take model.tta)")
    images = check_images(args.check_images, cfg)

    import torch

    from pipeline.model import model_from_checkpoint, set_inference_options

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, ckpt = model_from_checkpoint(args.checkpoint, device="cpu")
    set_inference_options(model, **cfg.model_options())
    # the graph carries the checkpoint's mask threshold, so OnnxPredictor binarises as the .pt does
    chosen = checkpoint_mask_threshold(ckpt)
    cfg = cfg.model_copy(update={"mask_threshold": cfg.mask_threshold_for(chosen)})

    t0 = time.perf_counter()
    try:
        export_onnx(model, out, images[0][1].shape[:2], cfg.opset,
                    {MASK_THRESHOLD_KEY: str(cfg.mask_threshold)} if chosen is not None else None)
    except OSError as e:
        raise UserError(f"--out {out}: cannot write ({e.strerror or e})") from None
    export_s = time.perf_counter() - t0
    report = parity(model, out, images, cfg)
    report.update(onnx=str(out), onnx_bytes=out.stat().st_size, export_seconds=round(export_s, 2),
                  exporter=f"torch.onnx.export(dynamo=False), opset {cfg.opset}",
                  checkpoint={"path": str(args.checkpoint), "sha256": sha256_file(args.checkpoint)},
                  check_images=args.check_images or "random", config=config_to_dict(cfg),
                  versions=package_versions(("torch", "torchvision", "onnx", "onnxruntime", "numpy")))
    parity_path = out.with_suffix(".parity.json")
    atomic_write_json(parity_path, report, indent=2)
    w = report["worst"]
    print(f"export {'ok' if report['passed'] else 'PARITY FAILED'}: {out} ({report['onnx_bytes'] / 1e6:.1f} MB, "
          f"{export_s:.1f} s); parity on {len(images)} images: max box diff {w['max_box_diff']:.2g} px, "
          f"max score diff {w['max_score_diff']:.2g}, mask IoU {w['mean_mask_iou']:.3f}, "
          f"{w['paired']} paired; torch {report['seconds_per_image']['torch']:.2f} s/img, "
          f"onnxruntime {report['seconds_per_image']['onnxruntime']:.2f} s/img -> {parity_path}")
    if not report["passed"]:
        raise UserError(f"{out}: parity check failed ({'; '.join(report['failures'])}); see {parity_path}")
    return 0


if __name__ == "__main__":
    run_cli(main)
