"""Write a tiny COCO dataset with known geometry, for tests of every stage.

Pedestrians are upright ellipses (reddish), pallet jacks wide rectangles (bluish) on a noisy
grey floor. Every mask is made first and the image painted from it, so the stored
segmentation is the exact ground truth whatever its encoding. Encodings rotate through
compressed RLE, polygon and uncompressed RLE; image 0 also holds one crowd region and the
last image holds no objects (a valid negative).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

PEDESTRIAN, PALLET_JACK = 1, 2
CATEGORIES = [{"id": 1, "name": "pedestrian", "supercategory": "person"},
              {"id": 2, "name": "pallet_jack", "supercategory": "vehicle"}]
ENCODINGS = ("rle", "polygon", "rle_uncompressed")


def uncompressed_rle(mask: np.ndarray) -> dict:
    """Column-major run lengths starting with a run of zeros (the COCO crowd format)."""
    flat = np.asfortranarray(mask).reshape(-1, order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0] == 1:
        runs = [0] + runs
    return {"size": list(mask.shape), "counts": [int(r) for r in runs]}


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def _shape(rng: np.random.Generator, cat: int, h: int, w: int, encoding: str):
    """(mask, segmentation) of one object fully inside the image."""
    if cat == PEDESTRIAN:
        ry, rx = int(rng.integers(h // 6, h // 3)), int(rng.integers(w // 16, w // 9))
        cy, cx = int(rng.integers(ry + 1, h - ry - 1)), int(rng.integers(rx + 1, w - rx - 1))
        if encoding == "polygon":
            poly = cv2.ellipse2Poly((cx, cy), (rx, ry), 0, 0, 360, 20).astype(float).ravel().tolist()
        else:
            m = np.zeros((h, w), np.uint8)
            cv2.ellipse(m, (cx, cy), (rx, ry), 0, 0, 360, 1, -1)
    else:
        bw, bh = int(rng.integers(w // 5, w // 3)), int(rng.integers(h // 8, h // 5))
        x0, y0 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        if encoding == "polygon":
            poly = [x0, y0, x0 + bw, y0, x0 + bw, y0 + bh, x0, y0 + bh]
        else:
            m = np.zeros((h, w), np.uint8)
            m[y0:y0 + bh, x0:x0 + bw] = 1
    if encoding == "polygon":
        m = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], h, w)))
        return m.astype(np.uint8), [[float(v) for v in poly]]
    return m, compressed_rle(m) if encoding == "rle" else uncompressed_rle(m)


def tight_bbox(mask: np.ndarray) -> list[float]:
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [float(xs[0]), float(ys[0]), float(xs[-1] + 1 - xs[0]), float(ys[-1] + 1 - ys[0])]


def make_coco_set(dir: str | Path, num_images: int = 6, size: tuple[int, int] = (96, 128),
                  seed: int = 0, objects: tuple[int, int] = (1, 3)) -> Path:
    """Write DIR/images/*.png + DIR/annotations.json (docs/DESIGN.md §5 layout); return DIR."""
    root = Path(dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    images, anns = [], []
    enc_i = 0
    for i in range(num_images):
        img = rng.normal(110, 12, (h, w, 3)).clip(0, 255).astype(np.uint8)
        n = 0 if (i == num_images - 1 and num_images > 1) else int(rng.integers(objects[0], objects[1] + 1))
        occupied = np.zeros((h, w), bool)
        for k in range(n):
            cat = PEDESTRIAN if k % 2 == 0 else PALLET_JACK
            for _ in range(20):  # keep objects apart so every mask stays fully visible
                m, seg = _shape(rng, cat, h, w, ENCODINGS[enc_i % len(ENCODINGS)])
                if not (occupied & (m > 0)).any() and m.sum() > 0:
                    break
            else:
                continue
            occupied |= m > 0
            enc_i += 1
            colour = (rng.integers(170, 230), rng.integers(20, 60), rng.integers(20, 60)) if cat == PEDESTRIAN \
                else (rng.integers(20, 60), rng.integers(60, 100), rng.integers(170, 230))
            img[m > 0] = np.array(colour, np.uint8)
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "segmentation": seg,
                         "area": int(m.sum()), "bbox": tight_bbox(m), "iscrowd": 0,
                         "visibility": 1.0, "truncated": False})
        if i == 0:
            # a crowd region in a free corner: loaded as an ignore region, never as a target
            m = np.zeros((h, w), np.uint8)
            m[: h // 8, : w // 8] = 1
            m &= ~occupied
            if m.any():
                img[m > 0] = (200, 200, 60)
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": PEDESTRIAN,
                             "segmentation": uncompressed_rle(m), "area": int(m.sum()),
                             "bbox": tight_bbox(m), "iscrowd": 1})
        name = f"{i:06d}.png"
        cv2.imwrite(str(root / "images" / name), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
    coco = {"info": {"description": "tests.helpers_coco", "seed": seed}, "licenses": [],
            "images": images, "annotations": anns, "categories": CATEGORIES}
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def load_coco(dir: str | Path) -> dict:
    return json.loads((Path(dir) / "annotations.json").read_text())


def save_coco(dir: str | Path, coco: dict) -> None:
    (Path(dir) / "annotations.json").write_text(json.dumps(coco))
