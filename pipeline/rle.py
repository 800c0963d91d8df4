"""COCO segmentation <-> binary mask, both ways, through pycocotools.

The one owner of the mask format in files: `encode` writes compressed RLE with `counts` as a
str (JSON can't hold bytes); `decode` reads every form COCO allows (polygons, uncompressed
RLE, compressed RLE as str or bytes). Imports neither torch nor bpy, so blender/ can use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pycocotools import mask as mask_utils


def encode(mask: np.ndarray) -> dict:
    """HxW mask (bool or 0/1) -> {"size": [H, W], "counts": str}."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode(seg: Any, height: int | None = None, width: int | None = None) -> np.ndarray:
    """COCO segmentation -> HxW bool mask.

    Polygons and uncompressed RLE need `height`/`width` (pycocotools rasterises them at that
    size); compressed RLE carries its own size. An empty polygon list is an empty mask.
    """
    if isinstance(seg, list):
        if height is None or width is None:
            raise ValueError("polygon segmentation needs height and width")
        if not seg:
            return np.zeros((height, width), bool)
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):
        h, w = seg["size"] if height is None or width is None else (height, width)
        rle = mask_utils.frPyObjects(seg, h, w)
    elif isinstance(seg, dict) and isinstance(seg.get("counts"), str | bytes):
        counts = seg["counts"]
        rle = {"size": list(seg["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    else:
        raise ValueError(f"unsupported segmentation of type {type(seg).__name__}")
    return mask_utils.decode(rle).astype(bool)
