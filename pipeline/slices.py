"""Box AP sliced by visibility band, truncation, object size and camera kind (pycocotools).

Torch-free; reuses the predictions of one evaluation, so slicing costs a few COCOeval passes
over boxes, never another forward pass. Two kinds of slice:

- instance slices (visibility band, truncated or not): every image is scored; ground truth
  outside the slice is marked `ignore` on a private copy, exactly like COCO's crowd regions
  are, so a detection matched to it is neither a true nor a false positive. Detections carry
  no visibility, so an unmatched detection stays a false positive in every band (a stray
  box costs AP in each band, and a band's AP is not the AP of a model that only ever saw
  that band). pycocotools' `_prepare` rewrites `ignore` from `iscrowd`, so the flag is set
  after it (`_SliceEval`); matching keeps COCO's IoU (not the crowd IoU).
- size (COCO small < 32^2 <= medium < 96^2 <= large, on the annotation `area`): read from the
  main bbox COCOeval run, COCO's own rule: ground truth outside the range is ignored and so
  is an unmatched detection whose own area is outside it.
- image slices (camera kind, camera height band): the subset of images, scored as a set.

Every slice gives box AP @[.50:.95], AP50, per class, and the number of scorable ground
truth instances in it (crowd regions never count). A class without ground truth in a slice
has AP None and is left out of the slice's mean, as in COCOeval.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from pycocotools.cocoeval import COCOeval

from pipeline.coco_eval import GroundTruth, IouTypeResult, _coco_api, _results_api
from pipeline.common import CATEGORIES

VISIBILITY_EDGES = (0.15, 0.4, 0.7, 1.0)        # the renderer makes instances below 0.15 crowd
CAMERA_HEIGHT_EDGES_M = (0.0, 2.0, 5.0, float("inf"))
# COCOeval's area ranges (index 1..3 of params.areaRng), bounds inclusive as COCOeval tests them
SIZE_RANGES = (("small", 1, 0.0, 32.0 ** 2), ("medium", 2, 32.0 ** 2, 96.0 ** 2), ("large", 3, 96.0 ** 2, 1e10))

INSTANCE_METHOD = ("all images; ground truth outside the slice ignored (a detection matched to it is not a "
                   "false positive); detections have no visibility, so unmatched ones are false positives "
                   "in every slice")

_NAMES = {c["id"]: c["name"] for c in CATEGORIES}


class _SliceEval(COCOeval):
    """COCOeval that ignores the ground truth ids in `ignore_ids` (like crowd regions, but
    with ordinary one-to-one matching and IoU)."""

    def __init__(self, gt_api, dt_api, iou_type: str, ignore_ids: set[int]):
        super().__init__(gt_api, dt_api, iou_type)
        self.ignore_ids = ignore_ids

    def _prepare(self):
        super()._prepare()
        for gts in self._gts.values():
            for g in gts:
                if g["id"] in self.ignore_ids:
                    g["ignore"] = 1


def _mean_valid(p: np.ndarray) -> float | None:
    valid = p[p > -1]
    return float(valid.mean()) if valid.size else None


def _from_precision(precision: np.ndarray, iou_thrs: np.ndarray, cat_ids: Sequence[int], area: int,
                    num_gt: dict[int, int]) -> dict:
    """AP, AP50 and per class from COCOeval's eval['precision'] [T, R, K, A, M] (M = last)."""
    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    per_class = {_NAMES[cid]: {"AP": _mean_valid(precision[:, :, k, area, -1]),
                               "AP50": _mean_valid(precision[t50, :, k, area, -1]),
                               "num_gt": num_gt.get(cid, 0)}
                 for k, cid in enumerate(cat_ids)}
    return {"AP": _mean_valid(precision[:, :, :, area, -1]), "AP50": _mean_valid(precision[t50, :, :, area, -1]),
            "num_gt": sum(num_gt.values()), "per_class": per_class}


def _run(gt_api, dt_api, cat_ids: Sequence[int], img_ids: Sequence[int], ignore_ids: set[int]) -> COCOeval:
    E = _SliceEval(gt_api, dt_api, "bbox", ignore_ids)
    E.params.catIds = list(cat_ids)
    E.params.imgIds = sorted(img_ids)
    E.params.areaRng, E.params.areaRngLbl = [[0.0, 1e10]], ["all"]   # one area range: 4x less work
    with contextlib.redirect_stdout(io.StringIO()):
        E.evaluate()
        E.accumulate()
    return E


