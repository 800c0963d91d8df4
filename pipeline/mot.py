"""Tracking metrics (HOTA, MOTA, IDF1) with TrackEval on MOT Challenge rows.

TrackEval's dataset classes expect its folder layout and hard-code MOT17's class list, so we
do their preprocessing step ourselves (per class: contiguous ids, box IoU similarity, ignore
regions) and hand the result to TrackEval's metric classes, which do the actual scoring.
trackeval 1.0.0 runs on numpy 1.26 as is: its code no longer uses the np.float/np.int aliases
that numpy 1.24 removed, so no shim is needed (the tests here would fail if one were).

MOT rows: frame (1-based), id, x, y, w, h, conf, class, visibility. Ground-truth rows with
conf 0 are "don't care": they are not scored and tracker boxes on them are dropped.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import numpy as np

from pipeline.common import CATEGORIES, UserError, atomic_write_text

MOT_COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "class", "visibility")


# trackeval is not a dependency of the package: 1.0.0 (the last release on numpy 1.x, which bpy
# needs) requires opencv-python, which would overwrite opencv-python-headless's cv2.
INSTALL_TRACKEVAL = "pip install --no-deps trackeval==1.0.0"


class TrackEvalMissing(UserError):
    """Tracking metrics asked for but TrackEval is not installed."""


def _trackeval():
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # its datasets package prints about optional deps (BURST needs tabulate) at import
        warnings.simplefilter("ignore")
        try:
            import trackeval
        except ImportError:
            raise TrackEvalMissing(f"TrackEval is not installed; for HOTA/MOTA/IDF1 run: {INSTALL_TRACKEVAL}") from None
    return trackeval


def read_mot(path: str | Path) -> np.ndarray:
    """MOT Challenge text file -> float array [N, 9] (missing trailing columns filled with 1)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: MOT file not found")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.replace(" ", "").split(",")
        if len(parts) < 6:
            raise UserError(f"{path}:{n}: expected at least 6 comma-separated values "
                            f"({', '.join(MOT_COLUMNS)}), got {len(parts)}")
        try:
            vals = [float(p) for p in parts[:9]]
        except ValueError:
            raise UserError(f"{path}:{n}: non-numeric value in {line!r}") from None
        vals += [1.0] * (9 - len(vals))
        rows.append(vals)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 9)


def write_mot(path: str | Path, rows: np.ndarray) -> Path:
    lines = [f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.4f},"
             f"{int(r[7])},{r[8]:.3f}" for r in np.asarray(rows).reshape(-1, 9)]
    return atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))


def coco_to_mot_rows(coco: dict) -> np.ndarray:
    """MOT rows [N, 9] of a COCO clip: annotations with a `track_id` on images with a `frame_index`,
    sorted by frame then id; crowd regions get conf 0 ("don't care")."""
    frame_of = {im["id"]: im.get("frame_index") for im in coco["images"]}
    rows = []
    for a in coco["annotations"]:
        if a.get("track_id") is None or frame_of.get(a["image_id"]) is None:
            continue
        x, y, w, h = a["bbox"]
        rows.append([frame_of[a["image_id"]] + 1, a["track_id"], x, y, w, h,
                     0 if a.get("iscrowd") else 1, a["category_id"], a.get("visibility", 1.0)])
    rows.sort(key=lambda r: (r[0], r[1]))
    return np.asarray(rows, dtype=np.float64).reshape(-1, 9)


def _box_iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    te = _trackeval()
    return te.datasets._base_dataset._BaseDataset._calculate_box_ious(a, b, box_format="xywh")


