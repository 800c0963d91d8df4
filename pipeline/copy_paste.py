"""Simple Copy-Paste (Ghiasi et al., CVPR 2021): paste the instances of another training image.

Rendered masks are exact, so a pasted object brings a pixel-true mask with it, and the
objects it covers lose exactly the covered pixels. It multiplies the labelled instances a
step sees (pallet jacks are the scarce class) and makes new occlusions, at the cost of one
more image decode in the loader. The donor keeps its position (a warehouse object's size
follows its place on the floor under perspective); a coin flips it horizontally.
"""

from __future__ import annotations

import cv2
import numpy as np


def paste(image: np.ndarray, masks: np.ndarray, labels: np.ndarray,
          donor_image: np.ndarray, donor_masks: np.ndarray, donor_labels: np.ndarray,
          rng: np.random.Generator, min_area: int = 16, classes: frozenset[int] | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image HxWx3 uint8, masks NxHxW uint8, labels N) with a random non-empty subset of the
    donor's instances (of `classes`, or any) pasted on top. Existing masks lose the covered
    pixels; those left with fewer than `min_area` pixels are dropped. A donor of another size
    is resized to this image first."""
    eligible = [i for i, c in enumerate(donor_labels) if classes is None or int(c) in classes]
    if not eligible:
        return image, masks, labels
    h, w = image.shape[:2]
    if donor_image.shape[:2] != (h, w):
        donor_image = cv2.resize(donor_image, (w, h), interpolation=cv2.INTER_LINEAR)
        donor_masks = np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
                                for m in donor_masks]) if len(donor_masks) else donor_masks
    k = int(rng.integers(1, len(eligible) + 1))
    pick = np.sort(rng.choice(eligible, size=k, replace=False))
    new_masks, new_labels = donor_masks[pick].astype(np.uint8), np.asarray(donor_labels)[pick]
    if rng.random() < 0.5:
        donor_image, new_masks = donor_image[:, ::-1], new_masks[:, :, ::-1]
    keep_new = new_masks.reshape(k, -1).sum(1) >= min_area
    new_masks, new_labels = new_masks[keep_new], new_labels[keep_new]
    if not len(new_masks):
        return image, masks, labels
    covered = new_masks.any(0)
    out = image.copy()
    out[covered] = donor_image[covered]
    if len(masks):
        masks = masks * (~covered)[None].astype(np.uint8)
        keep = masks.reshape(len(masks), -1).sum(1) >= min_area
        masks, labels = masks[keep], labels[keep]
    return (out, np.concatenate([masks.reshape(-1, h, w), new_masks]).astype(np.uint8),
            np.concatenate([np.asarray(labels, np.int64), new_labels.astype(np.int64)]))
