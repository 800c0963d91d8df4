"""Evaluation report: plots (matplotlib, cv2) and report.md rendered from metrics.json.

Writers are pure functions of their inputs: `render_report(metrics, plots)` turns the metrics
dict (exactly what metrics.json holds) into markdown, so a report can be rebuilt from disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: no display on servers or CI
import cv2  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from pipeline.coco_eval import ERROR_TYPES, LOW_IOU, STAT_NAMES, IouTypeResult, ann_to_mask  # noqa: E402
from pipeline.common import CATEGORIES, CLASS_NAMES, atomic_write_text, atomic_write_with  # noqa: E402
from pipeline.draw import CLASS_COLORS, contact_sheet, draw_detections, put_banner, save_rgb  # noqa: E402

_STAT_LABELS = {
    "AP": "AP @[.50:.95]", "AP50": "AP @.50", "AP75": "AP @.75",
    "APs": "AP small", "APm": "AP medium", "APl": "AP large",
    "AR1": "AR maxDets 1", "AR10": "AR maxDets 10", "AR100": "AR maxDets 100",
    "ARs": "AR small", "ARm": "AR medium", "ARl": "AR large",
}


# ---------------------------------------------------------------- plots

def _save_figure(fig, path: Path) -> Path:
    try:
        return atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight"))
    finally:
        plt.close(fig)


def plot_pr_curves(results: dict[str, IouTypeResult], path: str | Path) -> Path:
    """Precision vs recall per class from COCOeval's eval['precision'] (area all, 100 dets)."""
    names = {c["id"]: c["name"] for c in CATEGORIES}
    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.2), squeeze=False)
    for ax, (iou_type, res) in zip(axes[0], results.items(), strict=True):
        for k, cid in enumerate(res.cat_ids):
            for thr, style in ((0.5, "-"), (0.75, "--")):
                t = int(np.argmin(np.abs(res.iou_thrs - thr)))
                p = res.precision[t, :, k, 0, -1]
                if (p < 0).all():
                    continue
                ap = float(p[p > -1].mean())
                ax.plot(res.rec_thrs, np.clip(p, 0, None), style, color=np.array(CLASS_COLORS[cid]) / 255,
                        label=f"{names[cid]} IoU {thr:.2f} (AP {ap:.3f})")
        ax.set(title=f"{iou_type}: precision-recall", xlabel="recall", ylabel="precision",
               xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    return _save_figure(fig, Path(path))


def plot_confusion_matrix(cm: np.ndarray, path: str | Path, title: str = "") -> Path:
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(int(cm[i, j])), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=9)
    ticks = range(len(CLASS_NAMES))
    ax.set_xticks(ticks, CLASS_NAMES, rotation=30, ha="right")
    ax.set_yticks(ticks, CLASS_NAMES)
    ax.set(xlabel="prediction", ylabel="ground truth", title=title)
    return _save_figure(fig, Path(path))