def _count(anns: Sequence[dict]) -> dict[int, int]:
    out: dict[int, int] = {}
    for a in anns:
        out[a["category_id"]] = out.get(a["category_id"], 0) + 1
    return out


def _band_label(lo: float, hi: float, last: bool, digits: int = 2) -> str:
    hi_s = "inf" if not np.isfinite(hi) else f"{hi:.{digits}f}"
    return f"[{lo:.{digits}f}, {hi_s}{']' if last and np.isfinite(hi) else ')'}"


def _in_band(v: float, lo: float, hi: float, last: bool) -> bool:
    return lo <= v < hi or (last and v == hi)


class _Scorer:
    """One copy of the ground truth and one results set, shared by every slice."""

    def __init__(self, gt: GroundTruth, predictions: list[dict]):
        self.gt = gt
        self.gt_api = _coco_api(copy.deepcopy(gt.coco))
        self.dt_api = _results_api(self.gt_api, predictions, "bbox")
        self.cat_ids = gt.present_category_ids
        self.scorable = [a for a in gt.coco["annotations"] if not a.get("iscrowd", 0)]

    def instances(self, name: str, keep: Callable[[dict], bool], **extra) -> dict:
        inside = [a for a in self.scorable if keep(a)]
        inside_ids = {a["id"] for a in inside}
        ignore = {a["id"] for a in self.scorable if a["id"] not in inside_ids}
        E = _run(self.gt_api, self.dt_api, self.cat_ids, self.gt.image_ids, ignore)
        return {"name": name, **extra, "num_images": len(self.gt.image_ids),
                **_from_precision(E.eval["precision"], E.params.iouThrs, self.cat_ids, 0, _count(inside))}

    def images(self, name: str, img_ids: Sequence[int], **extra) -> dict:
        keep = set(img_ids)
        inside = [a for a in self.scorable if a["image_id"] in keep]
        if not keep:
            return {"name": name, **extra, "num_images": 0, "AP": None, "AP50": None, "num_gt": 0,
                    "per_class": {_NAMES[c]: {"AP": None, "AP50": None, "num_gt": 0} for c in self.cat_ids}}
        E = _run(self.gt_api, self.dt_api, self.cat_ids, sorted(keep), set())
        return {"name": name, **extra, "num_images": len(keep),
                **_from_precision(E.eval["precision"], E.params.iouThrs, self.cat_ids, 0, _count(inside))}


# ---------------------------------------------------------------- where the fields come from

