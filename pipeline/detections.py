"""One frame's detections as a typed record, and its conversion to COCO results.

Every predictor (torch or ONNX) returns `Detections`; the tracker fills `track_ids`; the
JSONL writer, the drawing and the scorers read it. Torch-free: a torchvision output dict is
converted once, in `from_torchvision`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from pipeline import rle
from pipeline.common import CATEGORIES

# model label (1..K, 0 is background) -> COCO category id: the contract between training and scoring
CATEGORY_OF_LABEL: dict[int, int] = {i + 1: c["id"] for i, c in enumerate(CATEGORIES)}


@dataclass(frozen=True)
class Detections:
    """N detections in pixels of the image they were found on.

    boxes [N, 4] float32 xyxy; scores [N] float32; labels [N] int64 model labels;
    masks [N, H, W] bool or None (a box-only model); track_ids [N] int64, -1 = not tracked,
    or None before tracking.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None
    track_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.boxes)
        for name in ("scores", "labels", "masks", "track_ids"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"Detections: {len(v)} {name} for {n} boxes")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def from_torchvision(cls, output: dict, mask_threshold: float = 0.5) -> Detections:
        """A torchvision detection output (tensors; masks as [N, 1, H, W] probabilities)."""
        masks = output.get("masks")
        if masks is not None:
            masks = (masks[:, 0] > mask_threshold).detach().cpu().numpy()
        return cls(boxes=output["boxes"].detach().float().cpu().numpy(),
                   scores=output["scores"].detach().float().cpu().numpy(),
                   labels=output["labels"].detach().cpu().numpy().astype(np.int64), masks=masks)

    def select(self, keep: np.ndarray) -> Detections:
        return Detections(*(None if v is None else v[keep]
                            for v in (self.boxes, self.scores, self.labels, self.masks, self.track_ids)))

    def above(self, score_threshold: float) -> Detections:
        return self.select(self.scores >= score_threshold)

    def with_tracks(self, track_ids: np.ndarray) -> Detections:
        return replace(self, track_ids=np.asarray(track_ids, dtype=np.int64).reshape(-1))

    def rescaled(self, scale: float, size: tuple[int, int]) -> Detections:
        """Coordinates of an image resized by `scale` -> the original `size` (width, height)."""
        if scale == 1.0:
            return self
        w, h = size
        masks = self.masks
        if masks is not None and len(masks):
            masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
                              for m in masks])
        return replace(self, boxes=self.boxes / scale, masks=masks)


def to_coco_results(dets: Detections, image_id: int) -> list[dict]:
    """COCO results (bbox xywh, RLE segmentation); model labels mapped to category ids."""
    results = []
    for i in range(len(dets)):
        x0, y0, x1, y1 = (float(v) for v in dets.boxes[i])
        r = {"image_id": int(image_id), "category_id": CATEGORY_OF_LABEL[int(dets.labels[i])],
             "bbox": [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)],
             "score": round(float(dets.scores[i]), 5)}
        if dets.masks is not None:
            r["segmentation"] = rle.encode(dets.masks[i])
        results.append(r)
    return results


def outputs_to_results(output: dict, image_id: int, mask_threshold: float = 0.5) -> list[dict]:
    """One torchvision output (training validation, the eval CLI) -> COCO results."""
    return to_coco_results(Detections.from_torchvision(output, mask_threshold), int(image_id))
