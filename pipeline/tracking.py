"""Multi-object tracking: supervision's ByteTrack, one tracker per class, ids unique across classes.

One tracker per class keeps a pedestrian from inheriting a pallet jack's id when boxes
overlap. Each detection keeps its position: `update()` returns one id per input detection,
-1 where ByteTrack did not (yet) confirm a track.
"""

from __future__ import annotations

import warnings

import numpy as np
from pydantic import Field

from pipeline.common import StrictModel


class TrackingConfig(StrictModel):
    enabled: bool = True
    # detections above this score may start a track; lower ones can only continue one
    activation_threshold: float = Field(0.5, ge=0, le=1)
    # frames (at 30 fps; scaled by the real rate) a lost track waits for its object to return
    lost_track_buffer: int = Field(30, ge=0)
    # ByteTrack's matching cut on 1 - IoU: 0.8 matches boxes overlapping by IoU > 0.2
    matching_threshold: float = Field(0.8, ge=0, le=1)
    min_consecutive_frames: int = Field(1, ge=1)
    per_class: bool = True   # False: one tracker for all classes (ids may then jump class)


def _bytetrack_class():
    with warnings.catch_warnings():  # 0.30 warns that ByteTrack moves to the `trackers` package
        warnings.simplefilter("ignore")
        import supervision as sv
    return sv


class MultiClassTracker:
    def __init__(self, cfg: TrackingConfig, fps: float):
        self.cfg = cfg
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._sv = _bytetrack_class()
        self._trackers: dict[int, object] = {}
        self._global: dict[tuple[int, int], int] = {}   # (class key, ByteTrack id) -> our id
        self._next_id = 1
        self.track_labels: dict[int, int] = {}            # our id -> class label

    def _tracker(self, key: int):
        t = self._trackers.get(key)
        if t is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t = self._sv.ByteTrack(track_activation_threshold=self.cfg.activation_threshold,
                                       lost_track_buffer=self.cfg.lost_track_buffer,
                                       minimum_matching_threshold=self.cfg.matching_threshold,
                                       frame_rate=self.fps,
                                       minimum_consecutive_frames=self.cfg.min_consecutive_frames)
            self._trackers[key] = t
        return t

    def update(self, boxes_xyxy: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """One frame's detections -> track id per detection (-1: not tracked)."""
        boxes = np.asarray(boxes_xyxy, dtype=np.float32).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        ids = np.full(len(boxes), -1, dtype=np.int64)
        if not self.cfg.enabled:
            return ids
        keys = sorted(set(labels.tolist()) | set(self._trackers)) if self.cfg.per_class else [0]
        for key in keys:
            sel = np.nonzero(labels == key)[0] if self.cfg.per_class else np.arange(len(boxes))
            # every tracker sees every frame (an empty one too) so its lost-track clock runs
            dets = self._sv.Detections(xyxy=boxes[sel].reshape(-1, 4), confidence=scores[sel],
                                       class_id=labels[sel], data={"index": sel})
            out = self._tracker(key).update_with_detections(dets)
            if len(out) == 0:
                continue
            for idx, tid in zip(out.data["index"], out.tracker_id, strict=True):
                gk = (key, int(tid))
                if gk not in self._global:
                    self._global[gk] = self._next_id
                    self.track_labels[self._next_id] = int(labels[idx])
                    self._next_id += 1
                ids[int(idx)] = self._global[gk]
        return ids

    @property
    def num_tracks(self) -> int:
        return self._next_id - 1


STABLE_SECONDS = (3, 5)   # what the video summary counts stable tracks at
STABLE_COVERAGE = 0.8     # ... when the object was detected in at least this share of the span


class TrackLog:
    """First frame, last frame and number of frames of every track, per class: a video
    without ground truth is judged by how many of its tracks last, not by how many start."""

    def __init__(self):
        self.spans: dict[str, dict[int, list[int]]] = {}  # class -> id -> [first, last, frames seen]

    def add(self, cls: str, track_id: int, frame: int) -> None:
        s = self.spans.setdefault(cls, {}).get(track_id)
        if s is None:
            self.spans[cls][track_id] = [frame, frame, 1]
        elif frame != s[1]:
            s[1], s[2] = frame, s[2] + 1

    def count(self, cls: str) -> int:
        return len(self.spans.get(cls, {}))

    def stable(self, cls: str, fps: float, seconds: float, min_coverage: float = STABLE_COVERAGE) -> int:
        """Tracks spanning at least `seconds` (first to last frame, at `fps` processed frames
        per second) with their object detected in at least `min_coverage` of those frames."""
        n = 0
        for first, last, seen in self.spans.get(cls, {}).values():
            span = last - first + 1
            n += span >= seconds * fps and seen >= min_coverage * span
        return n

    def summary(self, cls: str, fps: float) -> dict:
        return {"tracks": self.count(cls),
                "stable_tracks": {f"{s}s": self.stable(cls, fps, s) for s in STABLE_SECONDS}}
