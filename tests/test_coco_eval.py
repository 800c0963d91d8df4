"""COCO scoring against hand-built cases with known answers (no model involved)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_coco import load_coco

from pipeline.coco_eval import (
    ann_to_mask,
    confusion_matrix,
    error_types,
    evaluate_coco,
    f1_optimal_threshold,
    ground_truth_from_dict,
    load_ground_truth,
)
from pipeline.common import UserError
from pipeline.rle import encode as encode_mask
from pipeline.slices import camera_of_images, evaluate_slices

H, W = 64, 96


def square(x: int, y: int, s: int = 20) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[y:y + s, x:x + s] = 1
    return m


def gt_dict(objects: dict[int, list[tuple[int, int, int]]], crowd: dict[int, tuple[int, int]] | None = None,
            categories=None) -> dict:
    """{image_id: [(category_id, x, y)]} -> COCO dict of 20x20 squares with RLE masks."""
    images = [{"id": i, "file_name": f"{i:06d}.png", "width": W, "height": H} for i in objects]
    anns = []
    for img_id, objs in objects.items():
        for cat, x, y in objs:
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": cat, "iscrowd": 0,
                         "bbox": [x, y, 20, 20], "area": 400, "segmentation": encode_mask(square(x, y))})
    for img_id, (x, y) in (crowd or {}).items():
        anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": 1, "iscrowd": 1,
                     "bbox": [x, y, 20, 20], "area": 400, "segmentation": encode_mask(square(x, y))})
    cats = categories or [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "pallet_jack"}]
    return {"images": images, "annotations": anns, "categories": cats}


def pred(img_id: int, cat: int, x: int, y: int, score: float = 1.0, s: int = 20) -> dict:
    return {"image_id": img_id, "category_id": cat, "bbox": [x, y, s, s], "score": score,
            "segmentation": encode_mask(square(x, y, s))}


def gt_as_predictions(coco: dict) -> list[dict]:
    sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 1.0,
             "segmentation": encode_mask(ann_to_mask(a, *sizes[a["image_id"]]))}
            for a in coco["annotations"] if not a.get("iscrowd", 0)]


SCENE = {1: [(1, 5, 5), (2, 50, 30)], 2: [(1, 10, 20)], 3: [(2, 60, 10), (1, 20, 40)], 4: []}


def test_ground_truth_as_predictions_scores_one(coco_set_ro):
    # the shared tiny set: polygons, compressed and uncompressed RLE, a crowd region, an empty image
    gt = load_ground_truth(coco_set_ro / "annotations.json")
    assert gt.has_masks and gt.present_category_ids == [1, 2]
    res = evaluate_coco(gt, gt_as_predictions(gt.coco))
    assert set(res) == {"bbox", "segm"}
    for r in res.values():
        assert r.metrics["AP"] == pytest.approx(1.0)
        assert r.metrics["AP50"] == pytest.approx(1.0) and r.metrics["AP75"] == pytest.approx(1.0)
        assert r.metrics["AR100"] == pytest.approx(1.0)
        assert r.per_class == pytest.approx({"pedestrian": 1.0, "pallet_jack": 1.0})
        assert r.metrics["APl"] is None  # no large objects in 96x128 images: n/a, not -1
        assert {k: v["f1"] for k, v in r.f1_optimal.items()} == {"pedestrian": 1.0, "pallet_jack": 1.0}


def test_shift_to_iou_0_6_keeps_ap50_and_loses_ap75():
    gt = ground_truth_from_dict(gt_dict(SCENE))
    # a 20x20 square moved 5 px right: overlap 15x20 = 300, union 500 -> IoU 0.6 exactly, boxes and masks
    preds = [pred(i, c, x + 5, y) for i, objs in SCENE.items() for c, x, y in objs]
    res = evaluate_coco(gt, preds)
    thresholds = np.linspace(0.5, 0.95, 10)
    expected_ap = float(np.mean(thresholds <= 0.6 + 1e-9))  # 0.50, 0.55, 0.60 of ten
    assert expected_ap == pytest.approx(0.3)
    for r in res.values():
        assert r.metrics["AP50"] == pytest.approx(1.0)
        assert r.metrics["AP75"] == pytest.approx(0.0)
        assert r.metrics["AP"] == pytest.approx(expected_ap)
        assert r.per_class["pallet_jack"] == pytest.approx(expected_ap)


def test_empty_predictions_score_zero_not_crash():
    gt = ground_truth_from_dict(gt_dict(SCENE))
    res = evaluate_coco(gt, [])
    for r in res.values():
        assert r.metrics["AP"] == 0.0 and r.metrics["AR100"] == 0.0
        assert r.per_class == {"pedestrian": 0.0, "pallet_jack": 0.0}
        assert r.f1_optimal["pedestrian"]["threshold"] is None
    cm, matches = confusion_matrix(gt, [])
    assert cm[1, 0] == 3 and cm[2, 0] == 2 and cm[:, 1:].sum() == 0
    assert [m.fn for m in matches] == [2, 1, 2, 0]


def test_only_present_classes_are_scored():
    scene = {1: [(1, 5, 5)], 2: [(1, 40, 30)]}
    gt = ground_truth_from_dict(gt_dict(scene))
    assert gt.present_category_ids == [1]
    # a pallet-jack detection where no pallet jacks exist must not create a scored class at AP 0
    preds = [pred(1, 1, 5, 5), pred(2, 1, 40, 30), pred(2, 2, 70, 40, score=0.9)]
    res = evaluate_coco(gt, preds)
    assert list(res["bbox"].per_class) == ["pedestrian"]
    assert res["bbox"].metrics["AP"] == pytest.approx(1.0)


def test_detection_on_crowd_region_is_ignored():
    scene = {1: [(1, 5, 5)], 2: [(2, 40, 30)]}
    gt = ground_truth_from_dict(gt_dict(scene, crowd={1: (60, 30)}))
    preds = [pred(1, 1, 5, 5, 0.9), pred(2, 2, 40, 30), pred(1, 1, 60, 30, score=0.99)]
    res = evaluate_coco(gt, preds)
    assert res["bbox"].metrics["AP"] == pytest.approx(1.0)
    assert res["bbox"].f1_optimal["pedestrian"]["precision"] == 1.0
    # the same detection away from the crowd region is a false positive ranked first:
    # precision 1/2 at every recall
    preds[-1] = pred(1, 1, 60, 5, score=0.99)
    assert evaluate_coco(gt, preds)["bbox"].per_class["pedestrian"] == pytest.approx(0.5)


def test_class_map_scores_foreign_names_and_reports_dropped():
    coco = gt_dict({1: [(7, 5, 5), (9, 50, 30)], 2: [(7, 10, 20)]},
                   categories=[{"id": 7, "name": "person"}, {"id": 9, "name": "forklift"}])
    gt = ground_truth_from_dict(coco, {"person": "pedestrian"}, "real.json")
    assert gt.dropped_categories == ["forklift"]
    assert gt.present_category_ids == [1]
    assert all(a["category_id"] == 1 for a in gt.coco["annotations"])
    res = evaluate_coco(gt, [pred(1, 1, 5, 5), pred(2, 1, 10, 20)])
    assert res["segm"].per_class == {"pedestrian": pytest.approx(1.0)}
    # without the map nothing is scorable: a clear error, not AP over nothing
    with pytest.raises(UserError, match="no scorable instances"):
        evaluate_coco(ground_truth_from_dict(coco, {}, "real.json"), [])
    with pytest.raises(UserError, match="class map names"):
        ground_truth_from_dict(coco, {"human": "pedestrian"}, "real.json")


def test_box_only_set_gets_box_metrics_only(coco_set_ro):
    coco = load_coco(coco_set_ro)
    for a in coco["annotations"]:
        a.pop("segmentation")
    gt = ground_truth_from_dict(coco)
    assert not gt.has_masks
    preds = [{k: v for k, v in p.items() if k != "segmentation"} for p in gt_as_predictions(load_coco(coco_set_ro))]
    res = evaluate_coco(gt, preds)
    assert list(res) == ["bbox"] and res["bbox"].metrics["AP"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="mask metrics"):
        evaluate_coco(gt, preds, ("bbox", "segm"))


def test_bad_predictions_are_user_errors():
    gt = ground_truth_from_dict(gt_dict(SCENE), source="set.json")
    with pytest.raises(UserError, match="image id 99, which is not in set.json"):
        evaluate_coco(gt, [pred(99, 1, 5, 5)])
    with pytest.raises(UserError, match="category_id 5"):
        evaluate_coco(gt, [pred(1, 5, 5, 5)])
    with pytest.raises(UserError, match="no 'score'"):
        evaluate_coco(gt, [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])
    with pytest.raises(UserError, match="not in the set"):
        gt.subset([1, 42])


def test_bad_ground_truth_is_user_error():
    coco = gt_dict(SCENE)
    coco["annotations"][0]["image_id"] = 77
    with pytest.raises(UserError, match="refers to image 77"):
        ground_truth_from_dict(coco, source="x.json")
    with pytest.raises(UserError, match="'images' missing"):
        ground_truth_from_dict({"annotations": [], "categories": []}, source="x.json")


def test_confusion_matrix_hand_built():
    # image 1: pedestrian A (5,5), pallet jack B (50,30), pedestrian C (5,40), crowd at (70,5)
    gt = ground_truth_from_dict(gt_dict({1: [(1, 5, 5), (2, 50, 30), (1, 5, 40)], 2: []}, crowd={1: (70, 5)}))
    preds = [
        pred(1, 1, 5, 5, 0.9),     # A found: pedestrian -> pedestrian
        pred(1, 1, 51, 30, 0.8),   # B called a pedestrian: pallet_jack -> pedestrian
        pred(1, 2, 30, 2, 0.7),    # nothing there: background -> pallet_jack
        pred(1, 1, 70, 5, 0.95),   # on the crowd region: ignored
        pred(1, 1, 5, 40, 0.3),    # C, but below the score threshold: C counts as missed
        pred(2, 2, 60, 40, 0.6),   # empty image: background -> pallet_jack
    ]
    cm, matches = confusion_matrix(gt, preds, score_threshold=0.5, iou_threshold=0.5)
    expected = np.array([[0, 0, 2],
                         [1, 1, 0],
                         [0, 1, 0]])
    np.testing.assert_array_equal(cm, expected)
    m1, m2 = matches
    assert (m1.tp, m1.fp, m1.fn) == (1, 2, 2)
    assert (m2.tp, m2.fp, m2.fn) == (0, 1, 0) and m2.f1 == 0.0
    assert m1.f1 == pytest.approx(2 / (2 + 2 + 2))


def test_confusion_prefers_same_class_match():
    # a pedestrian detection on a pallet jack (IoU 0.82) and a pedestrian (IoU 0.56)
    gt = ground_truth_from_dict(gt_dict({1: [(2, 13, 10), (1, 19, 12)]}))
    cm, _ = confusion_matrix(gt, [pred(1, 1, 15, 10, 0.9)])
    assert cm[1, 1] == 1 and cm[2, 0] == 1 and cm[2, 1] == 0


def test_error_types_hand_built():
    # pedestrians A (5,5) and B (5,40), pallet jacks C (50,30) and E (74,2), a crowd region at (70,40)
    gt = ground_truth_from_dict(gt_dict({1: [(1, 5, 5), (1, 5, 40), (2, 50, 30), (2, 74, 2)]}, crowd={1: (70, 40)}))
    preds = [
        pred(1, 1, 5, 5, 0.95),    # A: true positive
        pred(1, 1, 6, 5, 0.9),     # A again (IoU 0.90), already taken: duplicate
        pred(1, 1, 5, 50, 0.85),   # B at IoU 0.33: localization (B stays missed)
        pred(1, 1, 50, 30, 0.8),   # on jack C only: class (C is taken, not missed)
        pred(1, 2, 30, 2, 0.75),   # touches nothing: background
        pred(1, 2, 74, 14, 0.7),   # E at IoU 0.25: localization (E stays missed)
        pred(1, 2, 10, 10, 0.65),  # overlaps pedestrian A only (IoU 0.39): class
        pred(1, 1, 70, 40, 0.6),   # on the crowd region: ignored
        pred(1, 2, 74, 2, 0.3),    # E exactly, but below the score threshold
    ]
    errors = error_types(gt, preds, score_threshold=0.5)
    assert errors["pedestrian"] == {"tp": 1, "class": 1, "duplicate": 1, "localization": 1, "background": 0,
                                    "missed": 1}
    assert errors["pallet_jack"] == {"tp": 0, "class": 1, "duplicate": 0, "localization": 1, "background": 1,
                                     "missed": 1}
    # the same matching as the confusion matrix: its columns are each class's detections
    cm, (m,) = confusion_matrix(gt, preds, score_threshold=0.5)
    for c, name in ((1, "pedestrian"), (2, "pallet_jack")):
        assert cm[:, c].sum() == sum(v for k, v in errors[name].items() if k != "missed")
        assert cm[c, 0] == errors[name]["missed"]
    assert (m.tp, m.fp, m.fn) == (1, 6, 3)
    # a lower score threshold lets the exact detection of E take it
    low = error_types(gt, preds, score_threshold=0.2)["pallet_jack"]
    assert (low["tp"], low["missed"], low["localization"]) == (1, 0, 1)


def test_f1_optimal_threshold_hand_built():
    # sorted: tp tp fp tp fp with 4 ground truths -> F1 .4 .667 .571 .75 .667: best keeps score >= 0.6
    r = f1_optimal_threshold([0.5, 0.9, 0.7, 0.8, 0.6], [0, 1, 0, 1, 1], 4)
    assert r["threshold"] == 0.6
    assert r["f1"] == pytest.approx(0.75) and r["precision"] == pytest.approx(0.75)
    assert r["recall"] == pytest.approx(0.75)
    # tied scores are kept or dropped together: cutting between the two 0.7s is not a threshold
    tie = f1_optimal_threshold([0.9, 0.7, 0.7], [1, 1, 0], 2)
    assert tie["threshold"] == 0.7 and tie["f1"] == pytest.approx(0.8)
    assert f1_optimal_threshold([], [], 3)["threshold"] is None
    assert f1_optimal_threshold([0.9], [0], 3)["f1"] == 0.0


def test_f1_optimal_threshold_through_cocoeval():
    scene = {1: [(1, 5, 5)], 2: [(1, 5, 5)], 3: [(1, 5, 5)], 4: [(1, 5, 5)]}
    gt = ground_truth_from_dict(gt_dict(scene))
    preds = [pred(1, 1, 5, 5, 0.9), pred(2, 1, 5, 5, 0.8), pred(3, 1, 60, 30, 0.7),
             pred(3, 1, 5, 5, 0.6), pred(4, 1, 60, 30, 0.5)]
    f1 = evaluate_coco(gt, preds)["bbox"].f1_optimal["pedestrian"]
    assert f1["threshold"] == 0.6 and f1["f1"] == pytest.approx(0.75)


def test_ann_to_mask_reads_every_encoding(coco_set_ro):
    coco = load_coco(coco_set_ro)
    h, w = coco["images"][0]["height"], coco["images"][0]["width"]
    kinds = set()
    for a in coco["annotations"]:
        seg = a["segmentation"]
        kinds.add("polygon" if isinstance(seg, list) else type(seg["counts"]).__name__)
        m = ann_to_mask(a, h, w)
        assert m.shape == (h, w) and m.dtype == bool
        assert int(m.sum()) == pytest.approx(a["area"], abs=2)
    assert kinds == {"polygon", "list", "str"}
    assert ann_to_mask({"bbox": [0, 0, 1, 1]}, h, w) is None


def test_duplicate_or_zero_annotation_ids_are_renumbered():
    coco = gt_dict(SCENE)
    for a in coco["annotations"]:
        a["id"] = 0  # pycocotools would index them as one and never count a match with id 0
    gt = ground_truth_from_dict(coco)
    assert [a["id"] for a in gt.coco["annotations"]] == [1, 2, 3, 4, 5]
    res = evaluate_coco(gt, gt_as_predictions(gt.coco))
    assert res["bbox"].metrics["AP"] == pytest.approx(1.0)
    assert res["segm"].f1_optimal["pedestrian"]["f1"] == 1.0


# ---------------------------------------------------------------- RLE (pipeline.rle)

def test_rle_round_trip_matches_pycocotools_on_known_geometry():
    from pycocotools import mask as mask_utils

    from pipeline import rle

    m = np.zeros((30, 40), bool)
    m[5:15, 10:30] = True                       # 10 x 20 rectangle
    enc = rle.encode(m)
    assert enc["size"] == [30, 40] and isinstance(enc["counts"], str)
    ref = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
    assert enc["counts"].encode("ascii") == ref["counts"]
    assert mask_utils.area(ref) == 200 and list(mask_utils.toBbox(ref)) == [10, 5, 20, 10]
    np.testing.assert_array_equal(rle.decode(enc), m)
    np.testing.assert_array_equal(rle.decode({**enc, "counts": ref["counts"]}), m)   # bytes too
    # the same rectangle as a polygon and as uncompressed RLE (column-major run lengths)
    poly = [[10, 5, 30, 5, 30, 15, 10, 15]]
    assert rle.decode(poly, 30, 40).sum() == mask_utils.area(mask_utils.merge(mask_utils.frPyObjects(poly, 30, 40)))
    runs = [5 + 30 * 10, 10, *([20, 10] * 19), 30 * 40 - (5 + 30 * 10) - 10 - 19 * 30]
    np.testing.assert_array_equal(rle.decode({"size": [30, 40], "counts": runs}), m)
    assert rle.decode([], 30, 40).shape == (30, 40) and not rle.decode([], 30, 40).any()
    assert rle.decode(rle.encode(np.zeros((4, 6), bool))).sum() == 0
    with pytest.raises(ValueError, match="unsupported segmentation"):
        rle.decode({"size": [2, 2]})
    with pytest.raises(ValueError, match="needs height and width"):
        rle.decode(poly)


# ---------------------------------------------------------------- slices (pipeline/slices.py)

def ap101(hits: list[bool], num_gt: int) -> float:
    """COCO's 101-point interpolated AP, by its definition, for detections in score order
    (True = true positive; ignored detections left out)."""
    tp = np.cumsum(hits)
    recall = tp / num_gt
    precision = tp / np.arange(1, len(hits) + 1)
    r_thrs = np.linspace(0.0, 1.0, 101)
    return float(np.mean([precision[recall >= r].max() if (recall >= r).any() else 0.0 for r in r_thrs]))


# (image, category, x, y, side, visibility, truncated); cameras: image 1, 2 cctv, 3 robot
SLICE_SCENE = {
    "A": (1, 1, 5, 5, 20, 0.9, False),
    "B": (1, 1, 40, 5, 20, 0.3, True),
    "C": (2, 1, 5, 30, 20, 0.5, False),
    "D": (2, 1, 40, 30, 20, 0.95, False),
    "E": (2, 2, 70, 5, 20, 0.8, False),      # the only pallet jack
    "F": (3, 1, 10, 10, 40, 1.0, False),     # the only medium object (40x40 = 1600 px)
}
# B first, then a false detection on the background of image 1, then A, D, E, F; C is missed
SLICE_PREDS = [("B", 1.0), ((1, 1, 70, 40, 20), 0.95), ("A", 0.9), ("D", 0.9), ("E", 0.9), ("F", 0.9)]


def slice_gt(names=tuple(SLICE_SCENE), with_fields: bool = True) -> dict:
    images = [{"id": i, "file_name": f"{i:06d}.png", "width": W, "height": H} for i in (1, 2, 3)]
    anns = []
    for name in names:
        img, cat, x, y, s, vis, trunc = SLICE_SCENE[name]
        a = {"id": len(anns) + 1, "image_id": img, "category_id": cat, "iscrowd": 0, "bbox": [x, y, s, s],
             "area": s * s, "segmentation": encode_mask(square(x, y, s))}
        if with_fields:
            a.update(visibility=vis, truncated=trunc)
        anns.append(a)
    return {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "pallet_jack"}]}


def slice_preds() -> list[dict]:
    out = []
    for what, score in SLICE_PREDS:
        img, cat, x, y, s = SLICE_SCENE[what][:5] if isinstance(what, str) else what
        out.append(pred(img, cat, x, y, score, s))
    return out


CAMERAS = {1: {"camera": "cctv"}, 2: {"camera": "cctv"}, 3: {"camera": "robot"}}


def by_name(group: dict) -> dict:
    return {s["name"]: s for s in group["slices"]}


def test_visibility_slices_ignore_out_of_band_ground_truth():
    gt = ground_truth_from_dict(slice_gt())
    preds = slice_preds()
    s = evaluate_slices(gt, preds, evaluate_coco(gt, preds, ("bbox",))["bbox"], CAMERAS, "test")
    vis = by_name(s["visibility"])
    assert list(vis) == ["[0.15, 0.40)", "[0.40, 0.70)", "[0.70, 1.00]"]
    low, mid, high = vis.values()
    # low band: only B, detected first -> 1.0; no pallet jack there -> n/a, not 0
    assert (low["num_gt"], low["AP"], low["AP50"]) == (1, pytest.approx(1.0), pytest.approx(1.0))
    assert low["per_class"]["pallet_jack"] == {"AP": None, "AP50": None, "num_gt": 0}
    # mid band: only C, never detected -> 0.0 (the detections of A, B, D, F hit ignored GT)
    assert (mid["num_gt"], mid["AP"], mid["per_class"]["pedestrian"]["AP"]) == (1, 0.0, 0.0)
    # high band: A, D, F found; B's detection (ranked first) matches ignored GT and is no FP,
    # the background detection is: FP, TP, TP, TP -> precision 3/4 at every recall
    assert high["per_class"]["pedestrian"] == {"AP": pytest.approx(0.75), "AP50": pytest.approx(0.75),
                                               "num_gt": 3}
    assert ap101([False, True, True, True], 3) == pytest.approx(0.75)
    assert high["per_class"]["pallet_jack"] == {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0),
                                                "num_gt": 1}
    assert high["num_gt"] == 4 and high["AP"] == pytest.approx((0.75 + 1.0) / 2)
    # dropping out-of-band GT instead of ignoring it would make B's detection a false positive
    dropped = ground_truth_from_dict(slice_gt(("A", "D", "E", "F")))
    assert evaluate_coco(dropped, preds, ("bbox",))["bbox"].per_class["pedestrian"] == pytest.approx(0.6)
    assert s["visibility"]["num_gt_outside_bands"] == 0 and s["visibility"]["num_gt_without_visibility"] == 0
    # the main scorer's shared ground truth is untouched: the overall AP is the same after slicing
    again = evaluate_coco(gt, preds, ("bbox",))["bbox"].per_class
    assert again["pedestrian"] == pytest.approx(ap101([True, False, True, True, True], 5))


def test_truncation_size_and_camera_slices():
    gt = ground_truth_from_dict(slice_gt())
    preds = slice_preds()
    bbox = evaluate_coco(gt, preds, ("bbox",))["bbox"]
    s = evaluate_slices(gt, preds, bbox, CAMERAS, "test")
    trunc = by_name(s["truncation"])
    assert trunc["truncated"]["num_gt"] == 1 and trunc["truncated"]["AP"] == pytest.approx(1.0)
    # not truncated: A, C, D, F (+ E): B's detection ignored, background FP, A D F found, C missed
    nt = trunc["not truncated"]["per_class"]["pedestrian"]
    assert nt["num_gt"] == 4 and nt["AP"] == pytest.approx(ap101([False, True, True, True], 4))

    size = by_name(s["size"])
    assert [size[k]["num_gt"] for k in ("small", "medium", "large")] == [5, 1, 0]
    # medium: F found; the 20x20 detections are matched to small GT or, unmatched, are small
    # themselves: all ignored (COCO's area rule) -> 1.0
    assert size["medium"]["per_class"]["pedestrian"]["AP"] == pytest.approx(1.0)
    assert size["medium"]["per_class"]["pallet_jack"]["AP"] is None
    # small pedestrians A B C D: B TP, background FP, A D TP, C missed; F's detection ignored
    assert size["small"]["per_class"]["pedestrian"]["AP"] == pytest.approx(ap101([True, False, True, True], 4))
    assert size["small"]["AP"] == pytest.approx(bbox.metrics["APs"])
    assert size["medium"]["AP"] == pytest.approx(bbox.metrics["APm"])
    assert size["large"]["AP"] is None and bbox.metrics["APl"] is None

    cam = by_name(s["camera"])
    assert s["camera"]["source"] == "test" and s["camera"]["num_images_unknown"] == 0
    assert (cam["robot"]["num_images"], cam["robot"]["num_gt"], cam["robot"]["AP"]) == (1, 1, pytest.approx(1.0))
    assert cam["robot"]["per_class"]["pallet_jack"]["AP"] is None
    assert (cam["cctv"]["num_images"], cam["cctv"]["num_gt"]) == (2, 5)
    assert cam["cctv"]["per_class"]["pedestrian"]["AP"] == pytest.approx(ap101([True, False, True, True], 4))
    # an image slice scores exactly like the subset of the set
    sub = evaluate_coco(gt.subset([1, 2]), [p for p in preds if p["image_id"] in (1, 2)], ("bbox",))["bbox"]
    assert cam["cctv"]["AP"] == pytest.approx(sub.metrics["AP"])
    assert s["camera_height"] == {"skipped": "no image record carries 'camera_height_m'"}
    json.dumps(s, allow_nan=False)   # metrics.json stays strict JSON


def test_slices_of_a_set_without_the_fields_are_skipped_not_zero():
    gt = ground_truth_from_dict(slice_gt(with_fields=False))
    s = evaluate_slices(gt, slice_preds())
    assert "skipped" in s["visibility"] and "skipped" in s["truncation"] and "skipped" in s["camera"]
    assert "size" not in s    # sizes come from the main bbox result, not given here


def test_visibility_outside_every_band_and_empty_predictions():
    coco = slice_gt()
    coco["annotations"][0]["visibility"] = 0.05     # A below the lowest edge: ignored in every band
    gt = ground_truth_from_dict(coco)
    s = evaluate_slices(gt, [], visibility_edges=(0.15, 0.7, 1.0))
    assert s["visibility"]["num_gt_outside_bands"] == 1
    assert [x["num_gt"] for x in s["visibility"]["slices"]] == [2, 3]     # B C | D E F
    assert all(x["AP"] == 0.0 for x in s["visibility"]["slices"])


def test_camera_kind_from_image_records_or_render_parts(tmp_path):
    coco = slice_gt()
    gt = ground_truth_from_dict(coco)
    ann = tmp_path / "annotations.json"
    assert camera_of_images(gt, ann) == ({}, None)                # no parts/: nothing known
    (tmp_path / "parts").mkdir()
    for im, kind in ((1, "cctv"), (2, "robot")):                  # image 3 has no part
        (tmp_path / "parts" / f"{im - 1:06d}.json").write_text(json.dumps(
            {"index": im - 1, "image": coco["images"][im - 1], "annotations": [],
             "meta": {"plan": {"camera": kind}}}))
    (tmp_path / "parts" / "000009.json").write_text(json.dumps(  # another set's image: not used
        {"index": 9, "image": {"id": 3, "file_name": "other.png"}, "meta": {"plan": {"camera": "robot"}}}))
    cams, source = camera_of_images(gt, ann)
    assert cams == {1: {"camera": "cctv"}, 2: {"camera": "robot"}} and "parts" in source
    s = evaluate_slices(gt, slice_preds(), cameras=cams, camera_source=source)
    assert s["camera"]["num_images_unknown"] == 1
    assert [(x["name"], x["num_images"], x["num_gt"]) for x in s["camera"]["slices"]] == [("cctv", 1, 2),
                                                                                          ("robot", 1, 3)]
    # the image records' own fields win, camera height included
    coco["images"][0].update(camera="robot", camera_height_m=1.2)
    coco["images"][1].update(camera="cctv", camera_height_m=6.0)
    coco["images"][2].update(camera="cctv", camera_height_m=5.0)
    gt = ground_truth_from_dict(coco)
    cams, source = camera_of_images(gt, ann)
    assert source == "image records" and cams[1] == {"camera": "robot", "camera_height_m": 1.2}
    s = evaluate_slices(gt, slice_preds(), cameras=cams, camera_source=source)
    heights = [(x["name"], x["num_images"], x["num_gt"]) for x in s["camera_height"]["slices"]]
    assert heights == [("[0.0, 2.0) m", 1, 2), ("[2.0, 5.0) m", 0, 0), ("[5.0, inf) m", 2, 4)]
    assert s["camera_height"]["slices"][1]["AP"] is None
    assert s["camera_height"]["slices"][2]["range"] == [5.0, None]
    json.dumps(s, allow_nan=False)
