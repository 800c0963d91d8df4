"""pipeline.crowd: crowd targets are neither positive nor negative for the RPN and ROI samplers;
without crowd targets sampling is torchvision's own."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork

from pipeline.crowd import CrowdIgnoringRoIHeads, CrowdIgnoringRPN
from pipeline.model import ModelConfig, build_model

TINY = dict(arch="maskrcnn_mobilenet_v3_large_fpn", weights="none", min_size=96, max_size=128,
            rpn_post_nms_top_n_train=200, box_batch_size_per_image=32)
PED, CROWD = [30.0, 20, 50, 80], [70.0, 60, 120, 85]


def _targets(crowd_flag: int) -> list[dict]:
    masks = torch.zeros(2, 96, 128, dtype=torch.uint8)
    masks[0, 20:80, 30:50] = 1
    masks[1, 60:85, 70:120] = 1
    return [{"boxes": torch.tensor([PED, CROWD]), "labels": torch.tensor([1, 2]),
             "iscrowd": torch.tensor([0, crowd_flag]), "masks": masks}]


def _anchors() -> list[torch.Tensor]:
    # a grid of 20x20 and 48x24 anchors over a 96x128 image, plus both boxes exactly
    g = [[x, y, x + w, y + h] for x in range(0, 128, 4) for y in range(0, 96, 4) for w, h in ((20, 20), (48, 24))]
    return [torch.tensor(g + [PED, CROWD], dtype=torch.float32)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(**TINY))[0]


def test_every_arch_gets_the_crowd_aware_samplers(model):
    assert isinstance(model.rpn, CrowdIgnoringRPN) and isinstance(model.roi_heads, CrowdIgnoringRoIHeads)


def test_rpn_anchors_on_a_crowd_box_are_ignored_and_the_rest_unchanged(model):
    anchors = _anchors()
    plain, _ = RegionProposalNetwork.assign_targets_to_anchors(model.rpn, anchors, _targets(0))
    same, _ = model.rpn.assign_targets_to_anchors(anchors, _targets(0))
    assert torch.equal(plain[0], same[0])  # no crowd: torchvision's labels exactly
    labels, _ = model.rpn.assign_targets_to_anchors(anchors, _targets(1))
    on_crowd = (plain[0] == 1) & (model.rpn.box_similarity(torch.tensor([CROWD]), anchors[0])[0] > \
        model.rpn.box_similarity(torch.tensor([PED]), anchors[0])[0])
    assert on_crowd.sum() >= 2  # the exact anchor and its IoU >= 0.7 neighbours
    assert (labels[0][on_crowd] == -1).all()
    assert torch.equal(labels[0][~on_crowd], plain[0][~on_crowd])
    assert (labels[0] == 1).sum() == (plain[0] == 1).sum() - on_crowd.sum()


def test_roi_sampler_never_draws_a_proposal_of_a_crowd_box(model):
    proposals = _anchors()
    rh = model.roi_heads
    torch.manual_seed(1)
    _, matched, labels, _ = rh.select_training_samples([p.clone() for p in proposals], _targets(1))
    assert (labels[0] >= 0).all() and (labels[0] == 1).any()
    assert not ((labels[0] > 0) & (matched[0] == 1)).any()  # nothing positive for the crowd box
    # torchvision's sampler with the same box as a real target does draw it as a jack
    torch.manual_seed(1)
    _, matched0, labels0, _ = RoIHeads.select_training_samples(rh, [p.clone() for p in proposals], _targets(0))
    assert ((labels0[0] == 2) & (matched0[0] == 1)).any()
    torch.manual_seed(1)
    _, _, same, _ = rh.select_training_samples([p.clone() for p in proposals], _targets(0))
    assert torch.equal(same[0], labels0[0])


def test_a_training_step_with_crowd_targets_learns_nothing_about_them(model):
    torch.manual_seed(0)
    image = torch.rand(3, 96, 128)
    model.train()
    target = _targets(1)[0]
    losses = model([image], [target])
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    # only crowd targets: the classifier still sees background proposals, no positives
    model.zero_grad()
    only = {"boxes": torch.tensor([CROWD]), "labels": torch.tensor([2]), "iscrowd": torch.tensor([1]),
            "masks": target["masks"][1:]}
    losses = model([image], [only])
    assert losses["loss_mask"].item() == 0 and losses["loss_box_reg"].item() == 0
    assert losses["loss_rpn_box_reg"].item() == 0 and losses["loss_classifier"].item() > 0
