"""Dataset files: per-image image + part record, merged annotations.json, manifest.json.

Pure functions from arrays/dicts to files (no bpy). Every file is written atomically;
for one image the PNG goes first and parts/NNNNNN.json last, so an existing part is the
commit point: a kill at any moment loses at most the image in flight, and a rerun skips
every index whose part (and image) exists.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from pipeline.common import (
    CATEGORIES,
    UserError,
    atomic_write_bytes,
    atomic_write_json,
    package_versions,
    read_json,
)

IMAGES = "images"
PARTS = "parts"
ANNOTATIONS = "annotations.json"
MANIFEST = "manifest.json"
_PART_RE = re.compile(r"^(\d{6,})\.json$")


def image_name(index: int) -> str:
    return f"{index:06d}.png"


def image_id(index: int) -> int:
    """COCO image id of image `index` (1-based: some COCO tools treat id 0 as missing)."""
    return index + 1


def part_path(root: Path, index: int) -> Path:
    return Path(root) / PARTS / f"{index:06d}.json"


def write_image(root: Path, index: int, rgb: np.ndarray) -> Path:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for image {index}")
    return atomic_write_bytes(Path(root) / IMAGES / image_name(index), buf.tobytes())


def image_record(index: int, width: int, height: int, **extra) -> dict:
    return {"id": image_id(index), "file_name": image_name(index), "width": int(width),
            "height": int(height), **extra}


def write_part(root: Path, index: int, image: dict, annotations: list[dict], meta: dict | None = None) -> Path:
    """The commit point of one image: call only after its PNG is on disk."""
    record = {"index": index, "image": image, "annotations": annotations, "meta": meta or {}}
    return atomic_write_json(part_path(root, index), record)


def done_indices(root: Path) -> set[int]:
    """Indices whose part and image both exist (a part without its image is redone)."""
    parts_dir = Path(root) / PARTS
    if not parts_dir.is_dir():
        return set()
    done = set()
    for p in parts_dir.iterdir():
        m = _PART_RE.match(p.name)
        if m and (Path(root) / IMAGES / image_name(int(m.group(1)))).is_file():
            done.add(int(m.group(1)))
    return done


def read_part(root: Path, index: int) -> dict:
    path = part_path(root, index)
    rec = read_json(path, "part record")
    if not isinstance(rec, dict) or rec.get("index") != index or "image" not in rec:
        raise UserError(f"{path}: not a part record of image {index}")
    return rec


def merge(root: Path, indices: Iterable[int], info: dict) -> dict:
    """Parts -> one COCO dict: images sorted by id, annotation ids 1.. in that order.

    Depends only on the part contents, so any split of the indices over machines merges to
    the same file.
    """
    images, annotations = [], []
    for index in sorted(indices):
        rec = read_part(root, index)
        images.append(rec["image"])
        for ann in rec["annotations"]:
            annotations.append({"id": len(annotations) + 1, "image_id": rec["image"]["id"], **ann})
    return {"info": info, "licenses": [], "images": images, "annotations": annotations,
            "categories": [dict(c) for c in CATEGORIES]}


def write_annotations(root: Path, coco: dict) -> Path:
    return atomic_write_json(Path(root) / ANNOTATIONS, coco)


def manifest(resolved: dict, cfg_hash: str, shard: tuple[int, int], extra: dict | None = None) -> dict:
    return {
        "name": resolved["dataset"]["name"],
        "seed": resolved["dataset"]["seed"],
        "num_images": resolved["dataset"]["num_images"],
        "config_hash": cfg_hash,
        "shard": f"{shard[0]}/{shard[1]}",
        "written": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        **(extra or {}),
        "config": resolved,
    }


def check_folder(root: Path, cfg_hash: str) -> dict | None:
    """Refuse to mix datasets: a folder with a manifest of another config, or with dataset
    files but no manifest, is an error (nothing is overwritten). Returns the old manifest."""
    root = Path(root)
    path = root / MANIFEST
    if path.is_file():
        old = read_json(path, "manifest")
        if not isinstance(old, dict) or "config_hash" not in old:
            raise UserError(f"{path}: not a manifest written by blender.render (no config_hash)")
        if old["config_hash"] != cfg_hash:
            raise UserError(f"{root}: holds a dataset rendered with a different config (hash "
                            f"{old['config_hash']}, now {cfg_hash}); use another --out or the "
                            f"config in {path}")
        return old
    if (root / PARTS).is_dir() or (root / ANNOTATIONS).is_file():
        raise UserError(f"{root}: has dataset files but no {MANIFEST}; use an empty or new --out")
    return None


def write_manifest(root: Path, data: dict) -> Path:
    return atomic_write_json(Path(root) / MANIFEST, data, indent=2)
