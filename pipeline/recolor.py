"""Instance recolouring: a random hue and saturation inside an instance's exact mask.

Why: the demo model's false pallet jacks are cones, bins, bollards and vests in the jacks'
own paint (README "What the jacks' false positives are"): from random init it learns the
colour before the handle and forks. Repainting jacks in any hue, or nearly grey, takes the
colour away as a cue; the rest of the image, distractors included, keeps its colours. Only
renders can do this cheaply: their masks are exact, so no pixel of the background changes.
"""

from __future__ import annotations

import cv2
import numpy as np


def recolor(image: np.ndarray, masks: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
            p: float, classes: frozenset[int]) -> np.ndarray:
    """A copy of `image` (HxWx3 uint8 RGB) with each instance whose |label| is in `classes`
    repainted with probability `p`: hue turned by a random angle, saturation scaled by
    0.1-1.3; brightness and shading stay. Draws from `rng` in instance order."""
    out = image
    for mask, label in zip(masks, labels, strict=True):
        if abs(int(label)) not in classes or rng.random() >= p:
            continue
        shift, sat = int(rng.integers(0, 180)), float(rng.uniform(0.1, 1.3))
        ys, xs = np.nonzero(mask)
        if not len(ys):
            continue
        if out is image:
            out = image.copy()
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        hsv = cv2.cvtColor(out[y0:y1, x0:x1], cv2.COLOR_RGB2HSV)  # H in 0..179 for uint8
        hsv[..., 0] = (hsv[..., 0].astype(np.int32) + shift) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255).astype(np.uint8)
        painted = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        inside = mask[y0:y1, x0:x1].astype(bool)
        out[y0:y1, x0:x1][inside] = painted[inside]
    return out
