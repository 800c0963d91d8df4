"""COCO scoring with pycocotools: ground truth loading, COCOeval, confusion matrix, error types,
F1 thresholds.

Torch-free, so training validation, the evaluate CLI and tests share one scorer. Everything
works on plain COCO dicts: ground truth as a dataset dict, predictions in the COCO results
format (`image_id`, `category_id`, `bbox` [x, y, w, h], `score`, optional RLE `segmentation`).
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from pipeline import rle
from pipeline.common import CATEGORIES, CLASS_NAMES, UserError, read_json, remap_categories

IOU_TYPES = ("bbox", "segm")

# Order of COCOeval.stats (see COCOeval.summarize).
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl",
              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


# ---------------------------------------------------------------- ground truth

@dataclass
class GroundTruth:
    """A COCO set on our category ids, plus what the class map left out."""

    coco: dict
    source: str
    dropped_categories: list[str] = field(default_factory=list)

    @property
    def image_ids(self) -> list[int]:
        return [im["id"] for im in self.coco["images"]]

    @property
    def present_category_ids(self) -> list[int]:
        """Categories with at least one scorable (non-crowd) instance: the only ones COCOeval scores."""
        ids = {a["category_id"] for a in self.coco["annotations"] if not a.get("iscrowd", 0)}
        return [c["id"] for c in CATEGORIES if c["id"] in ids]

    @property
    def has_masks(self) -> bool:
        """Mask metrics only when every instance carries a segmentation (box-only sets get bbox only)."""
        anns = self.coco["annotations"]
        return bool(anns) and all(a.get("segmentation") for a in anns)

    def subset(self, image_ids: list[int]) -> GroundTruth:
        known = set(self.image_ids)
        missing = [i for i in image_ids if i not in known]
        if missing:
            raise UserError(f"{self.source}: image ids {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                            f"are not in the set")
        keep = set(image_ids)
        coco = {**self.coco,
                "images": [im for im in self.coco["images"] if im["id"] in keep],
                "annotations": [a for a in self.coco["annotations"] if a["image_id"] in keep]}
        return GroundTruth(coco, self.source, list(self.dropped_categories))


def _check_coco(coco: Any, source: str) -> None:
    if not isinstance(coco, dict):
        raise UserError(f"{source}: expected a COCO object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise UserError(f"{source}: field {key!r} missing or not a list")
    for im in coco["images"]:
        for key in ("id", "width", "height", "file_name"):
            if key not in im:
                raise UserError(f"{source}: image {im.get('id', '?')} has no {key!r}")
    ids = {im["id"] for im in coco["images"]}
    for a in coco["annotations"]:
        for key in ("id", "image_id", "category_id", "bbox"):
            if key not in a:
                raise UserError(f"{source}: annotation {a.get('id', '?')} has no {key!r}")
        if a["image_id"] not in ids:
            raise UserError(f"{source}: annotation {a['id']} refers to image {a['image_id']} "
                            f"which is not in 'images'")


def ground_truth_from_dict(coco: dict, class_map: dict[str, str] | None = None,
                           source: str = "annotations") -> GroundTruth:
    """Validate a COCO dict and move it onto our category ids through `class_map`."""
    _check_coco(coco, source)
    remapped, dropped = remap_categories(coco, class_map or {}, source)
    ids = [a["id"] for a in remapped["annotations"]]
    # pycocotools indexes annotations by id and treats a match with id 0 as no match
    renumber = len(set(ids)) != len(ids) or any(not isinstance(i, int) or i <= 0 for i in ids)
    anns = []
    for k, a in enumerate(remapped["annotations"]):
        a = dict(a, id=k + 1) if renumber else dict(a)
        a.setdefault("iscrowd", 0)
        if "area" not in a:
            a["area"] = float(a["bbox"][2] * a["bbox"][3])
        anns.append(a)
    remapped["annotations"] = anns
    return GroundTruth(remapped, source, dropped)


def load_ground_truth(ann_file: str | Path, class_map: dict[str, str] | None = None) -> GroundTruth:
    ann_file = Path(ann_file)
    return ground_truth_from_dict(read_json(ann_file, "COCO annotations"), class_map, str(ann_file))


def _coco_api(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress chatter
        coco.createIndex()
    return coco


# ---------------------------------------------------------------- predictions

def check_predictions(predictions: list[dict], gt: GroundTruth, source: str = "predictions") -> None:
    if not isinstance(predictions, list):
        raise UserError(f"{source}: expected a list of COCO results")
    known_imgs = set(gt.image_ids)
    known_cats = {c["id"] for c in CATEGORIES}
    for i, p in enumerate(predictions):
        for key in ("image_id", "category_id", "score"):
            if key not in p:
                raise UserError(f"{source}: result {i} has no {key!r}")
        if "bbox" not in p and "segmentation" not in p:
            raise UserError(f"{source}: result {i} has neither 'bbox' nor 'segmentation'")
        if p["image_id"] not in known_imgs:
            raise UserError(f"{source}: result {i} refers to image id {p['image_id']}, "
                            f"which is not in {gt.source}")
        if p["category_id"] not in known_cats:
            raise UserError(f"{source}: result {i} has category_id {p['category_id']}, "
                            f"expected one of {sorted(known_cats)}")


def _results_api(gt_api: COCO, predictions: list[dict], iou_type: str) -> COCO:
    if iou_type == "segm":
        # Without a bbox, loadRes takes the area from the mask, so small/medium/large use
        # mask area like the ground truth does (the same trick as detectron2).
        predictions = [{k: v for k, v in p.items() if k != "bbox"} for p in predictions]
    else:
        predictions = [{k: v for k, v in p.items() if k != "segmentation"} for p in predictions]
    if not predictions:
        # loadRes cannot take an empty list; an empty result set scores AP 0 where there is ground truth.
        return _coco_api({"images": copy.deepcopy(gt_api.dataset["images"]),
                          "categories": copy.deepcopy(gt_api.dataset["categories"]),
                          "annotations": []})
    with contextlib.redirect_stdout(io.StringIO()):
        return gt_api.loadRes(copy.deepcopy(predictions))


# ---------------------------------------------------------------- COCOeval

@dataclass
class IouTypeResult:
    iou_type: str
    metrics: dict[str, float | None]           # STAT_NAMES -> value (None where COCOeval has no data)
    per_class: dict[str, float | None]         # class name -> AP@[.5:.95]
    per_class_ap50: dict[str, float | None]
    f1_optimal: dict[str, dict]                # class name -> threshold, f1, precision, recall (IoU 0.5)
    summary_text: str
    iou_thrs: np.ndarray
    rec_thrs: np.ndarray
    precision: np.ndarray                      # COCOeval eval['precision'], [T, R, K, A, M]
    cat_ids: list[int]

    def to_json(self) -> dict:
        return {**self.metrics, "per_class": self.per_class, "per_class_AP50": self.per_class_ap50,
                "f1_optimal": self.f1_optimal, "summary_text": self.summary_text}


def _nan_to_none(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) or x < 0 else float(x)


def _mean_valid(p: np.ndarray) -> float | None:
    valid = p[p > -1]
    return float(valid.mean()) if valid.size else None


def f1_optimal_threshold(scores: np.ndarray, is_tp: np.ndarray, num_gt: int) -> dict:
    """Score threshold that maximises F1 when keeping detections with score >= threshold."""
    scores = np.asarray(scores, dtype=np.float64)
    is_tp = np.asarray(is_tp, dtype=bool)
    if scores.size == 0 or num_gt <= 0:
        return {"threshold": None, "f1": 0.0, "precision": 0.0, "recall": 0.0}
    order = np.argsort(-scores, kind="mergesort")
    scores, is_tp = scores[order], is_tp[order]
    tp = np.cumsum(is_tp)
    kept = np.arange(1, scores.size + 1)
    precision = tp / kept
    recall = tp / num_gt
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    # A threshold keeps every detection with an equal score, so only the last of a run of ties is a cut.
    cut = np.r_[scores[1:] != scores[:-1], True]
    f1_cut = np.where(cut, f1, -1.0)
    best = int(np.argmax(f1_cut))
    if f1[best] <= 0:  # no true positive at any threshold: no threshold is better than another
        return {"threshold": None, "f1": 0.0, "precision": float(precision[best]), "recall": 0.0}
    return {"threshold": float(scores[best]), "f1": float(f1[best]),
            "precision": float(precision[best]), "recall": float(recall[best])}


def _f1_from_eval(E: COCOeval, k: int, iou: float = 0.5) -> dict:
    """Per-class F1 optimum from COCOeval's own matching (crowd and area handling included)."""
    t = int(np.argmin(np.abs(E.params.iouThrs - iou)))
    n_imgs = len(E.params.imgIds)
    n_area = len(E.params.areaRng)
    scores, tps = [], []
    num_gt = 0
    for i in range(n_imgs):
        e = E.evalImgs[k * n_area * n_imgs + 0 * n_imgs + i]  # area range 0 = 'all'
        if e is None:
            continue
        keep = ~np.asarray(e["dtIgnore"][t], dtype=bool) if len(e["dtScores"]) else np.zeros(0, bool)
        scores.append(np.asarray(e["dtScores"])[keep])
        tps.append(np.asarray(e["dtMatches"][t])[keep] > 0 if keep.size else np.zeros(0, bool))
        num_gt += int(np.sum(np.asarray(e["gtIgnore"]) == 0))
    s = np.concatenate(scores) if scores else np.zeros(0)
    m = np.concatenate(tps) if tps else np.zeros(0, bool)
    return f1_optimal_threshold(s, m, num_gt)


