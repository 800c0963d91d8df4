"""The analytics of one video run: detections -> floor positions -> rule events (OUT.jsonl,
OUT.events.csv), the overlay of each frame, and the `analytics` object of OUT.summary.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from pipeline.analytics.clip_truth import events_from_rows, read_floor_truth
from pipeline.analytics.events import Event, EventsCsv
from pipeline.analytics.footprint import footprints
from pipeline.analytics.overlay import Overlay, OverlayFrame
from pipeline.analytics.rules import FloorTrack, RuleEngine
from pipeline.analytics.rules_config import load_rules
from pipeline.analytics.scoring import AnalyticsScorer
from pipeline.common import CLASS_NAMES
from pipeline.detections import Detections


def _gt_boxes(ann_path: Path) -> dict[int, list[tuple[int, list[float]]]]:
    coco = json.loads(ann_path.read_text())
    frame_of = {im["id"]: im.get("frame_index", im["id"] - 1) for im in coco["images"]}
    out: dict[int, list] = {}
    for a in coco["annotations"]:
        if a.get("iscrowd", 0):
            continue
        x, y, w, h = a["bbox"]
        out.setdefault(frame_of[a["image_id"]], []).append((a.get("track_id", a["id"]), [x, y, x + w, y + h]))
    return out


class VideoAnalytics:
    """Checked and loaded at start (bad rules leave no outputs); `open()` once outputs may be written."""

    def __init__(self, rules_path: str | Path, source, size: tuple[int, int]):
        self.rules_path = Path(rules_path)
        self.rules, floor = load_rules(self.rules_path)
        self.floor = floor.for_frame(*size, where=str(self.rules_path))
        self.engine = RuleEngine(self.rules)
        self.overlay = Overlay(self.rules, self.floor)
        self.events: list[Event] = []
        self.seconds = 0.0          # main-thread time in update(); the writer adds its drawing time
        self.draw_seconds = 0.0
        self.last = (0, 0.0)
        self.scorer = None
        self.truth_rows = None
        self.source = source
        root = getattr(source, "root", None)
        ann = getattr(source, "annotations", None)
        if root is not None and ann is not None:
            self.truth_rows = read_floor_truth(root)
            if self.truth_rows is not None:
                self.scorer = AnalyticsScorer(_gt_boxes(ann), self.truth_rows)
        self.csv: EventsCsv | None = None

    def open(self, events_path: Path) -> None:
        self.csv = EventsCsv(events_path)

    def update(self, frame, dets: Detections) -> tuple[list[Event], OverlayFrame]:
        t0 = time.perf_counter()
        tids = dets.track_ids if dets.track_ids is not None else np.full(len(dets), -1)
        px = footprints(dets.boxes, dets.masks) if len(dets) else np.zeros((0, 2))
        xy = self.floor.to_floor(px) if len(px) else np.zeros((0, 2))
        pts, pix = [], {}
        for i in range(len(dets)):
            if tids[i] >= 0 and np.isfinite(xy[i]).all():
                pts.append(FloorTrack(int(tids[i]), CLASS_NAMES[int(dets.labels[i])], float(xy[i, 0]), float(xy[i, 1])))
                pix[int(tids[i])] = (float(px[i, 0]), float(px[i, 1]))
        events = self.engine.update(frame.index, frame.timestamp, pts)
        self.last = (frame.index, frame.timestamp)
        self._record(events)
        if self.scorer is not None:
            scale = getattr(self.source, "scale", 1.0)
            self.scorer.add(frame.index, tids, dets.boxes / scale, xy)
        c = self.engine.counts
        ov = OverlayFrame(
            zone_text=[f"{z.name}: {c[z.name]['inside']} in, {c[z.name]['enter']} entered" for z in self.rules.zones],
            zone_alert=[c[z.name]["inside"] > 0 for z in self.rules.zones],
            line_text=[f"{r.name} in {sum(c[r.name]['in'].values())} out {sum(c[r.name]['out'].values())}"
                       for r in self.rules.lines],
            links=[(pix[a], pix[b], d) for a, b, d in self.engine.near_pairs if a in pix and b in pix])
        self.seconds += time.perf_counter() - t0
        return events, ov

    def _record(self, events: list[Event]) -> None:
        self.events += events
        if self.csv is not None:
            for e in events:
                self.csv.write(e)

    def close(self) -> list[Event]:
        """Closes open visits and passes at the last frame; returns those events."""
        events = self.engine.finish(*self.last)
        self._record(events)
        if self.csv is not None:
            self.csv.close()
        return events

    def summary(self, total_seconds: float) -> dict:
        out = {"rules": str(self.rules_path), "events": len(self.events), "per_rule": self.engine.summary(),
               "seconds": round(self.seconds + self.draw_seconds, 4),
               "share_of_run": round((self.seconds + self.draw_seconds) / total_seconds, 4) if total_seconds > 0 else None}
        if self.scorer is not None:
            true_events = events_from_rows(self.rules, self.truth_rows)
            out.update(self.scorer.score(self.events, true_events))
        return out
