"""A site's camera calibration (OpenCV YAML, read by pipeline.lens) -> the plan's Lens and the
site's poses (cv2, no bpy).

File format and the reader: pipeline/lens.py (shared with the analytics' floor calibration).

The OpenCV camera looks down +z with y down; Blender's looks down -z with y up, so the
Blender camera's axes in world are R^T @ diag(1, -1, -1) and it stands at -R^T tvec.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from blender.plan.scene_plan import Lens
from pipeline.lens import Calibration, corner_pixels, undistort_pixels

# the undistorted render may be at most this many times the calibrated image per side:
# beyond it a (fisheye) lens sees too wide for one perspective render
MAX_RENDER_FACTOR = 4.0
CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0])


# ---------------------------------------------------------------- conventions

def blender_pose(rvec, tvec) -> tuple[np.ndarray, np.ndarray]:
    """OpenCV extrinsics -> (3x3 Blender camera axes in world: X right, Y up, Z back; location)."""
    R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))
    return R.T @ CV_TO_BLENDER, -R.T @ np.asarray(tvec, np.float64).reshape(3)


def opencv_pose(matrix, location) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of blender_pose: (rvec, tvec) of a Blender camera matrix and location."""
    R = (np.asarray(matrix, np.float64) @ CV_TO_BLENDER).T
    rvec, _ = cv2.Rodrigues(R)
    return rvec.ravel(), -R @ np.asarray(location, np.float64)


# ---------------------------------------------------------------- the undistorted render

def render_camera_matrix(lens: Lens) -> np.ndarray:
    """The centred pinhole K of the undistorted render (OpenCV convention: pixel i's centre is i)."""
    f = lens.render_focal_px
    w, h = lens.render_size
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


def undistorted_projection(lens: Lens, render_projection: np.ndarray) -> np.ndarray:
    """The render camera's 3x4 projection (blender.cycles.camera_projection: pixels from the
    top-left corner) re-expressed in undistorted pixels of the calibrated camera_matrix, the
    projection a floor calibration with this lens takes (pipeline.analytics.calibration).
    Both cameras share normalised coordinates, so only the intrinsics change."""
    K, Kr = corner_pixels(lens.camera_matrix), corner_pixels(render_camera_matrix(lens))
    return K @ np.linalg.solve(Kr, np.asarray(render_projection, np.float64))


def make_lens(cal: Calibration, image_size: tuple[int, int], max_pixels: float = 0.0) -> Lens:
    """The plan's Lens: the render just covers every pixel of the calibrated image, undistorted.
    At full density (max_pixels 0) the render's centre is 1:1 with the image's; a wide lens then
    needs more pixels than the image has (k1 = -0.25: 1.5x). max_pixels > 0 caps the render at
    that many times the image's pixels by a lower density (same field of view)."""
    w, h = image_size
    base = Lens(camera_matrix=cal.camera_matrix.tolist(), dist_coeffs=cal.dist_coeffs.tolist(), model=cal.model,
                image_size=[w, h], render_size=[w, h], render_focal_px=float(cal.camera_matrix[0, 0]))
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    border = np.concatenate([np.c_[xs[0], ys[0]], np.c_[xs[-1], ys[-1]], np.c_[xs[:, 0], ys[:, 0]],
                             np.c_[xs[:, -1], ys[:, -1]], np.c_[xs.ravel()[::97], ys.ravel()[::97]]])
    norm = undistort_pixels(base, border)
    if not np.isfinite(norm).all():
        raise ValueError(f"{cal.path}: dist_coeffs: the lens cannot be undistorted over the whole image")
    reach_x, reach_y = np.abs(norm[:, 0]).max(), np.abs(norm[:, 1]).max()

    def size(f: float) -> tuple[int, int]:
        # +1 px per side: the remap's nearest and bilinear lookups stay inside the render
        return 2 * math.ceil(reach_x * f + 1.5), 2 * math.ceil(reach_y * f + 1.5)

    f = base.render_focal_px
    rw, rh = size(f)
    if rw > MAX_RENDER_FACTOR * w or rh > MAX_RENDER_FACTOR * h:
        raise ValueError(f"{cal.path}: the calibrated field of view needs a {rw}x{rh} undistorted render "
                         f"(more than {MAX_RENDER_FACTOR:g}x the {w}x{h} image); a perspective render cannot cover it")
    if max_pixels > 0 and rw * rh > max_pixels * w * h:
        # the largest f with (2 rx f + 5)(2 ry f + 5) <= budget: size(f) is at most that
        a, b, c = 4 * reach_x * reach_y, 10 * (reach_x + reach_y), 25 - max_pixels * w * h
        f = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
        rw, rh = size(f)
    base.render_focal_px = float(f)
    base.render_size = [int(rw), int(rh)]
    return base


def lens_fov_deg(lens: Lens) -> float:
    """Horizontal field of view of the undistorted render camera."""
    return math.degrees(2 * math.atan(lens.render_size[0] / 2 / lens.render_focal_px))
