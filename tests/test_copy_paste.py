"""Copy-paste augmentation: pasted pixels, the covered part of existing masks, ids and seeds."""

import numpy as np
import pytest
import torch

from pipeline.common import UserError, load_config
from pipeline.config import AugmentConfig, TrainConfig
from pipeline.copy_paste import paste
from pipeline.data import CocoDetection
from pipeline.transforms import Augment


def _square(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


class _NoFlip:
    """An rng whose coin never flips and which takes every eligible donor instance."""

    def __init__(self, rng):
        self.rng = rng

    def integers(self, lo, hi):
        return hi - 1

    def choice(self, a, size, replace):
        return np.asarray(a)[:size]

    def random(self):
        return 0.9


def test_paste_covers_existing_masks_and_drops_hidden_ones():
    h, w = 40, 60
    image = np.zeros((h, w, 3), np.uint8)
    masks = np.stack([_square(h, w, 0, 20, 0, 20),      # half under the donor square
                      _square(h, w, 12, 18, 12, 18)])    # wholly under it: dropped
    labels = np.array([1, 1])
    donor = np.full((h, w, 3), 200, np.uint8)
    d_masks = np.stack([_square(h, w, 10, 30, 10, 30)])
    out, m, lab = paste(image, masks, labels, donor, d_masks, np.array([2]), _NoFlip(None), min_area=4)
    assert lab.tolist() == [1, 2]
    assert m.shape == (2, h, w) and m.dtype == np.uint8
    covered = d_masks[0].astype(bool)
    assert (out[covered] == 200).all() and (out[~covered] == 0).all()
    assert m[0].sum() == 400 - 100 and not (m[0].astype(bool) & covered).any()
    assert np.array_equal(m[1], d_masks[0])


def test_paste_resizes_a_donor_of_another_size_and_respects_classes():
    image = np.zeros((40, 60, 3), np.uint8)
    donor = np.full((20, 30, 3), 50, np.uint8)
    d_masks = np.stack([_square(20, 30, 0, 10, 0, 10), _square(20, 30, 10, 20, 15, 30)])
    rng = _NoFlip(None)
    out, m, lab = paste(image, np.zeros((0, 40, 60), np.uint8), np.zeros(0, np.int64), donor, d_masks,
                        np.array([1, 2]), rng, min_area=4, classes=frozenset({2}))
    assert lab.tolist() == [2]  # the pedestrian (1) is not eligible
    assert m.shape == (1, 40, 60) and m[0].sum() == 20 * 30  # 10x15 doubled on each side
    assert m[0, 20:40, 30:60].all()
    same = paste(image, np.zeros((0, 40, 60), np.uint8), np.zeros(0, np.int64), donor, d_masks,
                 np.array([1, 1]), rng, classes=frozenset({2}))
    assert same[0] is image and len(same[2]) == 0  # nothing eligible: unchanged


def test_copy_paste_in_the_dataset_is_seeded_and_keeps_masks_exact(coco_set_ro):
    cfg = AugmentConfig(strength=0, copy_paste=1.0, min_area=1)
    ds = CocoDetection(coco_set_ro, transforms=Augment(cfg))
    plain = CocoDetection(coco_set_ro)
    grew = 0
    for seed in range(12):
        i = seed % len(ds)
        image, t = ds[(i, seed)]
        again = ds[(i, seed)]
        assert torch.equal(image, again[0]) and torch.equal(t["masks"], again[1]["masks"])
        masks = t["masks"].numpy().astype(bool)
        assert (masks.sum(0) <= 1).all()  # pasted and remaining masks never overlap
        grew += len(t["labels"]) > len(plain[i][1]["labels"])
    assert grew >= 6
    # validation (no seed) never pastes
    assert torch.equal(ds[0][0], plain[0][0])


def test_copy_paste_classes_are_checked():
    with pytest.raises(UserError, match="copy_paste_classes.*unknown class 'forklift'"):
        load_config(None, TrainConfig, ["augment.copy_paste_classes=[forklift]"])