def sequence_data(gt: np.ndarray, tr: np.ndarray, frames: list[int], ignore_iou: float = 0.5) -> dict:
    """TrackEval's per-sequence, per-class data dict from rows of one class."""
    gt_ids_t, tr_ids_t, sims = [], [], []
    keep_gt = gt[gt[:, 6] != 0]
    ignore = gt[gt[:, 6] == 0]
    for f in frames:
        g = keep_gt[keep_gt[:, 0] == f]
        t = tr[tr[:, 0] == f]
        ig = ignore[ignore[:, 0] == f]
        if len(ig) and len(t):
            hit = (_box_iou_xywh(t[:, 2:6], ig[:, 2:6]) >= ignore_iou).any(axis=1)
            t = t[~hit]
        gt_ids_t.append(g[:, 1].astype(int))
        tr_ids_t.append(t[:, 1].astype(int))
        sims.append(_box_iou_xywh(g[:, 2:6], t[:, 2:6]) if len(g) and len(t)
                    else np.zeros((len(g), len(t))))
    # contiguous 0-based ids, as TrackEval's datasets produce
    data: dict = {"num_timesteps": len(frames), "similarity_scores": sims}
    for key, ids_t in (("gt", gt_ids_t), ("tracker", tr_ids_t)):
        for f, ids in zip(frames, ids_t, strict=True):
            if len(ids) != len(np.unique(ids)):
                raise UserError(f"{key} rows: an id occurs twice in frame {f}")
        uniq = np.unique(np.concatenate(ids_t)) if ids_t else np.zeros(0, int)
        lut = {int(u): i for i, u in enumerate(uniq)}
        data[f"{key}_ids"] = [np.asarray([lut[int(i)] for i in ids], dtype=int) for ids in ids_t]
        data[f"num_{key}_ids"] = len(uniq)
        data[f"num_{key}_dets"] = int(sum(len(ids) for ids in ids_t))
    return data


def _summary(hota: dict, clear: dict, ident: dict) -> dict:
    return {"HOTA": float(np.mean(hota["HOTA"])), "DetA": float(np.mean(hota["DetA"])),
            "AssA": float(np.mean(hota["AssA"])), "MOTA": float(clear["MOTA"]),
            "MOTP": float(clear["MOTP"]), "IDF1": float(ident["IDF1"]),
            "IDSW": int(clear["IDSW"]), "FP": int(clear["CLR_FP"]), "FN": int(clear["CLR_FN"]),
            "num_gt_ids": int(clear.get("num_gt_ids", 0)), "num_tracker_ids": int(clear.get("num_tracker_ids", 0))}


def evaluate_tracking(gt_rows: np.ndarray, tracker_rows: np.ndarray, frames: list[int] | None = None,
                      classes: dict[int, str] | None = None) -> dict:
    """HOTA/MOTA/IDF1 per class and combined (detection-averaged over classes present in gt).

    `frames` (1-based) are the frames that were processed; ground truth on other frames is not
    scored (a strided run is scored on the frames it saw).
    """
    te = _trackeval()
    classes = classes or {c["id"]: c["name"] for c in CATEGORIES}
    gt_rows = np.asarray(gt_rows, dtype=np.float64).reshape(-1, 9)
    tracker_rows = np.asarray(tracker_rows, dtype=np.float64).reshape(-1, 9)
    if frames is None:
        frames = sorted({int(f) for f in gt_rows[:, 0]} | {int(f) for f in tracker_rows[:, 0]})
    metrics = [te.metrics.HOTA(), te.metrics.CLEAR({"PRINT_CONFIG": False}),
               te.metrics.Identity({"PRINT_CONFIG": False})]
    per_class: dict[str, dict] = {}
    raw: dict[str, dict] = {m.get_name(): {} for m in metrics}
    for cid, name in classes.items():
        g = gt_rows[gt_rows[:, 7] == cid]
        t = tracker_rows[tracker_rows[:, 7] == cid]
        if not (g[:, 6] != 0).any():
            continue  # class absent from the ground truth: nothing to score
        data = sequence_data(g, t, frames)
        res = {m.get_name(): m.eval_sequence(data) for m in metrics}
        for k, v in res.items():
            raw[k][name] = v
        per_class[name] = _summary(res["HOTA"], res["CLEAR"], res["Identity"])
        per_class[name].update(num_gt_ids=data["num_gt_ids"], num_tracker_ids=data["num_tracker_ids"])
    if not per_class:
        raise UserError("tracking ground truth has no scorable rows for "
                        f"{list(classes.values())} on the processed frames")
    combined = {m.get_name(): m.combine_classes_det_averaged(raw[m.get_name()]) for m in metrics}
    out = {"combined": _summary(combined["HOTA"], combined["CLEAR"], combined["Identity"]),
           "per_class": per_class, "frames": len(frames)}
    out["combined"].update(num_gt_ids=sum(p["num_gt_ids"] for p in per_class.values()),
                           num_tracker_ids=sum(p["num_tracker_ids"] for p in per_class.values()))
    return out
