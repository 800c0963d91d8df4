"""Test-time augmentation: a Mask R-CNN run on mirrored and resized copies of each image, its
detections mapped back and fused.

Fusion is weighted box fusion (Solovyev et al., 2021) extended to masks: per class, detections
of all views are taken in descending score; one joins the cluster whose fused box it overlaps
by at least `iou`, else starts one. A cluster's box and mask probabilities are the
score-weighted means of its members'; its score is the sum of its best `views` member scores
over the number of views, so an object found in one view of two keeps half its score. That is
the point: what only one view sees is usually wrong, and ranking it lower is what lifts AP.
NMS instead would keep every single-view detection at its full score.

`TTAModel` returns torchvision's output format, so evaluation, video and every predictor run it
unchanged (detectron2's GeneralizedRCNNWithTTA and Ultralytics' `augment=True` do the same job).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

from pipeline.model import at_size

# boxes of one object seen in two views overlap well above this; two people side by side rarely
FUSE_IOU = 0.55


def hflip_output(out: dict, width: int) -> dict:
    """A detection output of a mirrored image in the coordinates of the original."""
    res = dict(out)
    b = out["boxes"]
    res["boxes"] = torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], dim=1)
    if "masks" in out:
        res["masks"] = out["masks"].flip(-1)
    return res


def fuse(outputs: Sequence[dict], views: int, iou: float = FUSE_IOU, max_dets: int = 100) -> dict:
    """One output from the outputs of `views` views of one image (see the module docstring);
    at most `max_dets` detections, by fused score."""
    boxes = torch.cat([o["boxes"] for o in outputs])
    scores = torch.cat([o["scores"] for o in outputs]).float()
    labels = torch.cat([o["labels"] for o in outputs])
    has_masks = all("masks" in o for o in outputs)
    masks = torch.cat([o["masks"] for o in outputs]) if has_masks else None
    members: list[list[int]] = []
    fused: list[torch.Tensor] = []
    cluster_label: list[int] = []
    for i in torch.argsort(scores, descending=True).tolist():
        same = [c for c, lab in enumerate(cluster_label) if lab == int(labels[i])]
        if same:
            ious = box_iou(boxes[i:i + 1].float(), torch.stack([fused[c] for c in same]))[0]
            k = int(torch.argmax(ious))
            if float(ious[k]) >= iou:
                c = same[k]
                members[c].append(i)
                w = scores[members[c]]
                fused[c] = (boxes[members[c]].float() * w[:, None]).sum(0) / w.sum()
                continue
        members.append([i])
        fused.append(boxes[i].float())
        cluster_label.append(int(labels[i]))
    n = len(members)
    out_scores = torch.stack([scores[m][:views].sum() / views for m in members]) if n else scores[:0]
    order = torch.argsort(out_scores, descending=True)[:max_dets].tolist()
    res = {"boxes": torch.stack([fused[c] for c in order]).to(boxes.dtype) if order else boxes[:0],
           "scores": out_scores[order] if order else scores[:0],
           "labels": labels.new_tensor([cluster_label[c] for c in order]) if order else labels[:0]}
    if masks is not None:
        res["masks"] = torch.stack([(masks[members[c]].float() * scores[members[c]][:, None, None, None]).sum(0)
                                    / scores[members[c]].sum() for c in order]) if order else masks[:0]
    return res


def with_tta(model: torch.nn.Module, settings) -> torch.nn.Module:
    """`model` wrapped for the test-time augmentation of `settings` (an InferenceSettings), or
    `model` itself when it asks for none."""
    return TTAModel(model, flip=True, sizes=settings.tta_sizes) if settings.tta else model


class TTAModel(torch.nn.Module):
    """`model` (a torchvision Mask R-CNN in eval mode) run on each image at its own test size and
    at every size of `sizes` (shorter side, px; the longer side capped in proportion), each
    also mirrored when `flip`; the views fused by `fuse`."""

    def __init__(self, model: torch.nn.Module, flip: bool = True, sizes: Sequence[int] = (), iou: float = FUSE_IOU):
        super().__init__()
        self.model = model
        self.flip = flip
        self.sizes = [int(s) for s in sizes]
        self.iou = iou

    @property
    def transform(self):  # the wrapped model's: callers read and set its sizes
        return self.model.transform

    def views(self) -> int:
        return (1 + len(self.sizes)) * (2 if self.flip else 1)

    def forward(self, images: list[torch.Tensor]) -> list[dict]:
        per_image: list[list[dict]] = [[] for _ in images]
        t = self.transform
        base_min, base_max = t.min_size[-1], t.max_size
        # (None, None): the model's own test size; then each extra size, the longer side in proportion
        for size in [(None, None), *((s, round(base_max * s / base_min)) for s in self.sizes)]:
            with at_size(self.model, *size):
                for o, lst in zip(self.model(images), per_image, strict=True):
                    lst.append(o)
                if self.flip:
                    outs = self.model([im.flip(-1) for im in images])
                    for o, im, lst in zip(outs, images, per_image, strict=True):
                        lst.append(hflip_output(o, im.shape[-1]))
        max_dets = getattr(getattr(self.model, "roi_heads", None), "detections_per_img", 100)
        return [fuse(outs, self.views(), self.iou, max_dets) for outs in per_image]
