"""`--checkpoint gt`: a rendered clip's own ground-truth boxes and masks fed in as detections.

An oracle detector (score 1, every non-crowd annotation of the frame) isolates the analytics
and the tracker from the detector: whatever the analytics then get wrong is geometry.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence

import cv2
import numpy as np

from pipeline import rle
from pipeline.common import UserError
from pipeline.detections import Detections

GT_CHECKPOINT = "gt"


class GroundTruthPredictor:
    name = "ground truth (oracle)"
    takes_frames = True   # needs to know which frame it is looking at, not just the pixels

    def __init__(self, source):
        ann_path = getattr(source, "annotations", None)
        if ann_path is None:
            raise UserError(f"--checkpoint gt: {getattr(source, 'spec', source)} is not a clip with annotations.json")
        coco = json.loads(ann_path.read_text())
        names = {im["id"]: (im["file_name"], im["height"], im["width"]) for im in coco["images"]}
        self.by_name: dict[str, list[dict]] = defaultdict(list)
        self.size = {}
        for _im_id, (name, h, w) in names.items():
            self.size[name] = (h, w)
        for a in coco["annotations"]:
            if not a.get("iscrowd", 0):
                self.by_name[names[a["image_id"]][0]].append(a)
        self.scale = float(getattr(source, "scale", 1.0))

    def frames(self, frames: Sequence) -> list[Detections]:
        out = []
        for f in frames:
            anns = self.by_name.get(f.name, [])
            h, w = f.image.shape[:2]
            boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                              for a in anns], dtype=np.float32).reshape(-1, 4) * self.scale
            masks = np.zeros((len(anns), h, w), dtype=bool)
            for i, a in enumerate(anns):
                m = rle.decode(a["segmentation"], *self.size[f.name])
                masks[i] = m if m.shape == (h, w) else cv2.resize(m.astype(np.uint8), (w, h),
                                                                 interpolation=cv2.INTER_NEAREST) > 0
            out.append(Detections(boxes=boxes, scores=np.ones(len(anns), np.float32),
                                  labels=np.array([a["category_id"] for a in anns], dtype=np.int64), masks=masks))
        return out

    def __call__(self, images):
        raise TypeError("GroundTruthPredictor needs the frames: call .frames(batch)")
