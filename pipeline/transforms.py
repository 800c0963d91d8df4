"""Training augmentation (albumentations) that keeps instance masks and boxes consistent.

Geometry is applied to the masks only; boxes are recomputed from the augmented masks by the
dataset (pipeline.data.masks_to_boxes), so they stay tight, and an instance whose visible
part falls below `min_area` pixels is dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import albumentations as A
import cv2
import numpy as np

from pipeline import copy_paste, recolor
from pipeline.common import CATEGORIES
from pipeline.config import AugmentConfig

# a donor for copy-paste: rng -> (image, masks, labels) of another training image
Donors = Callable[[np.random.Generator], tuple[np.ndarray, np.ndarray, np.ndarray]]


def resolved_ops(cfg: AugmentConfig) -> dict[str, float]:
    """Per-op amounts: the explicit override, else derived from `strength`."""
    s = cfg.strength
    default = {"hflip": 0.5 if s > 0 else 0.0, "scale": 0.4 * s, "translate": 0.15 * s,
               "color": 0.4 * s, "blur": 0.3 * s, "noise": 0.3 * s, "jpeg": 0.3 * s}
    return {k: (getattr(cfg, k) if getattr(cfg, k) is not None else v) for k, v in default.items()}


def build_albumentations(cfg: AugmentConfig) -> A.Compose:
    ops = resolved_ops(cfg)
    t: list = []
    if ops["hflip"] > 0:
        t.append(A.HorizontalFlip(p=ops["hflip"]))
    if ops["scale"] > 0 or ops["translate"] > 0:
        # scale jitter + random crop/pad in one warp; masks use nearest-neighbour resampling
        t.append(A.Affine(scale=(1 - ops["scale"], 1 + ops["scale"]),
                          translate_percent=(-ops["translate"], ops["translate"]),
                          interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST,
                          keep_ratio=True, border_mode=cv2.BORDER_CONSTANT, fill=114, fill_mask=0, p=0.8))
    if ops["color"] > 0:
        c = ops["color"]
        t.append(A.ColorJitter(brightness=c, contrast=c, saturation=c, hue=min(0.5, c / 8), p=0.8))
    if ops["blur"] > 0:
        t.append(A.OneOf([A.GaussianBlur(blur_limit=(3, 5), p=1), A.MotionBlur(blur_limit=(3, 7), p=1)],
                         p=ops["blur"]))
    if ops["noise"] > 0:
        t.append(A.GaussNoise(std_range=(0.01, 0.06), p=ops["noise"]))
    if ops["jpeg"] > 0:
        t.append(A.ImageCompression(quality_range=(30, 90), p=ops["jpeg"]))
    return A.Compose(t)


class Augment:
    """Callable (image HxWx3 uint8, masks NxHxW uint8, labels N, seed[, donors]) -> augmented triple.

    `seed` (from pipeline.data.StepSampler) fixes this sample's augmentation, so a resumed run
    and worker processes reproduce exactly what an uninterrupted run would draw. `donors`
    (from the dataset) draws another training image for copy-paste, before the other ops.
    """

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg
        self.compose = build_albumentations(cfg)
        ids = {c["name"]: c["id"] for c in CATEGORIES}
        self.paste_classes = frozenset(ids[n] for n in cfg.copy_paste_classes) or None
        self.recolor_classes = frozenset(ids[n] for n in cfg.recolor_classes)

    def __call__(self, image: np.ndarray, masks: np.ndarray, labels: np.ndarray, seed: int | None,
                 donors: Donors | None = None):
        if donors is not None and seed is not None and self.cfg.copy_paste > 0:
            # its own stream, so switching copy-paste on leaves the other ops' draws unchanged
            rng = np.random.default_rng([int(seed) % 2**63, 0xC0FFEE])
            if rng.random() < self.cfg.copy_paste:
                d_image, d_masks, d_labels = donors(rng)
                image, masks, labels = copy_paste.paste(image, masks, labels, d_image, d_masks, d_labels,
                                                        rng, self.cfg.min_area, self.paste_classes)
        if seed is not None and self.cfg.recolor > 0:  # its own stream too (after the paste: pasted jacks count)
            rng = np.random.default_rng([int(seed) % 2**63, 0x2EC0])
            image = recolor.recolor(image, masks, labels, rng, self.cfg.recolor, self.recolor_classes)
        if not self.compose.transforms:
            return image, masks, labels
        if seed is not None:
            self.compose.set_random_seed(int(seed) % 2**32)
        if len(masks):
            out = self.compose(image=image, masks=masks)
            masks = np.asarray(out["masks"], np.uint8).reshape(len(masks), *out["image"].shape[:2])
        else:
            out = self.compose(image=image)
            masks = np.zeros((0, *out["image"].shape[:2]), np.uint8)
        keep = masks.reshape(len(masks), -1).sum(1) >= self.cfg.min_area if len(masks) else np.zeros(0, bool)
        return out["image"], masks[keep], labels[keep]
