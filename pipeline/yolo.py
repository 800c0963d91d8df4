"""Write a COCO dataset as an Ultralytics YOLO segmentation dataset.

    python -m pipeline.yolo --data data/synth --out data/synth_yolo [--val data/synth_test] [--copy]
    warehouse-synth convert --format yolo --data data/synth --out data/synth_yolo

OUT/images/{train,val}/ (symlinks to the source images, or copies with --copy),
OUT/labels/{train,val}/*.txt with one `class x1 y1 x2 y2 ...` line per instance (polygon
normalised to 0..1; class 0 = pedestrian, 1 = pallet_jack), an empty .txt for an image with
no objects (a negative), and OUT/data.yaml (path, train, val, names) for `yolo train data=...`.

Crowd regions are left out: YOLO has no ignore regions, and as objects they would teach boxes
around hidden or tiny instances. Masks of every COCO encoding are traced with
cv2.findContours. YOLO allows one polygon per instance, so an instance in several pieces (cut
by an occluder) or with holes becomes one polygon whose rings are joined by zero-width bridges
at their nearest points, as Ultralytics' own COCO converter joins multi-part polygons; drawn
back, the bridges add a 1-px line, which matters only for tiny fragmented masks.
"""

from __future__ import annotations

import argparse
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import yaml

from pipeline import rle
from pipeline.common import CATEGORIES, UserError, atomic_write_text, parse_class_map, run_cli
from pipeline.data import CocoDetection, split_ids

# YOLO class = COCO category id - 1 (CATEGORIES ids are 1..N in order)
NAMES = {c["id"] - 1: c["name"] for c in CATEGORIES}
SPLITS = ("train", "val")


def mask_to_polygon(mask: np.ndarray) -> np.ndarray | None:
    """(K, 2) pixel coordinates (x, y) of one polygon covering `mask`, or None if no contour
    has 3 or more points. Points are pixel indices, the convention cv2.fillPoly (and so
    Ultralytics' polygon-to-mask) rasterises back to the same pixels."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    rings = [c.reshape(-1, 2) for c in contours if len(c) >= 3]
    if not rings:
        return None
    rings.sort(key=lambda r: -cv2.contourArea(r))  # an outline before the holes it encloses
    return join_rings(rings)


def join_rings(rings: list[np.ndarray]) -> np.ndarray:
    """One closed ring through all outlines and holes: each next ring is entered from the
    point so far nearest to it, walked round, and left the way it came (a zero-width bridge).
    fillPoly fills by even-odd crossings, so a bridged hole stays empty and the bridges
    themselves cost only their 1-px line."""
    out = rings[0]
    for ring in rings[1:]:
        d = ((out[:, None, :].astype(np.int64) - ring[None, :, :]) ** 2).sum(-1)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        loop = np.roll(ring, -j, axis=0)
        out = np.concatenate([out[:i + 1], loop, loop[:1], out[i:]])
    return out


def label_lines(anns: list[dict], h: int, w: int) -> tuple[list[str], Counter]:
    """YOLO-seg lines of an image's annotations, and counts (per class name, crowd, too_small)."""
    lines, counts = [], Counter()
    for a in anns:
        if a.get("iscrowd"):
            counts["crowd"] += 1
            continue
        poly = mask_to_polygon(rle.decode(a["segmentation"], h, w))
        if poly is None:
            counts["too_small"] += 1
            continue
        cls = int(a["category_id"]) - 1
        xy = poly.astype(np.float64) / (w, h)
        lines.append(f"{cls} " + " ".join(f"{v:.6f}" for v in xy.ravel()))
        counts[NAMES[cls]] += 1
    return lines, counts


OWN_ENTRIES = {"images", "labels", "data.yaml"}