def draw_gt_and_prediction(image: np.ndarray, gt_anns: Sequence[dict], preds: Sequence[dict],
                           score_threshold: float, caption: str = "", min_width: int = 480) -> np.ndarray:
    """Ground truth (left, dashed; crowd regions grey) and predictions >= threshold (right), with a
    caption strip on top. Small images are enlarged first so labels stay readable."""
    h, w = image.shape[:2]
    s = max(1.0, min_width / w)
    big = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_NEAREST) if s > 1 else image
    bh, bw = big.shape[:2]

    def layers(anns: Sequence[dict], with_scores: bool):
        boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                          for a in anns], dtype=np.float64).reshape(-1, 4) * s
        labels = [0 if a.get("iscrowd", 0) else a["category_id"] for a in anns]
        masks = [ann_to_mask(a, h, w) for a in anns]
        masks_arr = None
        if masks and all(m is not None for m in masks):
            masks_arr = np.stack([cv2.resize(m.astype(np.uint8), (bw, bh), interpolation=cv2.INTER_NEAREST)
                                  for m in masks]).astype(bool)
        scores = [a["score"] for a in anns] if with_scores else None
        return boxes, labels, scores, masks_arr

    kept = [p for p in preds if p["score"] >= score_threshold]
    gt_img = draw_detections(big, *layers(gt_anns, False), names=["crowd/ignored", *CLASS_NAMES[1:]],
                             dashed=True)
    pred_img = draw_detections(big, *layers(kept, True))
    gap = np.full((bh, max(2, bw // 100), 3), 255, np.uint8)
    pair = np.concatenate([gt_img, gap, pred_img], axis=1)
    n_gt = sum(1 for a in gt_anns if not a.get("iscrowd", 0))
    text = f"{caption}   left: ground truth ({n_gt})   right: predictions >= {score_threshold:g} ({len(kept)})"
    strip = put_banner(np.zeros((28, pair.shape[1], 3), np.uint8), text.strip())
    return np.concatenate([strip, pair], axis=0)


def save_image_grid(tiles: Sequence[np.ndarray], path: str | Path, tile_width: int = 960) -> Path:
    """Tiles from draw_gt_and_prediction, two per row."""
    sheet = contact_sheet(list(tiles), ncols=2 if len(tiles) > 1 else 1, tile_width=tile_width)
    return save_rgb(path, sheet)


# ---------------------------------------------------------------- report.md

def _fmt(v, digits: int = 3) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _describe_init(init) -> str:
    if init is None:
        return "not recorded in the checkpoint"
    if isinstance(init, dict):
        return ", ".join(f"{k}: {v}" for k, v in init.items())
    return str(init)


_SLICE_GROUPS = (("visibility", "visibility (visible fraction)"), ("truncation", "truncated at the border"),
                 ("size", "object size (COCO)"), ("camera", "camera kind"), ("camera_height", "camera height"))


def _errors_section(errors: dict | None, classes: Sequence[str]) -> list[str]:
    """Detections at the drawing threshold by what they are: where a class's AP goes."""
    if not errors:
        return []
    kinds = ("tp", *ERROR_TYPES, "missed")
    rows = [[name, *(errors["per_class"].get(name, {}).get(k, 0) for k in kinds)] for name in classes]
    thr, score = errors["iou_threshold"], errors["score_threshold"]
    return ["## Error types", "",
            f"Detections with score >= {score} by what they are (the confusion matrix's matching, box "
            f"IoU >= {thr}): true positives; **class**, on an instance of another class only; "
            f"**duplicate**, its instance already taken by a higher score; **localization**, its "
            f"class there at IoU {LOW_IOU}-{thr}; **background**, IoU < {LOW_IOU} with everything. "
            "**missed**: instances no detection took.", "",
            _table(["class", "true positives", "class", "duplicate", "localization", "background", "missed"], rows),
            ""]


def _slices_section(slices: dict | None, classes: Sequence[str]) -> list[str]:
    """Box AP per slice: one table, a row per slice, how each group was scored below it."""
    if not slices:
        return []
    header = ["group", "slice", "images", "GT", "AP", "AP50"]
    for name in classes:
        header += [f"{name} AP", f"{name} AP50", f"{name} GT"]
    rows, notes = [], []
    for key, label in _SLICE_GROUPS:
        group = slices.get(key)
        if not group:
            continue
        if "skipped" in group:
            notes.append(f"- {label}: not sliced, {group['skipped']}.")
            continue
        for sl in group["slices"]:
            row = [label, sl["name"], sl["num_images"], sl["num_gt"], sl["AP"], sl["AP50"]]
            for name in classes:
                pc = sl["per_class"].get(name, {})
                row += [pc.get("AP"), pc.get("AP50"), pc.get("num_gt", 0)]
            rows.append(row)
        extra = []
        for k, what in (("num_gt_outside_bands", "instances outside every band"),
                        ("num_gt_without_visibility", "instances without visibility"),
                        ("num_gt_without_truncated", "instances without truncated"),
                        ("num_images_unknown", "images of unknown camera")):
            if group.get(k):
                extra.append(f"{group[k]} {what}")
        source = f" (from {group['source']})" if group.get("source") else ""
        notes.append(f"- {label}: {group['method']}{source}" + (f"; {', '.join(extra)}" if extra else "") + ".")
    out = ["## Box AP by slice", ""]
    if rows:
        out += [_table(header, rows), ""]
    out += ["GT: scorable ground truth instances in the slice (crowd regions never count); `n/a`: no "
            "ground truth of that class in the slice.", "", *notes, ""]
    return out


def render_report(metrics: dict, plots: dict[str, str]) -> str:
    """metrics.json content + {plot kind: file name relative to the report} -> markdown."""
    ck = metrics.get("checkpoint", {})
    data = metrics.get("data", {})
    timing = metrics.get("timing", {})
    iou_types = [t for t in ("bbox", "segm") if t in metrics]
    out = ["# Evaluation report", ""]

    out += ["## What was scored", "",
            f"- Checkpoint: `{ck.get('path')}`",
            f"  - sha256: `{ck.get('sha256')}`",
            f"  - training step: {_fmt(ck.get('step'))}",
            f"  - initialisation: {_describe_init(ck.get('init'))}"]
    for key, val in (ck.get("training") or {}).items():
        out.append(f"  - {key.replace('_', ' ')}: {_fmt(val)}")
    out += [f"- Dataset: `{data.get('path')}` ({data.get('num_images')} images, "
            f"{data.get('num_instances')} scorable instances, {data.get('num_crowd')} crowd/ignored regions)",
            f"  - scored classes: {', '.join(data.get('scored_categories', [])) or 'none'}"]
    if data.get("class_map"):
        out.append("  - class map: " + ", ".join(f"{k} -> {v}" for k, v in data["class_map"].items()))
    if data.get("dropped_categories"):
        out.append("  - **left out (not in the class map):** " + ", ".join(data["dropped_categories"]))
    if not data.get("has_masks", True):
        out.append("  - box-only set (not every instance has a segmentation): mask metrics skipped")
    dev_name = f" ({timing['device_name']})" if timing.get("device_name") not in (None, "cpu") else ""
    out += [f"- Device: {timing.get('device')}{dev_name}, {timing.get('threads')} CPU threads, batch size "
            f"{timing.get('batch_size')}, input min_size {timing.get('min_size')}",
            f"- Inference time: **{_fmt(timing.get('inference_s_per_image'), 4)} s/image** "
            f"(model forward only; {_fmt(timing.get('total_s_per_image'), 4)} s/image with loading and encoding)",
            f"- Predictions: {metrics.get('num_predictions')} "
            f"(all scores kept for AP; drawings and confusion matrix use score >= {metrics.get('score_threshold')})",
            *([f"- Masks: probability > {mt['value']:g} ({mt['source']})"] if (mt := metrics.get("mask_threshold")) else []),
            ""]

    out += ["## COCO metrics", ""]
    rows = [[_STAT_LABELS[s]] + [metrics[t].get(s) for t in iou_types] for s in STAT_NAMES]
    out += [_table(["metric", *iou_types], rows), "",
            "`n/a`: no ground truth in that area range.", ""]

    out += ["## Per class", ""]
    classes = data.get("scored_categories", [])
    header = ["class"]
    for t in iou_types:
        header += [f"{t} AP", f"{t} AP50"]
    header += ["best F1 thr (bbox)", "F1", "precision", "recall"]
    rows = []
    for name in classes:
        row = [name]
        for t in iou_types:
            row += [metrics[t]["per_class"].get(name), metrics[t]["per_class_AP50"].get(name)]
        f1 = metrics["bbox"]["f1_optimal"].get(name, {})
        row += [f1.get("threshold"), f1.get("f1"), f1.get("precision"), f1.get("recall")]
        rows.append(row)
    out += [_table(header, rows), "",
            "Best F1 threshold: the score cut that maximises F1 at IoU 0.5 (COCOeval matching).", ""]
    if "segm" in iou_types:
        rows = [[n, *(metrics["segm"]["f1_optimal"].get(n, {}).get(k)
                      for k in ("threshold", "f1", "precision", "recall"))] for n in classes]
        out += [_table(["class", "best F1 thr (segm)", "F1", "precision", "recall"], rows), ""]

    out += _slices_section(metrics.get("slices"), classes)

    if "pr_curves" in plots:
        out += ["## Precision-recall curves", "", f"![precision-recall curves]({plots['pr_curves']})", ""]

    cmd = metrics.get("confusion_matrix")
    if cmd:
        out += ["## Confusion matrix", "",
                f"Box IoU >= {cmd['iou_threshold']}, score >= {cmd['score_threshold']}; rows ground truth, "
                "columns prediction; the background row counts false detections, the background "
                "column missed instances.", ""]
        labels = cmd["labels"]
        rows = [[f"**{labels[i]}**", *(int(v) for v in cmd["matrix"][i])] for i in range(len(labels))]
        out += [_table(["gt \\ pred", *labels], rows), ""]
        if "confusion_matrix" in plots:
            out += [f"![confusion matrix]({plots['confusion_matrix']})", ""]

    out += _errors_section(metrics.get("error_types"), classes)

    if "best_worst" in plots:
        bw = metrics.get("best_worst", {})
        out += ["## Best and worst images", "",
                f"Ranked by per-image F1 at IoU 0.5, score >= {metrics.get('score_threshold')}. "
                f"Best: {', '.join(str(i) for i in bw.get('best', []))}; "
                f"worst: {', '.join(str(i) for i in bw.get('worst', []))} (image ids).", "",
                f"![best and worst images]({plots['best_worst']})", ""]

    if ck.get("config"):
        out += ["## Training config (from the checkpoint)", "", "```yaml",
                yaml.safe_dump(ck["config"], sort_keys=False).rstrip(), "```", ""]
    versions = {"checkpoint (training)": ck.get("versions"), "evaluation": metrics.get("versions")}
    out += ["## Versions", ""]
    for who, v in versions.items():
        if v:
            out.append(f"- {who}: " + ", ".join(f"{k} {val}" for k, val in v.items() if val))
    out.append("")
    for t in iou_types:
        text = metrics[t].get("summary_text")
        if text:
            out += [f"<details><summary>COCOeval summary ({t})</summary>", "", "```", text.rstrip(), "```",
                    "", "</details>", ""]
    return "\n".join(out)


def write_report(eval_dir: str | Path, metrics: dict, plots: dict[str, str]) -> Path:
    return atomic_write_text(Path(eval_dir) / "report.md", render_report(metrics, plots))
