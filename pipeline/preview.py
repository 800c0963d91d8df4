"""Look at a rendered dataset before training on it: a contact sheet and statistics.

    python -m pipeline.preview --data data/synth --out data/synth/preview [--num 16]

Writes contact_sheet.png (masks, boxes and class names over sample images; crowd/ignored
instances with corner-only boxes), stats.json, stats.md and stats.png (instances per class,
visibility and box-size histograms, instances per image, and the spread of brightness,
contrast, colourfulness and camera heights: pipeline/variety.py).
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline import rle
from pipeline.common import (
    CATEGORIES,
    CLASS_NAMES,
    UserError,
    atomic_write_json,
    atomic_write_text,
    atomic_write_with,
    ensure_writable_dir,
    read_json,
    run_cli,
)
from pipeline.data import image_base
from pipeline.draw import contact_sheet, draw_detections, load_rgb, save_rgb
from pipeline.variety import quantiles, variety_markdown, variety_stats

VIS_BINS = np.linspace(0.0, 1.0, 11)
# sqrt(box area) in pixels; 32 and 96 are COCO's small/medium/large limits
SIZE_BINS = [0, 8, 16, 32, 64, 96, 128, 256, 100000]


def load_coco(data_dir: Path) -> dict:
    path = data_dir / "annotations.json"
    coco = read_json(path, "COCO annotations (render the dataset first)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise UserError(f"{path}: field {key!r} missing or not a list")
    return coco


def dataset_stats(coco: dict) -> dict:
    anns = coco["annotations"]
    names = {c["id"]: c["name"] for c in coco["categories"]}
    per_image = Counter(a["image_id"] for a in anns if not a.get("iscrowd"))
    stats: dict = {
        "images": len(coco["images"]),
        "negatives": sum(1 for im in coco["images"] if per_image.get(im["id"], 0) == 0),
        "annotations": len(anns),
        "per_class": {},
        "instances_per_image": {str(k): v for k, v in sorted(Counter(
            per_image.get(im["id"], 0) for im in coco["images"]).items())},
        "visibility_bins": VIS_BINS.round(2).tolist(),
        "size_bins_px": SIZE_BINS,
    }
    for cid, name in names.items():
        cls = [a for a in anns if a["category_id"] == cid]
        ok = [a for a in cls if not a.get("iscrowd")]
        vis = np.array([a.get("visibility", 1.0) for a in cls], float)
        size = np.sqrt([a["bbox"][2] * a["bbox"][3] for a in ok]) if ok else np.zeros(0)
        stats["per_class"][name] = {
            "instances": len(ok),
            "crowd": len(cls) - len(ok),
            "truncated": sum(1 for a in cls if a.get("truncated")),
            "visibility_hist": np.histogram(vis, VIS_BINS)[0].tolist(),
            "size_hist": np.histogram(size, SIZE_BINS)[0].tolist(),
            "median_visibility": float(np.median(vis)) if len(vis) else None,
            "median_size_px": float(np.median(size)) if len(size) else None,
            "small_medium_large": [int((size < 32).sum()), int(((size >= 32) & (size < 96)).sum()),
                                   int((size >= 96).sum())],
            # what anchor sizes and aspect ratios (height / width) have to cover, in source pixels
            "size_px_quantiles": quantiles(size),
            "aspect_hw_quantiles": quantiles([a["bbox"][3] / a["bbox"][2] for a in ok if a["bbox"][2] > 0]),
        }
    return stats


def stats_markdown(stats: dict, data_dir: Path) -> str:
    lines = [f"# Dataset statistics: {data_dir}", "",
             f"{stats['images']} images, {stats['negatives']} without labelled instances, "
             f"{stats['annotations']} annotations.", "",
             "| class | instances | crowd (ignored) | truncated | median visibility | median size (px) | small/medium/large |",
             "|---|---|---|---|---|---|---|"]
    for name, s in stats["per_class"].items():
        mv = "-" if s["median_visibility"] is None else f"{s['median_visibility']:.2f}"
        ms = "-" if s["median_size_px"] is None else f"{s['median_size_px']:.0f}"
        lines.append(f"| {name} | {s['instances']} | {s['crowd']} | {s['truncated']} | {mv} | {ms} | "
                     f"{'/'.join(map(str, s['small_medium_large']))} |")
    lines += ["", "Box size (sqrt of area, px) and aspect (height / width) at p5/p25/p50/p75/p95, "
              "for choosing `model.anchor_sizes` and `model.aspect_ratios` (scale sizes by "
              "min_size / image height):", ""]
    for name, s in stats["per_class"].items():
        if s.get("size_px_quantiles"):
            sz = "/".join(f"{v:.0f}" for v in s["size_px_quantiles"].values())
            ar = "/".join(f"{v:.2f}" for v in s["aspect_hw_quantiles"].values())
            lines.append(f"- {name}: size {sz} px, aspect {ar}")
    lines += ["", "Instances per image: " + ", ".join(f"{k}: {v}" for k, v in stats["instances_per_image"].items()), ""]
    if stats.get("variety"):
        lines += variety_markdown(stats["variety"])
    lines += ["![statistics](stats.png)", "", "![samples](contact_sheet.png)", ""]
    return "\n".join(lines)


def plot_stats(stats: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    names = list(stats["per_class"])
    ax = axes[0, 0]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [stats["per_class"][n]["instances"] for n in names], 0.4, label="instances")
    ax.bar(x + 0.2, [stats["per_class"][n]["crowd"] for n in names], 0.4, label="crowd (ignored)")
    ax.set_xticks(x, names)
    ax.set_title("instances per class")
    ax.legend()
    centers = (VIS_BINS[:-1] + VIS_BINS[1:]) / 2
    for n in names:
        axes[0, 1].plot(centers, stats["per_class"][n]["visibility_hist"], marker="o", label=n)
        axes[1, 0].bar(np.arange(len(SIZE_BINS) - 1) + (0.2 if n != names[0] else -0.2),
                       stats["per_class"][n]["size_hist"], 0.4, label=n)
    axes[0, 1].set_title("visibility (visible / unoccluded pixels)")
    axes[0, 1].set_xlabel("visibility")
    axes[0, 1].legend()
    axes[1, 0].set_xticks(np.arange(len(SIZE_BINS) - 1),
                          [f"{a}-{b}" if b < 100000 else f">{a}" for a, b in zip(SIZE_BINS, SIZE_BINS[1:], strict=False)],
                          rotation=30)
    axes[1, 0].set_title("box size sqrt(w*h) px, non-crowd")
    axes[1, 0].legend()
    ipi = stats["instances_per_image"]
    axes[1, 1].bar([int(k) for k in ipi], list(ipi.values()))
    axes[1, 1].set_title("labelled instances per image")
    fig.tight_layout()
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=90))
    plt.close(fig)


def draw_sample(images_dir: Path, image: dict, anns: list[dict]) -> np.ndarray:
    """`images_dir`: the folder file_names are relative to (pipeline.data.image_base)."""
    try:
        rgb = load_rgb(images_dir / image["file_name"])
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    h, w = rgb.shape[:2]
    for crowd in (1, 0):  # ignored ones first, labelled ones on top
        sel = [a for a in anns if int(a.get("iscrowd", 0)) == crowd]
        if not sel:
            continue
        masks = np.stack([rle.decode(a["segmentation"], h, w) for a in sel]).astype(bool)
        boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in sel]
        names = CLASS_NAMES if not crowd else [n + " (ignored)" for n in CLASS_NAMES]
        rgb = draw_detections(rgb, boxes, [a["category_id"] for a in sel], masks=masks,
                              alpha=0.2 if crowd else 0.45, names=names, dashed=bool(crowd))
    return rgb


def pick_samples(coco: dict, num: int) -> list[dict]:
    """Evenly spaced over the dataset: deterministic, and covers early and late images."""
    images = sorted(coco["images"], key=lambda im: im["id"])
    if len(images) <= num:
        return images
    return [images[int(i)] for i in np.linspace(0, len(images) - 1, num).round()]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.preview", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="dataset folder (annotations.json, images/)")
    ap.add_argument("--out", required=True, help="folder for contact_sheet.png and stats")
    ap.add_argument("--num", type=int, default=16, help="sample images on the contact sheet")
    ap.add_argument("--cols", type=int, default=4)
    ap.add_argument("--tile-width", type=int, default=320)
    args = ap.parse_args(argv)
    if args.num < 1:
        raise UserError(f"--num {args.num}: expected at least 1")
    data_dir = Path(args.data)
    coco = load_coco(data_dir)
    if [c["id"] for c in coco["categories"]] != [c["id"] for c in CATEGORIES]:
        raise UserError(f"{data_dir / 'annotations.json'}: categories {coco['categories']} are not "
                        f"{CATEGORIES}; preview reads datasets of this project")
    out = ensure_writable_dir(args.out)
    by_image: dict[int, list[dict]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    samples = pick_samples(coco, args.num)
    if samples:
        images_dir = image_base(data_dir, coco["images"])
        tiles = [draw_sample(images_dir, im, by_image.get(im["id"], [])) for im in samples]
        captions = [f"{im['file_name']}  {sum(1 for a in by_image.get(im['id'], []) if not a.get('iscrowd'))} inst"
                    for im in samples]
        save_rgb(out / "contact_sheet.png", contact_sheet(tiles, args.cols, args.tile_width, captions))
    stats = dataset_stats(coco)
    stats["variety"] = variety_stats(coco["images"], image_base(data_dir, coco["images"]))
    atomic_write_json(out / "stats.json", stats, indent=2)
    atomic_write_text(out / "stats.md", stats_markdown(stats, data_dir))
    plot_stats(stats, out / "stats.png")
    per_class = ", ".join(f"{s['instances']} {n} (+{s['crowd']} crowd)" for n, s in stats["per_class"].items())
    print(f"preview: {stats['images']} images ({stats['negatives']} negative), {per_class}; "
          f"{len(samples)} samples drawn -> {out}")
    return 0


if __name__ == "__main__":
    run_cli(main)
