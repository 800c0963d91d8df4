"""Scores the analytics of a run against a clip's ground truth.

Run tracks are tied to true tracks by box overlap (IoU >= 0.5, greedy per frame, majority per
run track). An event matches a true one of the same rule and event with the same (mapped)
tracks within +-0.5 s; floor error is measured on every matched detection.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from pipeline.analytics.events import SCORED, Event

MATCH_S = 0.5
IOU_MIN = 0.5


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class AnalyticsScorer:
    """Collects (frame, run track, box, floor) per processed frame; scores at the end."""

    def __init__(self, gt_boxes: dict[int, list[tuple[int, list[float]]]], truth_rows: list[dict]):
        self.gt_boxes = gt_boxes   # frame_index -> [(true track, xyxy in source pixels)]
        self.truth = {(r["frame_index"], r["track_id"]): (r["x"], r["y"]) for r in truth_rows}
        self.cls = {r["track_id"]: r.get("class", "") for r in truth_rows}
        self.pairs: list[tuple[int, int, int, float, float]] = []   # frame, run track, true track, x, y
        self.votes: dict[int, Counter] = defaultdict(Counter)

    def add(self, frame_index: int, track_ids, boxes_src: np.ndarray, floor_xy: np.ndarray) -> None:
        cands = []
        gts = self.gt_boxes.get(frame_index, [])
        for i, tid in enumerate(track_ids):
            if tid < 0:
                continue
            for g, (_, gbox) in enumerate(gts):
                iou = _iou(boxes_src[i], gbox)
                if iou >= IOU_MIN:
                    cands.append((iou, i, g))
        used_d, used_g = set(), set()
        for _, i, g in sorted(cands, reverse=True):
            if i in used_d or g in used_g:
                continue
            used_d.add(i)
            used_g.add(g)
            tid, gtid = int(track_ids[i]), gts[g][0]
            self.votes[tid][gtid] += 1
            self.pairs.append((frame_index, tid, gtid, float(floor_xy[i, 0]), float(floor_xy[i, 1])))

    def track_map(self) -> dict[int, int]:
        return {tid: c.most_common(1)[0][0] for tid, c in self.votes.items()}

    def score(self, events: list[Event], true_events: list[Event]) -> dict:
        tmap = self.track_map()
        errs, per_class = [], defaultdict(list)
        for fi, tid, gtid, x, y in self.pairs:
            if tmap.get(tid) != gtid or (fi, gtid) not in self.truth or not np.isfinite([x, y]).all():
                continue
            tx, ty = self.truth[(fi, gtid)]
            e = float(np.hypot(x - tx, y - ty))
            errs.append(e)
            per_class[self.cls[gtid]].append(e)
        pred = [e for e in events if e.event in SCORED]
        true = [e for e in true_events if e.event in SCORED]

        def key(e: Event, mapped: bool) -> tuple:
            m = (lambda t: tmap.get(t, -t - 1_000_000)) if mapped else (lambda t: t)
            other = None if e.other_track_id is None else m(e.other_track_id)
            return e.rule, e.event, m(e.track_id), other

        cands = []
        for i, p in enumerate(pred):
            for j, t in enumerate(true):
                dt = abs(p.timestamp - t.timestamp)
                if key(p, True) == key(t, False) and dt <= MATCH_S + 1e-9:
                    cands.append((dt, i, j))
        used_p, used_t = set(), set()
        for _, i, j in sorted(cands):
            if i not in used_p and j not in used_t:
                used_p.add(i)
                used_t.add(j)
        matched = len(used_p)
        per_rule = {}
        for rule in sorted({e.rule for e in pred} | {e.rule for e in true}):
            np_ = sum(1 for i, e in enumerate(pred) if e.rule == rule)
            nt = sum(1 for e in true if e.rule == rule)
            nm = sum(1 for i in used_p if pred[i].rule == rule)
            per_rule[rule] = {"predicted": np_, "true": nt, "matched": nm}
        line_err = {}
        for rule in sorted({e.rule for e in (*pred, *true) if e.kind == "line"}):
            c_p = Counter((e.event, e.cls) for e in pred if e.rule == rule)
            c_t = Counter((e.event, e.cls) for e in true if e.rule == rule)
            line_err[rule] = sum(abs(c_p[k] - c_t[k]) for k in set(c_p) | set(c_t))
        def q(v, p):
            return (round(float(np.percentile(v, p)), 4) if v else None)
        return {
            "precision": round(matched / len(pred), 4) if pred else (1.0 if not true else 0.0),
            "recall": round(matched / len(true), 4) if true else (1.0 if not pred else None),
            "event_matches": {"predicted": len(pred), "true": len(true), "matched": matched, "tolerance_s": MATCH_S},
            "per_rule": per_rule,
            "floor_error_m": {"median": q(errs, 50), "p90": q(errs, 90), "detections": len(errs),
                              "per_class": {str(g): {"median": q(v, 50), "p90": q(v, 90)}
                                            for g, v in sorted(per_class.items())}},
            "line_count_error": line_err,
            "track_map": {str(k): v for k, v in sorted(tmap.items())},
        }
