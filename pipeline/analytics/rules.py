"""The rules applied frame by frame to tracked floor positions; events come out in the same call.

Every event is decided on the frame that causes it (a live camera alerts with no delay beyond
the tracker's): zones use supervision's PolygonZone for "inside" and LineZone counts crossings,
both fed the floor positions in place of image boxes. Hysteresis is per track: a zone visit
ends only beyond `release_m` outside the polygon, a near pass only beyond max_distance_m +
release_m, and either when the track has been unseen for `lost_s`; so one pass is one event.
"""

from __future__ import annotations

import math
import warnings
from collections import defaultdict, deque
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.analytics.events import Event
from pipeline.analytics.rules_config import ProximityRule, RulesConfig, ZoneRule

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import supervision as sv

ZONE_GRID_M = 0.01   # PolygonZone rasterises its polygon: floor metres -> centimetre pixels


@dataclass
class FloorTrack:
    """One tracked object's floor position in a frame."""

    track_id: int
    cls: str
    x: float
    y: float


def _point_dets(points: list[FloorTrack], scale: float = 1.0, offset=(0.0, 0.0)) -> sv.Detections:
    """Floor points as zero-size supervision boxes (every anchor is the point itself)."""
    xy = np.array([[p.x, p.y] for p in points], dtype=np.float64).reshape(-1, 2)
    xy = (xy - np.asarray(offset)) / scale
    return sv.Detections(xyxy=np.c_[xy, xy].astype(np.float32),
                         tracker_id=np.array([p.track_id for p in points], dtype=int),
                         class_id=np.zeros(len(points), dtype=int))


class _Zone:
    def __init__(self, rule: ZoneRule):
        self.rule = rule
        poly = np.asarray(rule.polygon, dtype=np.float64)
        self.offset = poly.min(axis=0) - 1.0   # PolygonZone's mask starts at 0: shift the polygon in
        grid = np.round((poly - self.offset) / ZONE_GRID_M).astype(np.int64)
        self.zone = sv.PolygonZone(grid, triggering_anchors=(sv.Position.CENTER,))
        self.contour = poly.astype(np.float32).reshape(-1, 1, 2)
        self.inside: dict[int, tuple[float, int]] = {}   # track -> (entered at, dwell event raised)

    def outside_by(self, p: FloorTrack) -> float:
        return -cv2.pointPolygonTest(self.contour, (float(p.x), float(p.y)), True)


@dataclass
class _Pass:
    start: float
    min_distance: float


@dataclass
class _TrackState:
    history: deque = field(default_factory=deque)   # (t, x, y) over the speed window
    last_seen: float = 0.0
    cls: str = ""
    x: float = 0.0
    y: float = 0.0


