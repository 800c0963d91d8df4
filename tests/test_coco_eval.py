"""COCO scoring against hand-built cases with known answers (no model involved)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers_coco import load_coco

from pipeline.coco_eval import (
    ann_to_mask,
    confusion_matrix,
    evaluate_coco,
    f1_optimal_threshold,
    ground_truth_from_dict,
    load_ground_truth,
)
from pipeline.common import UserError
from pipeline.rle import encode as encode_mask

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
