"""Crowd regions as "don't care" in training, as the original Detectron treated COCO's crowds.

A rendered instance below `annotation.min_visibility` (a jack under its load, a walker behind a
rack) is marked crowd: COCOeval neither rewards nor punishes a detection on it. Left out of the
targets, its visible part is taught as background, against the same-looking visible instances
next to it. With `data.crowd: ignore` the dataset hands crowd instances to the model flagged
in `target["iscrowd"]`, and the two samplers leave them out: anchors and proposals that match a
crowd box best are neither positive nor negative (label -1), so no loss is computed on them.
Images without crowd targets train exactly as torchvision's classes do.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork


def _crowd(target: dict[str, Tensor]) -> Tensor | None:
    flags = target.get("iscrowd")
    return flags.bool() if flags is not None and bool(flags.any()) else None


class CrowdIgnoringRPN(RegionProposalNetwork):
    def assign_targets_to_anchors(self, anchors: list[Tensor], targets: list[dict[str, Tensor]]
                                  ) -> tuple[list[Tensor], list[Tensor]]:
        labels, matched = super().assign_targets_to_anchors(anchors, targets)
        for i, (a, t) in enumerate(zip(anchors, targets, strict=True)):
            crowd = _crowd(t)
            if crowd is None:
                continue
            # the matcher's choice again (torchvision does not return it); -1/-2 are bg/between
            idx = self.proposal_matcher(self.box_similarity(t["boxes"], a))
            labels[i][(idx >= 0) & crowd[idx.clamp(min=0)]] = -1.0
        return labels, matched


class CrowdIgnoringRoIHeads(RoIHeads):
    def assign_targets_to_proposals(self, proposals: list[Tensor], gt_boxes: list[Tensor],
                                    gt_labels: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        # select_training_samples passes labels only: crowd ones arrive negated (see install)
        matched, labels = super().assign_targets_to_proposals(proposals, gt_boxes,
                                                              [g.abs() for g in gt_labels])
        for m, lab, g in zip(matched, labels, gt_labels, strict=True):
            if g.numel() and bool((g < 0).any()):
                lab[(lab > 0) & (g[m] < 0)] = -1  # the sampler takes >= 1 and == 0 only
        return matched, labels

    def select_training_samples(self, proposals, targets):
        marked = []
        for t in targets:
            crowd = _crowd(t)
            marked.append(t if crowd is None else {**t, "labels": torch.where(crowd, -t["labels"], t["labels"])})
        return super().select_training_samples(proposals, marked)


def install(model) -> None:
    """Make a torchvision MaskRCNN's RPN and ROI heads leave crowd targets out of sampling."""
    model.rpn.__class__ = CrowdIgnoringRPN
    model.roi_heads.__class__ = CrowdIgnoringRoIHeads