class RuleEngine:
    def __init__(self, rules: RulesConfig):
        self.rules = rules
        self.zones = [_Zone(z) for z in rules.zones]
        self.lines = [(r, sv.LineZone(sv.Point(*r.start), sv.Point(*r.end),
                                      triggering_anchors=(sv.Position.CENTER,))) for r in rules.lines]
        self.passes: list[dict[tuple[int, int], _Pass]] = [{} for _ in rules.proximity]
        self.tracks: dict[int, _TrackState] = {}
        self.counts: dict[str, dict] = {}
        self.near_pairs: list[tuple[int, int, float]] = []   # this frame's too-close pairs (overlay)
        for r in rules.zones:
            self.counts[r.name] = {"kind": "zone", "enter": 0, "dwell": 0, "exit": 0, "inside": 0}
        for r in rules.lines:
            self.counts[r.name] = {"kind": "line", "in": defaultdict(int), "out": defaultdict(int)}
        for r in rules.proximity:
            self.counts[r.name] = {"kind": "proximity", "start": 0, "end": 0, "active": 0}

    # ------------------------------------------------------------ per frame

    def speed(self, track_id: int) -> float | None:
        h = self.tracks[track_id].history
        if len(h) < 2 or h[-1][0] - h[0][0] <= 0:
            return None
        return math.hypot(h[-1][1] - h[0][1], h[-1][2] - h[0][2]) / (h[-1][0] - h[0][0])

    def update(self, frame_index: int, t: float, points: list[FloorTrack]) -> list[Event]:
        """One frame's tracked floor positions (finite x, y) -> the events it raises."""
        for p in points:
            st = self.tracks.setdefault(p.track_id, _TrackState())
            st.history.append((t, p.x, p.y))
            while st.history and st.history[0][0] < t - self.rules.speed_window_s - 1e-9:
                st.history.popleft()
            st.last_seen, st.cls, st.x, st.y = t, p.cls, p.x, p.y
        events: list[Event] = []
        events += self._zones(frame_index, t, points)
        events += self._lines(frame_index, t, points)
        events += self._proximity(frame_index, t, points)
        for tid in [k for k, st in self.tracks.items() if t - st.last_seen > self.rules.lost_s + 1e-9]:
            del self.tracks[tid]
        return events

    def finish(self, frame_index: int, t: float) -> list[Event]:
        """Close what is still open at the end of the stream (`exit` / `end` events)."""
        events = []
        for z in self.zones:
            for tid in list(z.inside):
                events.append(self._zone_exit(z, tid, frame_index, t))
        for r, passes in zip(self.rules.proximity, self.passes, strict=True):
            for key in list(passes):
                events.append(self._pass_end(r, passes, key, frame_index, t))
        return events

    def _ev(self, rule, kind, event, fi, t, tid, **kw) -> Event:
        st = self.tracks[tid]
        return Event(rule=rule, kind=kind, event=event, frame_index=fi, timestamp=t, track_id=tid,
                     cls=st.cls, x=st.x, y=st.y, **kw)

    # ------------------------------------------------------------ zones

    def _zone_exit(self, z: _Zone, tid: int, fi: int, t: float) -> Event:
        entered, _ = z.inside.pop(tid)
        self.counts[z.rule.name]["exit"] += 1
        end = min(t, self.tracks[tid].last_seen) if tid in self.tracks else t
        if tid not in self.tracks:  # forgotten already: report from the last known position
            return Event(rule=z.rule.name, kind="zone", event="exit", frame_index=fi, timestamp=t,
                         track_id=tid, cls="", x=float("nan"), y=float("nan"), dwell_s=end - entered)
        return self._ev(z.rule.name, "zone", "exit", fi, t, tid, dwell_s=end - entered)

    def _zones(self, fi: int, t: float, points: list[FloorTrack]) -> list[Event]:
        events = []
        for z in self.zones:
            sel = [p for p in points if p.cls in z.rule.classes]
            hit = z.zone.trigger(_point_dets(sel, ZONE_GRID_M, z.offset)) if sel else np.zeros(0, bool)
            for p, inside in zip(sel, hit, strict=True):
                if p.track_id not in z.inside:
                    if inside:
                        z.inside[p.track_id] = (t, 0)
                        self.counts[z.rule.name]["enter"] += 1
                        events.append(self._ev(z.rule.name, "zone", "enter", fi, t, p.track_id))
                elif not inside and z.outside_by(p) > z.rule.release_m:
                    events.append(self._zone_exit(z, p.track_id, fi, t))
            for tid, (entered, dwelt) in list(z.inside.items()):
                st = self.tracks.get(tid)
                if st is None or t - st.last_seen > self.rules.lost_s:
                    events.append(self._zone_exit(z, tid, fi, t))
                elif z.rule.max_dwell_s and not dwelt and t - entered >= z.rule.max_dwell_s - 1e-9:
                    z.inside[tid] = (entered, 1)
                    self.counts[z.rule.name]["dwell"] += 1
                    events.append(self._ev(z.rule.name, "zone", "dwell", fi, t, tid, dwell_s=t - entered))
            self.counts[z.rule.name]["inside"] = len(z.inside)
        return events

    # ------------------------------------------------------------ lines

    def _lines(self, fi: int, t: float, points: list[FloorTrack]) -> list[Event]:
        events = []
        for r, lz in self.lines:
            sel = [p for p in points if p.cls in r.classes]
            if not sel:
                continue
            crossed_in, crossed_out = lz.trigger(_point_dets(sel))
            for p, i, o in zip(sel, crossed_in, crossed_out, strict=True):
                for flag, name in ((i, "in"), (o, "out")):
                    if flag:
                        self.counts[r.name][name][p.cls] += 1
                        events.append(self._ev(r.name, "line", name, fi, t, p.track_id))
        return events

    # ------------------------------------------------------------ proximity

    def _pass_end(self, r: ProximityRule, passes: dict, key: tuple[int, int], fi: int, t: float) -> Event:
        ps = passes.pop(key)
        self.counts[r.name]["end"] += 1
        a, b = key
        cls_b = self.tracks[b].cls if b in self.tracks else r.b
        if a in self.tracks:
            return self._ev(r.name, "proximity", "end", fi, t, a, other_track_id=b, other_cls=cls_b,
                            distance_m=ps.min_distance, dwell_s=t - ps.start)
        return Event(rule=r.name, kind="proximity", event="end", frame_index=fi, timestamp=t, track_id=a,
                     cls=r.a, x=float("nan"), y=float("nan"), other_track_id=b, other_cls=cls_b,
                     distance_m=ps.min_distance, dwell_s=t - ps.start)

    def _proximity(self, fi: int, t: float, points: list[FloorTrack]) -> list[Event]:
        events = []
        self.near_pairs = []
        for r, passes in zip(self.rules.proximity, self.passes, strict=True):
            pa = [p for p in points if p.cls == r.a]
            pb = [p for p in points if p.cls == r.b and p.track_id not in {q.track_id for q in pa}]
            seen = set()
            for a in pa:
                for b in pb:
                    key = (a.track_id, b.track_id)
                    d = math.hypot(a.x - b.x, a.y - b.y)
                    seen.add(key)
                    if key in passes:
                        ps = passes[key]
                        ps.min_distance = min(ps.min_distance, d)
                        if d > r.max_distance_m + r.release_m:
                            events.append(self._pass_end(r, passes, key, fi, t))
                        else:
                            self.near_pairs.append((a.track_id, b.track_id, d))
                        continue
                    if d > r.max_distance_m:
                        continue
                    v = self.speed(b.track_id)
                    if r.min_speed_mps is not None and (v is None or v < r.min_speed_mps):
                        continue
                    passes[key] = _Pass(t, d)
                    self.counts[r.name]["start"] += 1
                    self.near_pairs.append((a.track_id, b.track_id, d))
                    events.append(self._ev(r.name, "proximity", "start", fi, t, a.track_id, other_track_id=b.track_id,
                                           other_cls=b.cls, distance_m=d, speed_mps=v))
            for key in [k for k in passes if k not in seen]:
                last = min(self.tracks[i].last_seen if i in self.tracks else -math.inf for i in key)
                if t - last > self.rules.lost_s:
                    events.append(self._pass_end(r, passes, key, fi, t))
            self.counts[r.name]["active"] = len(passes)
        return events

    def summary(self) -> dict:
        out = {}
        for name, c in self.counts.items():
            c = dict(c)
            for k in ("in", "out"):
                if k in c:
                    c[k] = dict(sorted(c[k].items()))
            out[name] = c
        return out
