"""Lens distortion of a calibrated camera, applied after rendering (cv2 + numpy, no bpy).

Cycles renders an ideal pinhole; the plan's Lens says how big (render_size) so that the
undistorted view covers the calibrated image. Each output pixel centre is undistorted with
OpenCV (cv2.undistortPoints / cv2.fisheye.undistortPoints) into render pixels, and one map
serves the RGB image (bilinear) and the index pass (nearest: ids stay exact integers). The
unoccluded silhouettes the annotator compares masks with go through the same map, on the
canvas extended by the silhouette margin, so visibility stays a ratio of like with like.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from blender.annotate import Silhouette, project_triangles, rasterize_triangles
from blender.plan.calibration import render_camera_matrix
from blender.plan.scene_plan import Lens
from pipeline.lens import undistort_pixels

# silhouette canvases in render space are cut at this many render sizes beyond each border
# (points far outside a calibrated image undistort to nonsense anyway)
MAX_CANVAS_REACH = 2.0


def _maps(lens: Lens, width: int, height: int, ox: int, oy: int) -> tuple[np.ndarray, np.ndarray]:
    """Render-pixel coordinates (OpenCV convention) of the output grid shifted by (-ox, -oy)."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64) - ox, np.arange(height, dtype=np.float64) - oy)
    pts = undistort_pixels(lens, np.c_[xs.ravel(), ys.ravel()], render_camera_matrix(lens))
    bad = ~np.isfinite(pts).all(axis=1)
    pts[bad] = -1e6   # lands outside every canvas: background
    maps = pts.reshape(height, width, 2).astype(np.float32)
    return np.ascontiguousarray(maps[..., 0]), np.ascontiguousarray(maps[..., 1])


class LensWarp:
    """Undistorted render -> calibrated image, for the RGB, the index pass and silhouettes."""

    def __init__(self, lens: Lens):
        self.lens = lens
        self.width, self.height = lens.image_size
        self.map_x, self.map_y = _maps(lens, self.width, self.height, 0, 0)
        self._extended: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def apply(self, rgb: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rw, rh = self.lens.render_size
        if rgb.shape[:2] != (rh, rw) or index.shape != (rh, rw):
            raise RuntimeError(f"rendered {rgb.shape[1]}x{rgb.shape[0]}, the lens needs {rw}x{rh}")
        out = cv2.remap(rgb, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        # float32 keeps every id exact up to 2^24; nearest never blends two of them
        ids = cv2.remap(index.astype(np.float32), self.map_x, self.map_y, cv2.INTER_NEAREST,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return out, ids.astype(np.int32)

    def silhouette(self, vertices: np.ndarray, triangles: np.ndarray, projection: np.ndarray,
                   margin: float) -> Silhouette:
        """The unoccluded silhouette in the calibrated image (extended by `margin` x size per
        side); `projection` is the render camera's 3x4 pixel projection (blender.cycles)."""
        ox, oy = int(round(self.width * margin)), int(round(self.height * margin))
        if (ox, oy) not in self._extended:
            self._extended[(ox, oy)] = _maps(self.lens, self.width + 2 * ox, self.height + 2 * oy, ox, oy)
        mx, my = self._extended[(ox, oy)]
        rw, rh = self.lens.render_size
        reach_x, reach_y = math.ceil(rw * MAX_CANVAS_REACH), math.ceil(rh * MAX_CANVAS_REACH)
        ok = np.abs(mx) < 1e5
        # render-space canvas just large enough for the map (cv convention -> +0.5 for the rasteriser)
        x0 = int(max(math.floor(mx[ok].min()) - 1, -reach_x)) if ok.any() else 0
        y0 = int(max(math.floor(my[ok].min()) - 1, -reach_y)) if ok.any() else 0
        x1 = int(min(math.ceil(mx[ok].max()) + 2, rw + reach_x)) if ok.any() else rw
        y1 = int(min(math.ceil(my[ok].max()) + 2, rh + reach_y)) if ok.any() else rh
        tris = project_triangles(vertices, triangles, projection)
        canvas = rasterize_triangles(tris, x1 - x0, y1 - y0, -x0, -y0).astype(np.uint8)
        warped = cv2.remap(canvas, mx - x0, my - y0, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=0)
        return Silhouette(warped.astype(bool), ox, oy, self.width, self.height)
