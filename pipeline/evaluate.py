"""Score a checkpoint on a COCO set: metrics.json, predictions.json, plots and report.md.

    python -m pipeline.evaluate --checkpoint runs/demo/best.pt --data data/test --out runs/demo/eval/test \
        [--class-map person=pedestrian] [--config configs/eval.yaml] [key=value ...]

Inference runs in batches; each finished batch is saved under EVAL_DIR/parts/ keyed by the
checkpoint, data and config, so an interrupted evaluation resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, field_validator
from tqdm import tqdm

from pipeline.coco_eval import (
    GroundTruth,
    confusion_matrix,
    error_types,
    evaluate_coco,
    load_ground_truth,
)
from pipeline.common import (
    CATEGORIES,
    CLASS_NAMES,
    UserError,
    atomic_write_json,
    atomic_write_text,
    config_to_dict,
    config_to_yaml,
    ensure_writable_dir,
    load_config,
    package_versions,
    parse_class_map,
    run_cli,
    sha256_file,
)
from pipeline.data import resolve_dataset
from pipeline.detections import outputs_to_results
from pipeline.devices import resolve_device
from pipeline.draw import load_rgb
from pipeline.inference_settings import InferenceSettings, checkpoint_mask_threshold
from pipeline.model import model_from_checkpoint, set_inference_options
from pipeline.report import (
    draw_gt_and_prediction,
    plot_confusion_matrix,
    plot_pr_curves,
    save_image_grid,
    write_report,
)
from pipeline.slices import VISIBILITY_EDGES, camera_of_images, evaluate_slices
from pipeline.tta import with_tta


class EvalConfig(InferenceSettings):
    """AP is scored on every detection; score_threshold here only selects what the report
    draws, counts in the confusion matrix and ranks as best/worst. half (fp16 on CUDA) is off
    by default so AP does not depend on the GPU; rpn_post_nms_top_n changes AP (default None)."""

    score_threshold: float = Field(0.5, ge=0, le=1)
    half: bool = False
    num_workers: int = Field(2, ge=0)     # image decoding processes
    max_images: int = Field(0, ge=0)      # 0 = every image; else the first N by image id
    iou_types: Literal["auto", "bbox"] = "auto"      # auto: bbox + segm when the set has masks
    num_best_worst: int = Field(4, ge=0)             # images in each half of the best/worst grid
    tile_width: int = Field(960, ge=64)   # px per ground truth | prediction pair in the grid
    ann_file: str | None = None           # default DATA/annotations.json (images in DATA/images or DATA)
    class_map: list[str] = []             # foreign=ours pairs; --class-map adds to these
    slices: bool = True                   # box AP by visibility, truncation, size and camera (metrics.json `slices`)
    visibility_bands: list[float] = Field(list(VISIBILITY_EDGES), min_length=2)  # band edges, ascending

    @field_validator("visibility_bands")
    @classmethod
    def _ascending(cls, v: list[float]) -> list[float]:
        if any(b <= a for a, b in zip(v[:-1], v[1:], strict=True)):
            raise ValueError("visibility_bands must be strictly ascending edges, e.g. [0.15, 0.4, 0.7, 1.0]")
        return v


class _Images(torch.utils.data.Dataset):
    def __init__(self, image_dir: Path, images: list[dict]):
        self.image_dir, self.images = image_dir, images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        # Errors are reported by the main process (see _check_image): a worker's exception
        # would arrive wrapped in a multi-line traceback.
        im = self.images[i]
        try:
            rgb = load_rgb(self.image_dir / im["file_name"])
        except FileNotFoundError:
            return None, im
        return torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255), im


def _check_image(tensor: torch.Tensor | None, im: dict, image_dir: Path) -> None:
    path = image_dir / im["file_name"]
    if tensor is None:
        raise UserError(f"{path}: image {im['id']} of the set is missing or unreadable")
    if tuple(tensor.shape[1:]) != (im["height"], im["width"]):
        raise UserError(f"{path}: image is {tensor.shape[2]}x{tensor.shape[1]} but the annotations say "
                        f"{im['width']}x{im['height']}")


def _fp16(cfg: EvalConfig, device: torch.device) -> bool:
    return cfg.half and device.type == "cuda"


def _collate(batch):
    return [b[0] for b in batch], [b[1] for b in batch]


def run_inference(model, gt: GroundTruth, image_dir: Path, cfg: EvalConfig, device: torch.device,
                  parts_dir: Path, fingerprint: str) -> tuple[list[dict], float, int]:
    """Batched inference with per-batch resume; returns results, forward seconds, images run now."""
    images = sorted(gt.coco["images"], key=lambda im: im["id"])
    batches = [images[i:i + cfg.batch_size] for i in range(0, len(images), cfg.batch_size)]
    results: list[dict] = []
    forward_s, n_run = 0.0, 0
    todo = []
    for b, batch in enumerate(batches):
        part = parts_dir / f"batch_{b:06d}.json"
        if part.is_file():
            try:
                saved = json.loads(part.read_text())
            except json.JSONDecodeError:
                saved = {}
            if saved.get("fingerprint") == fingerprint and saved.get("image_ids") == [im["id"] for im in batch]:
                results += saved["results"]
                forward_s += saved["forward_s"]
                continue
        todo.append(b)
    if not todo:
        return results, forward_s, 0
    subset = [im for b in todo for im in batches[b]]
    missing = [im["file_name"] for im in subset if not (image_dir / im["file_name"]).is_file()]
    if missing:
        raise UserError(f"{image_dir}: {len(missing)} images of the set are missing (e.g. {missing[0]})")
    loader = torch.utils.data.DataLoader(_Images(image_dir, subset), batch_size=cfg.batch_size,
                                         shuffle=False, num_workers=cfg.num_workers, collate_fn=_collate)
    with torch.inference_mode(), tqdm(total=len(subset), desc="eval", unit="img") as bar, \
            torch.autocast("cuda", dtype=torch.float16, enabled=_fp16(cfg, device)):
        warm = device.type == "cuda"  # keep CUDA/cuDNN start-up out of the per-image time
        for b, (imgs, metas) in zip(todo, loader, strict=True):
            for t, im in zip(imgs, metas, strict=True):
                _check_image(t, im, image_dir)
            ids = [im["id"] for im in metas]
            imgs = [t.to(device, non_blocking=True) for t in imgs]
            if warm:
                model(imgs)
                warm = False
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            outputs = model(imgs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            dt = time.perf_counter() - t0
            batch_results = [r for out, i in zip(outputs, ids, strict=True)
                             for r in outputs_to_results(out, i, cfg.mask_threshold_for(None))]
            atomic_write_json(parts_dir / f"batch_{b:06d}.json",
                              {"fingerprint": fingerprint, "image_ids": [int(i) for i in ids],
                               "forward_s": dt, "results": batch_results})
            results += batch_results
            forward_s += dt
            n_run += len(ids)
            bar.update(len(ids))
    return results, forward_s, n_run


def _reusable_predictions(out: Path, fingerprint: str) -> tuple[list[dict], dict] | None:
    """predictions.json of a finished earlier run with the same inference inputs, and its timing."""
    try:
        old = json.loads((out / "metrics.json").read_text())
        if old.get("fingerprint") != fingerprint or \
                old.get("predictions_sha256") != sha256_file(out / "predictions.json"):
            return None
        return json.loads((out / "predictions.json").read_text()), old["timing"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None


def _checkpoint_summary(path: Path, ckpt: dict, sha: str) -> dict:
    config = ckpt.get("config") or {}
    model_cfg = config.get("model", {}) if isinstance(config, dict) else {}
    return {
        "path": str(path.resolve()),
        "sha256": sha,
        "step": ckpt.get("step"),
        "init": ckpt.get("init"),
        "training": {
            "run": path.resolve().parent.name,
            "mode": model_cfg.get("mode"),
            "trainable_stages": model_cfg.get("trainable_stages"),
            "unfreeze_every": model_cfg.get("unfreeze_every"),
            "arch": model_cfg.get("arch"),
        },
        "config": config,
        "versions": ckpt.get("versions"),
    }


def _best_worst(matches, n: int) -> tuple[list[int], list[int]]:
    """Image ids with the highest and lowest per-image F1 (images with nothing to see left out)."""
    scored = [m for m in matches if m.tp + m.fp + m.fn > 0]
    if not scored or n == 0:
        return [], []
    best = sorted(scored, key=lambda m: (-m.f1, -m.tp, m.fp + m.fn, m.image_id))
    worst = sorted(scored, key=lambda m: (m.f1, -(m.fp + m.fn), m.image_id))
    k = min(n, (len(scored) + 1) // 2)
    best_ids = [m.image_id for m in best[:k]]
    worst_ids = [m.image_id for m in worst if m.image_id not in best_ids][:min(n, len(scored) - k)]
    return best_ids, worst_ids


# ---------------------------------------------------------------- CLI

def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pipeline.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, help="RUN_DIR/best.pt (or last.pt)")
    ap.add_argument("--data", required=True, help="dataset folder with annotations.json and images/")
    ap.add_argument("--out", required=True, help="output folder (e.g. RUN_DIR/eval/<dataset>)")
    ap.add_argument("--class-map", action="append", default=[],
                    help="foreign=ours category names, e.g. person=pedestrian (repeatable, or comma-separated)")
    ap.add_argument("--config", default=None, help="eval config YAML (configs/eval.yaml)")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. max_images=50 device=cpu)")
    return ap.parse_intermixed_args(argv)  # flags may follow key=value (make ... ARGS=...)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config, EvalConfig, args.overrides)
    class_map = parse_class_map([*cfg.class_map, *args.class_map])
    ckpt_path, data_dir = Path(args.checkpoint), Path(args.data)
    image_dir, ann_file = resolve_dataset(data_dir, cfg.ann_file)
    out = ensure_writable_dir(args.out)

    gt = load_ground_truth(ann_file, class_map)
    if not gt.coco["images"]:
        raise UserError(f"{ann_file}: the set has no images")
    if cfg.max_images:
        gt = gt.subset(sorted(gt.image_ids)[:cfg.max_images])
    if not gt.present_category_ids:
        raise UserError(f"{ann_file}: no instances of {CLASS_NAMES[1:]} to score "
                        f"(categories left out: {gt.dropped_categories or 'none'}; "
                        f"map them with --class-map foreign=ours)")
    if cfg.iou_types == "auto" and not gt.has_masks:
        print(f"note: {ann_file} has boxes only: scoring bbox metrics only")
    iou_types = ("bbox", "segm") if cfg.iou_types == "auto" and gt.has_masks else ("bbox",)

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    model, ckpt = model_from_checkpoint(ckpt_path, device)
    mask_threshold, mask_source = cfg.resolve_mask_threshold(checkpoint_mask_threshold(ckpt))
    cfg = cfg.model_copy(update={"mask_threshold": mask_threshold})
    # the score threshold is not applied: AP needs every detection
    set_inference_options(model, min_size=cfg.min_size, max_size=cfg.max_size,
                          rpn_post_nms_top_n=cfg.rpn_post_nms_top_n, nms_threshold=cfg.nms_threshold)
    model = with_tta(model, cfg)
    sha = sha256_file(ckpt_path)

    # Resume key: anything that changes the predictions invalidates saved batches and a
    # previous predictions.json (report-only settings such as score_threshold do not).
    fingerprint = hashlib.sha256(json.dumps(
        [sha, sha256_file(ann_file), sorted(class_map.items()), sorted(gt.image_ids),
         model.transform.min_size, model.transform.max_size, cfg.mask_threshold, device.type, cfg.batch_size,
         # appended only when set, so the fingerprints of earlier runs stay valid
         *([cfg.rpn_post_nms_top_n] if cfg.rpn_post_nms_top_n else []), *(["fp16"] if _fp16(cfg, device) else []),
         *([["tta", cfg.tta_sizes]] if cfg.tta else []),
         *([["nms", cfg.nms_threshold]] if cfg.nms_threshold is not None else [])],
        default=str).encode()).hexdigest()
    atomic_write_text(out / "config.yaml", config_to_yaml(cfg))
    n_images = len(gt.image_ids)
    reused = _reusable_predictions(out, fingerprint)
    if reused is not None:
        results, old_timing = reused
        forward_s, n_run = old_timing["inference_s_per_image"] * n_images, 0
        total_s_per_image = old_timing.get("total_s_per_image")
        print(f"note: reusing {out / 'predictions.json'} (same checkpoint, data and inference settings)")
    else:
        t_start = time.perf_counter()
        results, forward_s, n_run = run_inference(model, gt, image_dir, cfg, device, out / "parts", fingerprint)
        # loading + forward + mask encoding, only meaningful when nothing was resumed
        total_s_per_image = (time.perf_counter() - t_start) / n_run if n_run == n_images else None
        atomic_write_json(out / "predictions.json", results)

    t_eval = time.perf_counter()
    scored = evaluate_coco(gt, results, iou_types)
    cm, matches = confusion_matrix(gt, results, cfg.score_threshold, 0.5)
    best, worst = _best_worst(matches, cfg.num_best_worst)
    slices = None
    if cfg.slices:
        cameras, camera_source = camera_of_images(gt, ann_file)
        slices = evaluate_slices(gt, results, scored["bbox"], cameras, camera_source, cfg.visibility_bands)
    anns = gt.coco["annotations"]
    metrics = {
        "checkpoint": _checkpoint_summary(ckpt_path, ckpt, sha),
        "data": {
            "path": str(data_dir.resolve()), "annotations": str(ann_file.resolve()),
            "num_images": n_images,
            "num_instances": sum(1 for a in anns if not a.get("iscrowd", 0)),
            "num_crowd": sum(1 for a in anns if a.get("iscrowd", 0)),
            "class_map": class_map, "dropped_categories": gt.dropped_categories,
            "scored_categories": [c["name"] for c in CATEGORIES if c["id"] in gt.present_category_ids],
            "has_masks": gt.has_masks,
        },
        "timing": {
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "threads": torch.get_num_threads(), "batch_size": cfg.batch_size,
            "min_size": list(model.transform.min_size), "max_size": model.transform.max_size,
            "images": n_images, "images_run_now": n_run,
            "inference_s_per_image": forward_s / n_images,
            "total_s_per_image": total_s_per_image,
            "reused_predictions": reused is not None,
        },
        "score_threshold": cfg.score_threshold,
        "mask_threshold": {"value": cfg.mask_threshold, "source": mask_source},
        "num_predictions": len(results),
        **{t: r.to_json() for t, r in scored.items()},
        "confusion_matrix": {"labels": CLASS_NAMES, "matrix": cm.tolist(), "iou_threshold": 0.5,
                             "score_threshold": cfg.score_threshold,
                             "rows": "ground truth", "columns": "prediction"},
        "error_types": {"iou_threshold": 0.5, "score_threshold": cfg.score_threshold,
                        "per_class": error_types(gt, results, cfg.score_threshold, 0.5)},
        "per_image": [{"image_id": m.image_id, "tp": m.tp, "fp": m.fp, "fn": m.fn, "f1": m.f1}
                      for m in matches],
        "best_worst": {"best": best, "worst": worst},
        **({"slices": slices} if slices is not None else {}),
        "eval_config": config_to_dict(cfg),
        "fingerprint": fingerprint,
        "predictions_sha256": sha256_file(out / "predictions.json"),
        "versions": package_versions(),
    }

    plots = {"pr_curves": plot_pr_curves(scored, out / "pr_curves.png").name,
             "confusion_matrix": plot_confusion_matrix(cm, out / "confusion_matrix.png",
                                                       f"IoU 0.5, score >= {cfg.score_threshold:g}").name}
    if best or worst:
        images = {im["id"]: im for im in gt.coco["images"]}
        gt_by_img: dict[int, list] = {}
        for a in anns:
            gt_by_img.setdefault(a["image_id"], []).append(a)
        dt_by_img: dict[int, list] = {}
        for r in results:
            dt_by_img.setdefault(r["image_id"], []).append(r)
        per = {m.image_id: m for m in matches}
        tiles = []
        for tag, ids in (("best", best), ("worst", worst)):
            for i in ids:
                m = per[i]
                rgb = load_rgb(image_dir / images[i]["file_name"])
                tiles.append(draw_gt_and_prediction(
                    rgb, gt_by_img.get(i, []), dt_by_img.get(i, []), cfg.score_threshold,
                    f"{tag}: image {i}, F1 {m.f1:.2f} (tp {m.tp} fp {m.fp} fn {m.fn})"))
        plots["best_worst"] = save_image_grid(tiles, out / "best_worst.png", cfg.tile_width).name
    metrics["timing"]["metrics_and_report_s"] = time.perf_counter() - t_eval
    write_report(out, metrics, plots)
    atomic_write_json(out / "metrics.json", metrics, indent=1)  # last: `make eval` treats it as "done"
    for part in (out / "parts").glob("batch_*.json"):  # the results live in predictions.json now
        part.unlink()
    if (out / "parts").is_dir() and not any((out / "parts").iterdir()):
        (out / "parts").rmdir()

    segm = f", segm AP {scored['segm'].metrics['AP'] or 0:.3f}" if "segm" in scored else ""
    dropped = f" (left out: {', '.join(gt.dropped_categories)})" if gt.dropped_categories else ""
    print(f"eval: {n_images} images{dropped}, bbox AP {scored['bbox'].metrics['AP'] or 0:.3f}{segm}, "
          f"{metrics['timing']['inference_s_per_image']:.3f} s/img on {device} -> {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    run_cli(main)
