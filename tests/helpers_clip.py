"""A ground-truth clip folder like blender/clip.py writes, drawn with cv2 (no Blender needed).

Two shapes move across a textured background: a rectangle ("pedestrian", track 1) left to
right and a disc ("pallet_jack", track 2) right to left. The folder holds images/NNNNNN.png,
annotations.json (COCO with `track_id` per annotation and `frame_index` per image),
gt/gt.txt (MOT Challenge rows) and seqinfo.ini, exactly the contract of the clip stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from pipeline.common import CATEGORIES


def shape_masks(frame: int, width: int, height: int, num_frames: int) -> dict[int, tuple[int, np.ndarray]]:
    """track id -> (category id, HxW bool mask) for one frame."""
    t = frame / max(1, num_frames - 1)
    out = {}
    rect = np.zeros((height, width), np.uint8)
    rw, rh = width // 8, height // 3
    x0 = int(round(4 + t * (width - rw - 8)))
    y0 = height // 6
    cv2.rectangle(rect, (x0, y0), (x0 + rw - 1, y0 + rh - 1), 1, -1)
    out[1] = (1, rect.astype(bool))
    disc = np.zeros((height, width), np.uint8)
    r = height // 7
    cx = int(round(width - r - 4 - t * (width - 2 * r - 8)))
    cv2.circle(disc, (cx, height - r - 6), r, 1, -1)
    out[2] = (2, disc.astype(bool))
    return out


def bbox_of(mask: np.ndarray) -> list[float]:
    ys, xs = np.nonzero(mask)
    return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]


def make_clip(root: str | Path, num_frames: int = 8, width: int = 160, height: int = 120,
              fps: float = 10.0, seed: int = 0) -> Path:
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "gt").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 120, (height, width, 3), dtype=np.uint8)
    colors = {1: (230, 90, 40), 2: (40, 160, 230)}
    images, anns, mot = [], [], []
    for f in range(num_frames):
        img = background.copy()
        for tid, (cat, m) in shape_masks(f, width, height, num_frames).items():
            img[m] = colors[tid]
            rle = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            box = bbox_of(m)
            anns.append({"id": len(anns) + 1, "image_id": f + 1, "category_id": cat, "bbox": box,
                         "area": int(m.sum()), "segmentation": rle, "iscrowd": 0,
                         "visibility": 1.0, "truncated": False, "track_id": tid})
            mot.append(f"{f + 1},{tid},{box[0]:.1f},{box[1]:.1f},{box[2]:.1f},{box[3]:.1f},1,{cat},1.0")
        name = f"{f:06d}.png"
        cv2.imwrite(str(root / "images" / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        images.append({"id": f + 1, "file_name": name, "width": width, "height": height, "frame_index": f})
    coco = {"info": {"description": "test clip"}, "licenses": [], "images": images,
            "annotations": anns, "categories": [dict(c) for c in CATEGORIES]}
    (root / "annotations.json").write_text(json.dumps(coco))
    (root / "gt" / "gt.txt").write_text("\n".join(mot) + "\n")
    (root / "seqinfo.ini").write_text(
        f"[Sequence]\nname={root.name}\nimDir=images\nframeRate={fps:g}\nseqLength={num_frames}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.png\n")
    return root


def gt_detections(root: str | Path) -> dict[int, list[tuple[int, int, list[float]]]]:
    """frame index (0-based) -> [(track id, category id, xyxy box)] from gt/gt.txt."""
    out: dict[int, list] = {}
    for line in (Path(root) / "gt" / "gt.txt").read_text().split():
        f, tid, x, y, w, h, _, cat, _ = line.split(",")
        x, y, w, h = float(x), float(y), float(w), float(h)
        out.setdefault(int(f) - 1, []).append((int(tid), int(cat), [x, y, x + w, y + h]))
    return out


def save_tiny_checkpoint(path: str | Path, min_size: int = 96, max_size: int = 160, max_dets: int = 20,
                         seed: int = 0, mask_threshold: float | None = None) -> Path:
    """A random-init checkpoint laid out as docs/DESIGN.md §7 "Run folder", with a tiny test-time size;
    `mask_threshold`: the one its (pretend) validation chose, in its metrics as training writes it."""
    import torch

    from pipeline.common import config_to_dict, package_versions
    from pipeline.config import TrainConfig
    from pipeline.model import ModelConfig, build_model

    cfg = TrainConfig(model=ModelConfig(weights="none", min_size=min_size, max_size=max_size,
                                        box_detections_per_img=max_dets))
    torch.manual_seed(seed)
    model, init = build_model(cfg.model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": None, "scheduler": None, "scaler": None,
                "step": 0, "rng": None, "config": config_to_dict(cfg), "categories": CATEGORIES,
                "init": init, "versions": package_versions(),
                "metrics": None if mask_threshold is None else {"segm": {"AP": 0.0, "mask_threshold": mask_threshold}}},
               path)
    return path