def evaluate_iou_type(gt: GroundTruth, predictions: list[dict], iou_type: str,
                      gt_api: COCO | None = None) -> IouTypeResult:
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}")
    gt_api = gt_api or _coco_api(copy.deepcopy(gt.coco))
    cat_ids = gt.present_category_ids
    if not cat_ids:
        raise UserError(f"{gt.source}: no scorable instances of {CLASS_NAMES[1:]} "
                        f"(dropped categories: {gt.dropped_categories or 'none'})")
    dt_api = _results_api(gt_api, predictions, iou_type)
    E = COCOeval(gt_api, dt_api, iou_type)
    E.params.catIds = cat_ids
    E.params.imgIds = sorted(gt.image_ids)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        E.evaluate()
        E.accumulate()
        E.summarize()
    names = {c["id"]: c["name"] for c in CATEGORIES}
    precision = E.eval["precision"]
    t50 = int(np.argmin(np.abs(E.params.iouThrs - 0.5)))
    per_class, per_class50, f1 = {}, {}, {}
    for k, cid in enumerate(cat_ids):
        per_class[names[cid]] = _mean_valid(precision[:, :, k, 0, -1])
        per_class50[names[cid]] = _mean_valid(precision[t50, :, k, 0, -1])
        f1[names[cid]] = _f1_from_eval(E, k)
    metrics = {name: _nan_to_none(v) for name, v in zip(STAT_NAMES, E.stats, strict=True)}
    summary = "\n".join(line for line in buf.getvalue().splitlines() if line.lstrip().startswith("Average"))
    return IouTypeResult(iou_type, metrics, per_class, per_class50, f1, summary,
                         E.params.iouThrs.copy(), E.params.recThrs.copy(), precision.copy(), cat_ids)


