"""Ground truth of a rendered clip for the analytics: its calibration, the true floor position of
every labelled object per frame, and (scenario clips) the rules and the events they raise.

Written by blender.clip from the parts' `meta` (torch-free, like everything blender/ imports);
read by the video scorer. Files: docs/DESIGN.md section 6.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import yaml

from pipeline.analytics.events import Event, write_events_csv
from pipeline.analytics.rules import FloorTrack, RuleEngine
from pipeline.analytics.rules_config import RulesConfig
from pipeline.common import CLASS_NAMES, UserError, atomic_write_text

CALIBRATION = "calibration.yaml"
RULES = "rules.yaml"
FLOOR = "truth/floor.csv"
EVENTS = "truth/events.csv"
FLOOR_COLUMNS = ["frame_index", "timestamp", "track_id", "class", "x", "y", "visible"]


def clip_calibration(size: tuple[int, int], camera_matrix, lens: dict | None) -> dict:
    """A rendered camera's calibration.yaml (a CalibrationConfig): its exact 3x4 projection,
    rounded as written; with a calibrated lens (`lens`: camera_matrix, dist_coeffs,
    distortion_model) the projection is into the lens's undistorted pixels."""
    calib = {"image_size": [int(v) for v in size],
             "camera_matrix": np.asarray(camera_matrix, np.float64).round(8).tolist()}
    if lens is not None:
        calib["lens"] = {"camera_matrix": np.asarray(lens["camera_matrix"], np.float64).tolist(),
                         "dist_coeffs": np.asarray(lens["dist_coeffs"], np.float64).ravel().tolist(),
                         "distortion_model": lens["distortion_model"]}
    return calib


def truth_rows(coco: dict, metas: dict[int, dict], fps: float) -> list[dict]:
    """One row per (frame, labelled object): its true footprint and whether it is annotated
    (visible, not crowd) in that frame."""
    frame_of = {im["id"]: im.get("frame_index", im["id"] - 1) for im in coco["images"]}
    cls_of: dict[int, int] = {}
    visible = set()
    for a in coco["annotations"]:
        tid = a.get("track_id", a.get("instance_id"))
        cls_of[tid] = a["category_id"]
        if not a.get("iscrowd", 0):
            visible.add((frame_of[a["image_id"]], tid))
    rows = []
    for k in sorted(metas):
        for tid_s, (x, y) in sorted(metas[k].get("floor", {}).items(), key=lambda kv: int(kv[0])):
            tid = int(tid_s)
            if tid not in cls_of:   # never visible in the whole clip: its class is unknown
                continue
            rows.append({"frame_index": k, "timestamp": round(k / fps, 4), "track_id": tid,
                         "class": CLASS_NAMES[cls_of[tid]], "x": x, "y": y, "visible": int((k, tid) in visible)})
    return rows


def events_from_rows(rules: RulesConfig, rows: list[dict]) -> list[Event]:
    """The rules run on true positions, visible objects only: what a perfect detector reports."""
    by_frame: dict[int, list[dict]] = defaultdict(list)
    for r in rows:
        by_frame[int(r["frame_index"])].append(r)
    engine, events = RuleEngine(rules), []
    frames = sorted(by_frame)
    for k in frames:
        pts = [FloorTrack(int(r["track_id"]), r["class"], float(r["x"]), float(r["y"]))
               for r in by_frame[k] if int(r["visible"])]
        events += engine.update(k, float(by_frame[k][0]["timestamp"]), pts)
    if frames:
        events += engine.finish(frames[-1], float(by_frame[frames[-1]][0]["timestamp"]))
    return events


def write_clip_truth(out: Path, coco: dict, fps: float, static_camera: bool, size: tuple[int, int],
                     rules: dict | None) -> str:
    """Writes the truth files of a merged clip; returns ", file, ..." for the summary line."""
    metas = {}
    for p in sorted((out / "parts").glob("*.json")):
        rec = json.loads(p.read_text())
        metas[int(rec["index"])] = rec.get("meta", {})
    if not metas or not all("floor" in m for m in metas.values()):
        return ""   # parts from before floor truth existed: nothing to add
    written = []
    first = metas[min(metas)]
    if static_camera and "camera_matrix" in first:
        calib = clip_calibration(size, first["camera_matrix"], first.get("lens"))
        what = ("# the render camera: world (x, y, z, 1) -> pixels (u*w, v*w, w)\n" if "lens" not in calib else
                "# the calibrated camera: world (x, y, z, 1) -> undistorted pixels (u*w, v*w, w) of lens.camera_matrix;\n"
                "# frame pixels are undistorted by the lens (OpenCV) first\n")
        atomic_write_text(out / CALIBRATION, what + yaml.safe_dump(calib, default_flow_style=None, sort_keys=False))
        written.append(CALIBRATION)
    rows = truth_rows(coco, metas, fps)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=FLOOR_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / FLOOR, buf.getvalue())
    written.append(FLOOR)
    if rules is not None:
        cfg = RulesConfig(calibration=CALIBRATION, **rules)
        atomic_write_text(out / RULES, "# the rules this scenario exercises (floor metres, world x/y)\n"
                          + yaml.safe_dump(cfg.model_dump(mode="json", exclude_defaults=False),
                                           default_flow_style=None, sort_keys=False))
        write_events_csv(out / EVENTS, events_from_rows(cfg, rows))
        written += [RULES, EVENTS]
    return "".join(f", {n}" for n in written)


def read_floor_truth(clip_dir: str | Path) -> list[dict] | None:
    """truth/floor.csv rows (typed), or None when the clip has none."""
    path = Path(clip_dir) / FLOOR
    if not path.is_file():
        return None
    rows = []
    with open(path, newline="") as f:
        for i, r in enumerate(csv.DictReader(f), start=2):
            try:
                rows.append({"frame_index": int(r["frame_index"]), "timestamp": float(r["timestamp"]),
                             "track_id": int(r["track_id"]), "class": r["class"], "x": float(r["x"]),
                             "y": float(r["y"]), "visible": int(r["visible"])})
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path}: line {i}: expected {','.join(FLOOR_COLUMNS)}") from None
    return rows
