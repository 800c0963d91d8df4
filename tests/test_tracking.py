"""ByteTrack wrapper and TrackEval scoring, fed with known detections from a generated clip.

The detector is not involved here (it is tested elsewhere): ground-truth boxes stand in for it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers_clip import gt_detections, make_clip

from pipeline.common import UserError
from pipeline.detections import Detections
from pipeline.mot import evaluate_tracking, read_mot, write_mot
from pipeline.sources import Frame
from pipeline.tracking import MultiClassTracker, TrackingConfig, TrackLog
from pipeline.video import frame_record


def run_tracker(clip, num_frames, hide=None, cfg=None, fps=10.0):
    """Feed the clip's ground-truth boxes to the tracker; `hide` = {gt track id: frames without it}.

    Returns (gt id -> set of our track ids, JSONL records, MOT rows of the tracker output).
    """
    gt = gt_detections(clip)
    tracker = MultiClassTracker(cfg or TrackingConfig(), fps=fps)
    seen: dict[int, set] = {}
    records, rows = [], []
    for f in range(num_frames):
        dets = [d for d in gt[f] if f not in (hide or {}).get(d[0], ())]
        boxes = np.array([d[2] for d in dets], np.float32).reshape(-1, 4)
        labels = np.array([d[1] for d in dets], np.int64)
        scores = np.full(len(dets), 0.9, np.float32)
        ids = tracker.update(boxes, scores, labels)
        assert ids.shape == (len(dets),)
        pred = Detections(boxes, scores, labels, track_ids=ids)
        records.append(json.loads(json.dumps(frame_record(Frame(f, f / fps, np.zeros((1, 1, 3), np.uint8),
                                                                f"{f:06d}.png"), pred, False))))
        for d, tid in zip(dets, ids, strict=True):
            if tid >= 0:
                seen.setdefault(d[0], set()).add(int(tid))
                x0, y0, x1, y1 = d[2]
                rows.append([f + 1, int(tid), x0, y0, x1 - x0, y1 - y0, 0.9, d[1], 1.0])
    return seen, records, np.array(rows, np.float64).reshape(-1, 9)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clip") / "clip", num_frames=20)


def test_each_shape_keeps_one_track_id(clip):
    seen, records, _ = run_tracker(clip, 20)
    assert set(seen) == {1, 2}
    assert all(len(ids) == 1 for ids in seen.values()), seen
    assert seen[1] != seen[2]
    # the JSONL records carry the same ids, with class names, on every frame
    ids_by_class: dict[str, set] = {}
    for r in records:
        assert r["type"] == "frame" and len(r["detections"]) == 2
        for d in r["detections"]:
            assert d["track_id"] is not None
            ids_by_class.setdefault(d["class"], set()).add(d["track_id"])
    assert ids_by_class == {"pedestrian": seen[1], "pallet_jack": seen[2]}


def test_id_survives_three_frame_occlusion(clip):
    seen, records, _ = run_tracker(clip, 20, hide={1: {8, 9, 10}})
    assert len(seen[1]) == 1 and len(seen[2]) == 1
    assert [len(r["detections"]) for r in records[8:11]] == [1, 1, 1]


def test_without_buffer_the_id_is_lost(clip):
    # the control for the test above: with no lost-track buffer the returning shape gets a new id
    seen, _, _ = run_tracker(clip, 20, hide={1: {8, 9, 10}}, cfg=TrackingConfig(lost_track_buffer=0))
    assert len(seen[1]) == 2


def test_ids_unique_across_classes_and_low_scores_do_not_start_tracks():
    tracker = MultiClassTracker(TrackingConfig(activation_threshold=0.5), fps=30)
    box = np.array([[10, 10, 50, 80], [10, 10, 50, 80]], np.float32)  # same box, two classes
    for _ in range(3):
        ids = tracker.update(box, np.array([0.9, 0.9]), np.array([1, 2]))
    assert ids[0] != ids[1] and min(ids) >= 1
    assert tracker.track_labels[int(ids[0])] == 1 and tracker.track_labels[int(ids[1])] == 2
    lone = MultiClassTracker(TrackingConfig(activation_threshold=0.5), fps=30)
    for _ in range(3):
        ids = lone.update(box[:1], np.array([0.3]), np.array([1]))
    assert ids.tolist() == [-1]
    assert lone.update(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int)).shape == (0,)


def test_disabled_tracking_gives_no_ids():
    t = MultiClassTracker(TrackingConfig(enabled=False), fps=30)
    assert t.update(np.array([[0, 0, 10, 10]]), np.array([0.9]), np.array([1])).tolist() == [-1]


# ---------------------------------------------------------------- TrackEval scoring

def test_perfect_tracks_score_one_and_occlusion_costs_recall(clip):
    gt = read_mot(clip / "gt" / "gt.txt")
    assert gt.shape == (40, 9)
    _, _, rows = run_tracker(clip, 20)
    m = evaluate_tracking(gt, rows)
    for k in ("HOTA", "MOTA", "IDF1", "DetA", "AssA"):
        assert m["combined"][k] == pytest.approx(1.0), k
    assert m["combined"]["IDSW"] == 0 and m["frames"] == 20
    assert set(m["per_class"]) == {"pedestrian", "pallet_jack"}

    _, _, rows = run_tracker(clip, 20, hide={1: {8, 9, 10}})
    m = evaluate_tracking(gt, rows)
    assert m["per_class"]["pedestrian"]["FN"] == 3
    assert m["per_class"]["pedestrian"]["MOTA"] == pytest.approx(17 / 20)
    assert m["per_class"]["pallet_jack"]["MOTA"] == pytest.approx(1.0)


def test_id_switch_lowers_idf1_not_mota(clip):
    gt = read_mot(clip / "gt" / "gt.txt")
    _, _, rows = run_tracker(clip, 20)
    swapped = rows.copy()
    ped = (swapped[:, 7] == 1) & (swapped[:, 0] > 10)
    swapped[ped, 1] = 99  # the pedestrian's id changes halfway
    m = evaluate_tracking(gt, swapped)["per_class"]["pedestrian"]
    assert m["MOTA"] == pytest.approx(1 - 1 / 20)  # one id switch
    assert m["IDSW"] == 1
    assert m["IDF1"] == pytest.approx(0.5)
    assert m["HOTA"] < 0.9


def test_strided_run_is_scored_on_its_frames(clip):
    gt = read_mot(clip / "gt" / "gt.txt")
    _, _, rows = run_tracker(clip, 20)
    frames = list(range(1, 21, 2))
    m = evaluate_tracking(gt, rows[np.isin(rows[:, 0], frames)], frames=frames)
    assert m["frames"] == 10 and m["combined"]["MOTA"] == pytest.approx(1.0)


def test_dont_care_rows_are_not_scored(clip):
    gt = read_mot(clip / "gt" / "gt.txt")
    gt[gt[:, 7] == 2, 6] = 0  # pallet jack marked "don't care"
    _, _, rows = run_tracker(clip, 20)
    m = evaluate_tracking(gt, rows)
    assert set(m["per_class"]) == {"pedestrian"}
    assert m["combined"]["FP"] == 0  # its tracker boxes are dropped, not counted as false positives


def test_mot_round_trip_and_errors(tmp_path):
    rows = np.array([[1, 3, 1.5, 2.5, 10, 20, 0.9, 1, 1.0], [2, 3, 2.5, 2.5, 10, 20, 0.8, 2, 0.5]])
    p = write_mot(tmp_path / "t.txt", rows)
    np.testing.assert_allclose(read_mot(p), rows, atol=1e-2)
    (tmp_path / "short.txt").write_text("1,2,3\n")
    with pytest.raises(UserError, match=r"short.txt:1: expected at least 6"):
        read_mot(tmp_path / "short.txt")
    (tmp_path / "nan.txt").write_text("1,2,3,4,5,x\n")
    with pytest.raises(UserError, match="non-numeric"):
        read_mot(tmp_path / "nan.txt")
    with pytest.raises(UserError, match="not found"):
        read_mot(tmp_path / "missing.txt")
    dup = np.array([[1, 3, 0, 0, 5, 5, 1, 1, 1], [1, 3, 9, 9, 5, 5, 1, 1, 1]], np.float64)
    with pytest.raises(UserError, match="twice"):
        evaluate_tracking(dup[:1], dup)


# ---------------------------------------------------------------- scoring inside the video CLI

def test_scorer_gives_perfect_scores_to_ground_truth_on_a_resized_clip(tmp_path):
    """Video-side scoring: predictions on half-size frames are mapped back to the clip's pixels."""
    from pycocotools import mask as mask_utils

    from pipeline.sources import open_source
    from pipeline.video import Scorer, ScoringConfig

    clip = make_clip(tmp_path / "clip", num_frames=20, width=160, height=120)  # slow enough for IoU matching
    src = open_source(str(clip), max_side=80)
    assert src.size == (80, 60) and src.scale == 0.5
    coco = json.loads((clip / "annotations.json").read_text())
    scorer = Scorer(src, ScoringConfig())
    tracker = MultiClassTracker(TrackingConfig(), fps=src.out_fps)
    for frame in src:
        anns = [a for a in coco["annotations"] if a["image_id"] == frame.index + 1]
        full = np.stack([mask_utils.decode(a["segmentation"]) for a in anns]).astype(bool)
        pred = Detections(boxes=np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                                         np.float32) * 0.5,
                          labels=np.array([a["category_id"] for a in anns]), scores=np.full(len(anns), 0.9),
                          masks=full[:, ::2, ::2])
        scorer.add(frame, pred.with_tracks(tracker.update(pred.boxes, pred.scores, pred.labels)))
    m = scorer.score()
    assert m["detection"]["images"] == 20
    assert m["detection"]["bbox"]["AP"] == pytest.approx(1.0)
    assert m["detection"]["segm"]["AP"] > 0.9  # nearest-neighbour upsampling of half-size masks
    assert m["tracking"]["combined"]["MOTA"] == pytest.approx(1.0)
    assert m["tracking"]["combined"]["IDF1"] == pytest.approx(1.0)