def evaluate_coco(gt: GroundTruth, predictions: list[dict],
                  iou_types: tuple[str, ...] | None = None) -> dict[str, IouTypeResult]:
    """Score predictions against ground truth; mask metrics only where the set has masks.

    Only categories present in the set are scored; crowd regions are ignored by COCOeval.
    No predictions at all scores 0, it is not an error.
    """
    check_predictions(predictions, gt)
    if iou_types is None:
        iou_types = ("bbox", "segm") if gt.has_masks else ("bbox",)
    if "segm" in iou_types:
        if not gt.has_masks:
            raise UserError(f"{gt.source}: mask metrics asked for but not every annotation has a segmentation")
        missing = sum(1 for p in predictions if not p.get("segmentation"))
        if missing:
            raise UserError(f"predictions: {missing} results have no 'segmentation' for mask metrics")
    gt_api = _coco_api(copy.deepcopy(gt.coco))
    return {t: evaluate_iou_type(gt, predictions, t, gt_api) for t in iou_types}


# ---------------------------------------------------------------- confusion matrix

@dataclass
class ImageMatch:
    image_id: int
    tp: int
    fp: int
    fn: int

    @property
    def f1(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 1.0 if denom == 0 else 2 * self.tp / denom


# What a detection at or above the score threshold is, besides a true positive. "class": it
# matched (IoU >= threshold) or overlaps (>= LOW_IOU) an instance of another class only;
# "duplicate": its own-class instance was taken by a higher-scored detection; "localization":
# its own class is there at LOW_IOU..threshold; "background": it overlaps nothing (< LOW_IOU).
# The split of Bolya et al.'s TIDE (ECCV 2020), on the confusion matrix's own greedy matching.
ERROR_TYPES = ("class", "duplicate", "localization", "background")
LOW_IOU = 0.1


@dataclass
class _Outcome:
    gt_class: int         # 0: no ground truth taken
    det_class: int
    kind: str             # "tp", "crowd" (ignored) or one of ERROR_TYPES


def _match_image(gts: list[dict], crowd: list[dict], dts: list[dict], iou_threshold: float) -> list[_Outcome]:
    """Greedy matching by score of one image's detections (sorted, best first): each takes an
    unmatched ground truth at IoU >= threshold, preferring its own class."""
    g_boxes = [a["bbox"] for a in gts]
    d_boxes = [p["bbox"] for p in dts]
    ious = (np.asarray(mask_utils.iou(d_boxes, g_boxes, [0] * len(gts))).reshape(len(dts), len(gts))
            if dts and gts else np.zeros((len(dts), len(gts))))
    crowd_iou = (np.asarray(mask_utils.iou(d_boxes, [a["bbox"] for a in crowd], [1] * len(crowd)))
                 .reshape(len(dts), len(crowd)) if dts and crowd else np.zeros((len(dts), 0)))
    g_class = np.array([a["category_id"] for a in gts], dtype=np.int64)
    taken = np.zeros(len(gts), dtype=bool)
    out = []
    for d, p in enumerate(dts):
        c = p["category_id"]
        cand = np.flatnonzero((ious[d] >= iou_threshold) & ~taken)
        if cand.size:
            same = cand[g_class[cand] == c]
            pool = same if same.size else cand
            g = int(pool[np.argmax(ious[d, pool])])
            taken[g] = True
            out.append(_Outcome(int(g_class[g]), c, "tp" if g_class[g] == c else "class"))
        elif crowd_iou.shape[1] and crowd_iou[d].max() >= iou_threshold:
            out.append(_Outcome(0, c, "crowd"))
        else:
            own, other = ious[d][g_class == c], ious[d][g_class != c]
            kind = ("duplicate" if own.size and own.max() >= iou_threshold
                    else "localization" if own.size and own.max() >= LOW_IOU
                    else "class" if other.size and other.max() >= LOW_IOU else "background")
            out.append(_Outcome(0, c, kind))
    missed = [_Outcome(int(g_class[g]), 0, "missed") for g in np.flatnonzero(~taken)]
    return out + missed


def _matched_images(gt: GroundTruth, predictions: list[dict], score_threshold: float,
                    iou_threshold: float) -> list[tuple[int, list[_Outcome]]]:
    by_img_gt: dict[int, list[dict]] = {i: [] for i in gt.image_ids}
    for a in gt.coco["annotations"]:
        by_img_gt[a["image_id"]].append(a)
    by_img_dt: dict[int, list[dict]] = {i: [] for i in gt.image_ids}
    for p in predictions:
        if p["score"] >= score_threshold:
            by_img_dt[p["image_id"]].append(p)
    return [(img_id, _match_image([a for a in by_img_gt[img_id] if not a.get("iscrowd", 0)],
                                  [a for a in by_img_gt[img_id] if a.get("iscrowd", 0)],
                                  sorted(by_img_dt[img_id], key=lambda p: -p["score"]), iou_threshold))
            for img_id in gt.image_ids]


def confusion_matrix(gt: GroundTruth, predictions: list[dict], score_threshold: float = 0.5,
                     iou_threshold: float = 0.5) -> tuple[np.ndarray, list[ImageMatch]]:
    """Box-IoU confusion matrix with background, plus per-image TP/FP/FN.

    Rows are ground truth, columns predictions, index = model label (0 = background):
    [c, 0] a missed instance of class c, [0, c] a false detection of class c. Detections
    are matched greedily by score; each takes an unmatched ground truth at IoU >= threshold,
    preferring its own class, so a cross-class cell means no same-class instance was there.
    Unmatched detections on crowd regions are ignored, as COCOeval does.
    """
    n = len(CLASS_NAMES)
    cm = np.zeros((n, n), dtype=np.int64)
    matches = []
    for img_id, outcomes in _matched_images(gt, predictions, score_threshold, iou_threshold):
        for o in outcomes:
            if o.kind != "crowd":
                cm[o.gt_class, o.det_class] += 1
        tp = sum(o.kind == "tp" for o in outcomes)
        fp = sum(o.det_class > 0 and o.kind not in ("tp", "crowd") for o in outcomes)
        fn = sum(o.gt_class > 0 and o.kind != "tp" for o in outcomes)
        matches.append(ImageMatch(img_id, tp, fp, fn))
    return cm, matches


def error_types(gt: GroundTruth, predictions: list[dict], score_threshold: float = 0.5,
                iou_threshold: float = 0.5) -> dict[str, dict[str, int]]:
    """class name -> counts of its detections at or above the score threshold by what they are
    ("tp" and ERROR_TYPES), and of its instances no detection of any class took ("missed")."""
    out = {name: dict.fromkeys(("tp", *ERROR_TYPES, "missed"), 0) for name in CLASS_NAMES[1:]}
    for _, outcomes in _matched_images(gt, predictions, score_threshold, iou_threshold):
        for o in outcomes:
            if o.kind == "missed":
                out[CLASS_NAMES[o.gt_class]]["missed"] += 1
            elif o.kind != "crowd":
                out[CLASS_NAMES[o.det_class]][o.kind] += 1
    return out


def load_predictions(path: str | Path) -> list[dict]:
    preds = read_json(path, "COCO results")
    if not isinstance(preds, list):
        raise UserError(f"{path}: expected a JSON list of COCO results")
    return preds


def ann_to_mask(ann: dict, height: int, width: int) -> np.ndarray | None:
    """HxW bool mask of a COCO annotation or result (polygons, RLE or uncompressed RLE); None if it has none."""
    seg = ann.get("segmentation")
    return rle.decode(seg, height, width) if seg else None
