"""Camera artefacts the path tracer does not model, as a pure image -> image function.

Order follows the physics: optics/motion first (blur), then the sensor (noise). Masks are
not changed: a blur of 1-3 px moves edges by less than the pixel-filter jitter already in
the index pass, and labels should mark where the object is, not its smear.
"""

from __future__ import annotations

import cv2
import numpy as np

from blender.plan.scene_plan import Post


def motion_blur_kernel(length_px: float, angle_deg: float) -> np.ndarray:
    """Normalised line kernel of `length_px` pixels at `angle_deg` (0 = horizontal)."""
    size = int(np.ceil(length_px)) | 1  # odd, so the kernel is centred
    k = np.zeros((size, size), dtype=np.float32)
    c = size // 2
    dx, dy = np.cos(np.deg2rad(angle_deg)), -np.sin(np.deg2rad(angle_deg))
    # sample the segment densely and splat: sub-pixel lengths keep a sharp centre
    for t in np.linspace(-length_px / 2, length_px / 2, max(2, int(length_px * 4))):
        x, y = c + t * dx, c + t * dy
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for xx, yy, wgt in ((x0, y0, (1 - fx) * (1 - fy)), (x0 + 1, y0, fx * (1 - fy)),
                            (x0, y0 + 1, (1 - fx) * fy), (x0 + 1, y0 + 1, fx * fy)):
            if 0 <= xx < size and 0 <= yy < size:
                k[yy, xx] += wgt
    return k / k.sum()


def apply_post(rgb: np.ndarray, post: Post, rng: np.random.Generator) -> np.ndarray:
    """Motion blur then sensor noise, as the plan's `post` says.

    `noise_sigma` is the noise std at full brightness on a 0..1 scale; the noise is mostly shot noise
    (std grows with sqrt of the signal) over a small read-noise floor, as in real sensors.
    """
    out = rgb.astype(np.float32)
    blur = float(post.blur_px)
    if blur >= 1.0:
        out = cv2.filter2D(out, -1, motion_blur_kernel(blur, float(post.blur_angle_deg)),
                           borderType=cv2.BORDER_REFLECT)
    sigma = float(post.noise_sigma)
    if sigma > 0:
        std = 255.0 * sigma * np.sqrt(0.15 + 0.85 * out / 255.0)
        out = out + rng.standard_normal(out.shape, dtype=np.float32) * std
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