def test_coco_to_mot_rows_keeps_tracked_annotations_in_frame_order():
    from pipeline.mot import coco_to_mot_rows

    coco = {"images": [{"id": 1, "frame_index": 1}, {"id": 2, "frame_index": 0}, {"id": 3}],
            "annotations": [
                {"image_id": 1, "track_id": 4, "bbox": [1, 2, 3, 4], "category_id": 2, "visibility": 0.5},
                {"image_id": 2, "track_id": 9, "bbox": [5, 6, 7, 8], "category_id": 1, "iscrowd": 1},
                {"image_id": 2, "track_id": 3, "bbox": [0, 0, 1, 1], "category_id": 1},
                {"image_id": 1, "bbox": [0, 0, 1, 1], "category_id": 1},                 # no track
                {"image_id": 3, "track_id": 5, "bbox": [0, 0, 1, 1], "category_id": 1}]}  # no frame
    np.testing.assert_array_equal(coco_to_mot_rows(coco), [[1, 3, 0, 0, 1, 1, 1, 1, 1.0],
                                                            [1, 9, 5, 6, 7, 8, 0, 1, 1.0],
                                                            [2, 4, 1, 2, 3, 4, 1, 2, 0.5]])


def test_missing_trackeval_is_one_line_naming_the_install(monkeypatch):
    import builtins

    from pipeline import mot

    real_import = builtins.__import__

    def no_trackeval(name, *a, **k):
        if name == "trackeval":
            raise ImportError("No module named 'trackeval'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_trackeval)
    rows = np.array([[1, 1, 0, 0, 5, 5, 1, 1, 1]], np.float64)
    with pytest.raises(mot.TrackEvalMissing, match=r"pip install --no-deps trackeval==1\.0\.0") as e:
        mot.evaluate_tracking(rows, rows)
    assert isinstance(e.value, UserError) and "\n" not in str(e.value)


def test_track_log_counts_tracks_that_last_and_are_seen_most_of_their_span():
    log = TrackLog()
    for f in range(30):                      # 3.0 s at 10 fps, seen every frame
        log.add("pedestrian", 1, f)
    for f in range(0, 60):                   # 6 s but seen in 2 of 3 frames (< 80 %)
        if f % 3 or f in (0, 59):
            log.add("pedestrian", 2, f)
    for f in range(10, 70):                  # 6 s, one gap of 5 frames (55 of 60: 92 %)
        if not 30 <= f < 35:
            log.add("pedestrian", 3, f)
    for f in range(29):                      # 2.9 s: short of 3 s
        log.add("pedestrian", 4, f)
    log.add("pallet_jack", 7, 3)
    log.add("pallet_jack", 7, 3)             # the same frame twice counts once
    assert log.spans["pallet_jack"][7] == [3, 3, 1]
    assert log.count("pedestrian") == 4 and log.count("pallet_jack") == 1 and log.count("other") == 0
    assert log.stable("pedestrian", 10.0, 3) == 2             # tracks 1 and 3
    assert log.stable("pedestrian", 10.0, 5) == 1             # track 3
    assert log.stable("pedestrian", 10.0, 5, min_coverage=0.6) == 2
    assert log.stable("pedestrian", 5.0, 5) == 3              # at 5 fps 25 frames are 5 s: 1, 3 and 4
    assert log.summary("pedestrian", 10.0) == {"tracks": 4, "stable_tracks": {"3s": 2, "5s": 1}}
    assert log.summary("pallet_jack", 10.0) == {"tracks": 1, "stable_tracks": {"3s": 0, "5s": 0}}