def _prepare_out(out: Path) -> None:
    """A rerun replaces what an earlier (or interrupted) conversion wrote, since stale labels
    would be trained on; a folder holding anything else is refused rather than mixed into.
    data.yaml goes first and comes back last, so a half-written set is never taken for whole."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder")
    if out.is_dir():
        other = sorted(p.name for p in out.iterdir() if p.name not in OWN_ENTRIES)
        if other:
            raise UserError(f"--out {out}: holds {other[0]!r}, not only an earlier conversion's "
                            f"{sorted(OWN_ENTRIES)}; expected a new or empty folder")
    (out / "data.yaml").unlink(missing_ok=True)
    for sub in ("images", "labels"):
        shutil.rmtree(out / sub, ignore_errors=True)
    for split in SPLITS:
        for sub in ("images", "labels"):
            (out / sub / split).mkdir(parents=True, exist_ok=True)


def write_split(ds: CocoDetection, split: str, out: Path, copy: bool) -> Counter:
    counts: Counter = Counter()
    seen: dict[str, str] = {}
    for img, anns in ds.records:
        src = (ds.images_dir / img["file_name"]).resolve()
        name = Path(img["file_name"]).name
        stem = Path(name).stem  # the label file's name: a.png and a.jpg, or names in sub-folders, clash
        if stem in seen:
            raise UserError(f"{ds.ann_file}: images {seen[stem]!r} and {img['file_name']!r} would share "
                            f"labels/{split}/{stem}.txt; expected distinct file names")
        seen[stem] = img["file_name"]
        dst = out / "images" / split / name
        if copy:
            shutil.copy2(src, dst)
        else:
            dst.symlink_to(src)
        lines, c = label_lines(anns, img["height"], img["width"])
        (out / "labels" / split / f"{stem}.txt").write_text("".join(f"{ln}\n" for ln in lines))
        counts += c
        counts["images"] += 1
        counts["negatives"] += not lines
    return counts


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m pipeline.yolo", description=__doc__.split("\n\n")[0],
                                 epilog="Crowd (iscrowd=1) regions are skipped: YOLO has no ignore regions. "
                                        "An instance in several pieces or with holes becomes one polygon with "
                                        "zero-width bridges between its rings (as Ultralytics' COCO converter "
                                        "joins parts). Images without objects get an empty label file.")
    ap.add_argument("--data", required=True, help="COCO dataset folder (annotations.json, images/)")
    ap.add_argument("--out", required=True, help="folder for the YOLO dataset (new, or an earlier conversion)")
    ap.add_argument("--val", default=None, help="separate COCO set for val (default: a split of --data)")
    ap.add_argument("--val-fraction", type=float, default=0.1,
                    help="share of --data for val when no --val (default 0.1; the split training uses)")
    ap.add_argument("--split-seed", type=int, default=0, help="seed of that split (data.split_seed)")
    ap.add_argument("--copy", action="store_true", help="copy the images instead of symlinking them")
    ap.add_argument("--class-map", action="append", default=[], metavar="FOREIGN=OURS",
                    help="map foreign category names onto ours, e.g. person=pedestrian")
    ap.add_argument("--skip-bad", action="store_true", help="skip and count bad records instead of stopping")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not 0 <= args.val_fraction < 1:
        raise UserError(f"--val-fraction {args.val_fraction}: expected 0 <= f < 1")
    class_map = parse_class_map(args.class_map)
    train = CocoDetection(Path(args.data), class_map=class_map, skip_bad=args.skip_bad)
    if args.val:
        val = CocoDetection(Path(args.val), class_map=class_map, skip_bad=args.skip_bad)
    else:
        train_ids, val_ids = split_ids(train.image_ids, args.val_fraction, args.split_seed)
        val = CocoDetection(Path(args.data), class_map=class_map, skip_bad=args.skip_bad,
                            image_ids=val_ids) if val_ids else None
        train = CocoDetection(Path(args.data), class_map=class_map, skip_bad=args.skip_bad,
                              image_ids=train_ids)
    out = Path(args.out)
    _prepare_out(out)
    counts = {"train": write_split(train, "train", out, args.copy)}
    counts["val"] = write_split(val, "val", out, args.copy) if val is not None else Counter()
    # Ultralytics refuses an empty val folder; with no val split it validates on train (said below)
    val_dir = "images/val" if counts["val"]["images"] else "images/train"
    data_yaml = {"path": str(out.resolve()), "train": "images/train", "val": val_dir, "names": NAMES}
    atomic_write_text(out / "data.yaml", yaml.safe_dump(data_yaml, sort_keys=False))
    total = counts["train"] + counts["val"]
    per_class = ", ".join(f"{total[n]} {n}" for n in NAMES.values())
    skipped = sum(ds.num_skipped for ds in (train, val) if ds is not None)
    print(f"yolo: {counts['train']['images']} train + {counts['val']['images']} val images "
          f"({total['negatives']} negative), {per_class}; left out: {total['crowd']} crowd regions, "
          f"{total['too_small']} instances too small for a polygon"
          + (f", {skipped} bad records" if skipped else "") + f" -> {out / 'data.yaml'}"
          + ("" if counts["val"]["images"] else " (no val images: val points at train)"))
    return 0


if __name__ == "__main__":
    run_cli(main)
