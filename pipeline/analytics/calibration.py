"""Ground-plane calibration: image pixels <-> floor metres through a homography.

The homography comes from four or more floor points the user measured (pixel -> metre
pairs, fitted with OpenCV's findHomography) or from a full 3x4 camera matrix (rendered clips
write theirs): the floor is the plane z = 0, so its columns 0, 1 and 3 map floor (x, y, 1) to
pixels. File format: docs/DESIGN.md (calibration file).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
from pydantic import model_validator

from pipeline.common import StrictModel, UserError, load_config

COLLINEAR_TOL = 1e-3   # a triangle this thin (area / longest side^2) counts as a line


class FloorPoint(StrictModel):
    pixel: tuple[float, float]   # (u, v) in pixels of an image of `image_size`, from the top-left corner
    floor: tuple[float, float]   # (x, y) on the floor, metres


class CalibrationConfig(StrictModel):
    image_size: tuple[int, int]                      # (width, height) the pixels refer to
    points: list[FloorPoint] | None = None           # 4+ measured floor points
    camera_matrix: list[list[float]] | None = None   # 3x4, world (x, y, z, 1) -> (u*w, v*w, w)

    @model_validator(mode="after")
    def _one_source(self) -> CalibrationConfig:
        if (self.points is None) == (self.camera_matrix is None):
            raise ValueError("expected exactly one of points (4+ pixel/floor pairs) or camera_matrix (3x4)")
        if self.camera_matrix is not None and np.asarray(self.camera_matrix, dtype=object).shape != (3, 4):
            raise ValueError("camera_matrix: expected 3 rows of 4 numbers")
        if min(self.image_size) <= 0:
            raise ValueError("image_size: expected [width, height] > 0")
        return self


def _degenerate(pts: np.ndarray) -> bool:
    """True when no 4 of the points are in general position (a homography needs 4, no 3 on a line)."""
    if len(pts) < 4:
        return True
    def thin(a, b, c) -> bool:
        area = abs(np.cross(b - a, c - a)) / 2
        side = max(np.sum((b - a) ** 2), np.sum((c - a) ** 2), np.sum((c - b) ** 2), 1e-12)
        return area / side < COLLINEAR_TOL
    # a small search: calibration files hold a handful of points
    for quad in combinations(range(min(len(pts), 12)), 4):
        q = pts[list(quad)]
        if not any(thin(*q[list(t)]) for t in combinations(range(4), 3)):
            return False
    return True


def fit_homography(pixels, floor, where: str = "points") -> np.ndarray:
    """3x3 H (pixels -> floor metres) from 4+ correspondences; degenerate sets are UserErrors."""
    px = np.asarray(pixels, dtype=np.float64).reshape(-1, 2)
    fl = np.asarray(floor, dtype=np.float64).reshape(-1, 2)
    if len(px) != len(fl) or len(px) < 4:
        raise UserError(f"{where}: {len(px)} points; expected 4 or more pixel/floor pairs")
    for name, pts in (("pixel", px), ("floor", fl)):
        if _degenerate(pts):
            raise UserError(f"{where}: the {name} coordinates are degenerate (repeated or collinear); "
                            f"expected 4 or more points with no 3 on one line")
    H, _ = cv2.findHomography(px, fl, 0)  # plain least squares: every measured point counts
    if H is None or not np.all(np.isfinite(H)) or abs(np.linalg.det(H)) < 1e-12:
        raise UserError(f"{where}: no homography fits these points; expected 4 or more points with no 3 on one line")
    return H / H[2, 2]


class FloorMap:
    """Pixels of the processed frame <-> floor metres. `scale` maps processed-frame pixels to the
    calibration's (a video run may downscale frames)."""

    def __init__(self, H: np.ndarray, image_size: tuple[int, int]):
        self.H = np.asarray(H, dtype=np.float64)
        self.H_inv = np.linalg.inv(self.H)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.scale = np.ones(2)

    @classmethod
    def from_config(cls, cfg: CalibrationConfig, where: str = "calibration") -> FloorMap:
        if cfg.camera_matrix is not None:
            P = np.asarray(cfg.camera_matrix, dtype=np.float64)
            G = P[:, [0, 1, 3]]  # floor (x, y, 1) -> pixels
            if abs(np.linalg.det(G)) < 1e-12:
                raise UserError(f"{where}: camera_matrix: the camera sees the floor edge-on; expected a camera looking at the floor")
            return cls(np.linalg.inv(G), cfg.image_size)
        pts = cfg.points or []
        H = fit_homography([p.pixel for p in pts], [p.floor for p in pts], f"{where}: points")
        return cls(H, cfg.image_size)

    def for_frame(self, width: int, height: int, where: str = "calibration") -> FloorMap:
        """This map for frames of `width` x `height` (same aspect as the calibration's image_size)."""
        cw, ch = self.image_size
        if abs(cw / ch - width / height) > 0.01:
            raise UserError(f"{where}: image_size {cw}x{ch} does not match the video's {width}x{height} frames; "
                            f"expected the same aspect ratio")
        m = FloorMap(self.H, self.image_size)
        m.scale = np.array([cw / width, ch / height])
        return m

    @property
    def _sign(self) -> float:
        # the bottom-centre pixel sees the floor: pixels (and floor points) whose homogeneous w
        # has its sign are in front of the camera, the others above the horizon / behind it
        w = (self.H @ np.array([self.image_size[0] / 2, self.image_size[1], 1.0]))[2]
        return 1.0 if w >= 0 else -1.0

    def to_floor(self, pixels) -> np.ndarray:
        """(N, 2) processed-frame pixels -> (N, 2) floor metres (NaN above the horizon)."""
        p = np.asarray(pixels, dtype=np.float64).reshape(-1, 2) * self.scale
        q = np.c_[p, np.ones(len(p))] @ self.H.T
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = q[:, :2] / q[:, 2:3]
        xy[q[:, 2] * self._sign <= 1e-12] = np.nan
        return xy

    def to_image(self, floor) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) floor metres -> ((N, 2) processed-frame pixels, (N,) bool: in front of the camera)."""
        f = np.asarray(floor, dtype=np.float64).reshape(-1, 2)
        q = np.c_[f, np.ones(len(f))] @ self.H_inv.T
        front = q[:, 2] * self._sign > 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = q[:, :2] / q[:, 2:3]
        return uv / self.scale, front


def load_calibration(path: str | Path) -> FloorMap:
    """A calibration YAML file -> FloorMap; errors name the file and field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: calibration file not found")
    return FloorMap.from_config(load_config(path, CalibrationConfig), str(path))
