"""Scores a run on a ground-truth clip: COCO AP of the detections, HOTA/MOTA/IDF1 of the tracks."""

from __future__ import annotations

import sys

import numpy as np

from pipeline.detections import Detections, to_coco_results
from pipeline.sources import ClipSource, Frame
from pipeline.video.config import ScoringConfig


class Scorer:
    """Collects COCO results and MOT rows per processed frame; scores them at the end."""

    def __init__(self, source: ClipSource, cfg: ScoringConfig):
        from pipeline.coco_eval import load_ground_truth

        self.source = source
        self.cfg = cfg
        self.gt = load_ground_truth(source.annotations) if source.annotations else None
        images = self.gt.coco["images"] if self.gt else []
        self.name_to_id = {im["file_name"]: im["id"] for im in images}
        # gt.txt frame numbers are frame_index + 1; without frame_index, the position in images/
        self.frame_of_name = {im["file_name"]: im["frame_index"] for im in images if "frame_index" in im}
        self.results: list[dict] = []
        self.mot_rows: list[list[float]] = []
        self.frames: list[int] = []
        self.image_ids: list[int] = []

    def add(self, frame: Frame, dets: Detections) -> None:
        # ground truth lives in source pixels, the detections in processed-frame pixels
        dets = dets.rescaled(self.source.scale, (self.source.src_width, self.source.src_height))
        mot_frame = self.frame_of_name.get(frame.name, frame.index) + 1
        self.frames.append(mot_frame)
        image_id = self.name_to_id.get(frame.name)
        if image_id is not None:
            self.image_ids.append(image_id)
            self.results += to_coco_results(dets, image_id)
        if dets.track_ids is None:
            return
        for i in np.flatnonzero(dets.track_ids >= 0):
            x0, y0, x1, y1 = (float(v) for v in dets.boxes[i])
            self.mot_rows.append([mot_frame, int(dets.track_ids[i]), x0, y0, x1 - x0, y1 - y0,
                                  float(dets.scores[i]), int(dets.labels[i]), 1.0])

    def gt_mot_rows(self) -> np.ndarray | None:
        from pipeline.mot import coco_to_mot_rows, read_mot

        if self.source.mot_gt:
            return read_mot(self.source.mot_gt)
        if self.gt is None:
            return None
        rows = coco_to_mot_rows(self.gt.coco)  # annotations.json with track ids is enough
        return rows if len(rows) else None

    def score(self) -> dict:
        from pipeline.coco_eval import evaluate_coco
        from pipeline.mot import TrackEvalMissing, evaluate_tracking

        out: dict = {}
        if self.gt is not None and self.image_ids:
            gt = self.gt.subset(sorted(set(self.image_ids)))
            types = tuple(t for t in self.cfg.iou_types if t != "segm" or gt.has_masks)
            if types and gt.present_category_ids:
                res = evaluate_coco(gt, self.results, types)
                out["detection"] = {t: {k: v for k, v in r.to_json().items() if k != "summary_text"}
                                    for t, r in res.items()}
                out["detection"]["images"] = len(gt.image_ids)
        gt_rows = self.gt_mot_rows()
        if gt_rows is not None and len(gt_rows):
            try:
                out["tracking"] = evaluate_tracking(gt_rows, np.asarray(self.mot_rows).reshape(-1, 9),
                                                    self.frames)
            except TrackEvalMissing as e:  # the detection scores and the video are still worth having
                print(f"note: tracking scores skipped: {e}", file=sys.stderr)
                out["tracking_skipped"] = str(e)
        return out