def camera_of_images(gt: GroundTruth, ann_file: str | Path | None = None) -> tuple[dict[int, dict], str | None]:
    """{image id: {"camera": kind, "camera_height_m": h}} (keys present where known) and where
    they came from.

    The image records' own `camera` / `camera_height_m` win. Otherwise a set written by
    blender.render keeps a per-image part record (parts/NNNNNN.json next to annotations.json)
    whose meta.plan.camera is the camera kind; its image record must match the set's."""
    out: dict[int, dict] = {}
    for im in gt.coco["images"]:
        rec = {k: im[k] for k in ("camera", "camera_height_m") if im.get(k) is not None}
        if rec:
            out[im["id"]] = rec
    if out:
        return out, "image records"
    if ann_file is None:
        return {}, None
    parts = Path(ann_file).parent / "parts"
    if not parts.is_dir():
        return {}, None
    images = {im["id"]: im for im in gt.coco["images"]}
    for path in sorted(parts.glob("*.json")):
        try:
            rec = json.loads(path.read_text())
            image, kind = rec["image"], rec["meta"]["plan"]["camera"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        im = images.get(image.get("id")) if isinstance(image, dict) else None
        if im is not None and im.get("file_name") == image.get("file_name") and isinstance(kind, str):
            out[im["id"]] = {"camera": kind}
    return out, (f"{parts}/*.json meta.plan.camera" if out else None)


# ---------------------------------------------------------------- all slices

def evaluate_slices(gt: GroundTruth, predictions: list[dict], bbox: IouTypeResult | None = None,
                    cameras: dict[int, dict] | None = None, camera_source: str | None = None,
                    visibility_edges: Sequence[float] = VISIBILITY_EDGES,
                    height_edges_m: Sequence[float] = CAMERA_HEIGHT_EDGES_M) -> dict:
    """The `slices` section of metrics.json (box AP only). `bbox` is the main bbox result (its
    precision gives the size slices); `cameras` comes from camera_of_images."""
    sc = _Scorer(gt, predictions)
    out: dict = {"iou_type": "bbox"}

    # visibility bands
    with_vis = [a for a in sc.scorable if isinstance(a.get("visibility"), (int, float))]
    if not with_vis:
        out["visibility"] = {"skipped": "no annotation carries 'visibility'"}
    else:
        edges = [float(e) for e in visibility_edges]
        bands = list(zip(edges[:-1], edges[1:], strict=True))
        slices = []
        for j, (lo, hi) in enumerate(bands):
            last = j == len(bands) - 1
            slices.append(sc.instances(
                _band_label(lo, hi, last), lambda a, lo=lo, hi=hi, last=last:
                isinstance(a.get("visibility"), (int, float)) and _in_band(a["visibility"], lo, hi, last),
                range=[lo, hi]))
        covered = sum(s["num_gt"] for s in slices)
        out["visibility"] = {
            "method": INSTANCE_METHOD,
            "slices": slices, "num_gt_without_visibility": len(sc.scorable) - len(with_vis),
            "num_gt_outside_bands": len(with_vis) - covered}

    # truncated at the image border or not
    with_trunc = [a for a in sc.scorable if isinstance(a.get("truncated"), bool)]
    if not with_trunc:
        out["truncation"] = {"skipped": "no annotation carries 'truncated'"}
    else:
        out["truncation"] = {
            "method": INSTANCE_METHOD,
            "slices": [sc.instances(name, lambda a, v=v: a.get("truncated") is v, truncated=v)
                       for name, v in (("not truncated", False), ("truncated", True))],
            "num_gt_without_truncated": len(sc.scorable) - len(with_trunc)}

    # COCO sizes, from the main COCOeval run
    if bbox is not None:
        slices = []
        for name, a_idx, lo, hi in SIZE_RANGES:
            n = _count([a for a in sc.scorable if lo <= a["area"] <= hi])
            slices.append({"name": name, "area": [lo, hi], "num_images": len(gt.image_ids),
                           **_from_precision(bbox.precision, bbox.iou_thrs, bbox.cat_ids, a_idx, n)})
        out["size"] = {"method": "COCO area ranges on the annotation area (small < 32^2 <= medium < 96^2 "
                                 "<= large): ground truth and unmatched detections outside the range ignored",
                       "slices": slices}

    # camera kind and height: image subsets
    cameras = cameras or {}
    known = set(gt.image_ids)
    kinds = {i: c["camera"] for i, c in cameras.items() if "camera" in c and i in known}
    if not kinds:
        out["camera"] = {"skipped": "no camera kind known for the images (image record field 'camera', "
                                    "or parts/*.json meta.plan.camera of a blender.render set)"}
    else:
        out["camera"] = {"method": "the subset of images taken by that camera kind", "source": camera_source,
                         "slices": [sc.images(k, [i for i, v in kinds.items() if v == k], camera=k)
                                    for k in sorted(set(kinds.values()))],
                         "num_images_unknown": len(gt.image_ids) - len(kinds)}
    heights = {i: float(c["camera_height_m"]) for i, c in cameras.items()
               if isinstance(c.get("camera_height_m"), (int, float)) and i in known}
    if not heights:
        out["camera_height"] = {"skipped": "no image record carries 'camera_height_m'"}
    else:
        edges = [float(e) for e in height_edges_m]
        bands = list(zip(edges[:-1], edges[1:], strict=True))
        slices = []
        for j, (lo, hi) in enumerate(bands):
            last = j == len(bands) - 1
            ids = [i for i, h in heights.items() if _in_band(h, lo, hi, last)]
            slices.append(sc.images(_band_label(lo, hi, last, 1) + " m", ids,
                                    range=[lo, hi if np.isfinite(hi) else None]))
        out["camera_height"] = {"method": "the subset of images whose camera height is in the band",
                                "source": camera_source, "slices": slices,
                                "num_images_unknown": len(gt.image_ids) - len(heights)}
    return out
