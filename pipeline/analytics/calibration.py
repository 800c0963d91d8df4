"""Ground-plane calibration: image pixels <-> floor metres through a homography, after the
lens (optional) is undone.

The homography comes from four or more floor points the user measured (pixel -> metre
pairs, fitted with OpenCV's findHomography), from a full 3x4 camera matrix (rendered clips
write theirs), or from the one pose (rvec/tvec) of the lens's calibration: the floor is the
plane z = 0, so the projection's columns 0, 1 and 3 map floor (x, y, 1) to pixels.

A wide-angle camera bends straight floor lines, which no homography can follow: `lens:` (an
OpenCV calibration file, pipeline/lens.py, the one blender's scene.camera.calibration reads, or
its keys inline) undistorts pixels onto the ideal pinhole camera of its camera_matrix before
the homography, and distorts floor points back for drawing. Measured points are pixels of the
distorted frame; a 3x4 camera_matrix then maps to undistorted pixels of that pinhole.
File format: docs/DESIGN.md (calibration file).
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import cv2
import numpy as np
from pydantic import field_validator, model_validator

from pipeline.common import StrictModel, UserError, load_config, mapping_or
from pipeline.lens import (
    HALF_PIXEL,
    Calibration,
    corner_pixels,
    distort_normalised,
    make_calibration,
    undistort_pixels,
)
from pipeline.lens import load_calibration as load_lens_file

COLLINEAR_TOL = 1e-3   # a triangle this thin (area / longest side^2) counts as a line
# a floor point whose distorted pixel does not undistort back to it within this (normalised
# units) lies where the lens polynomial folds over, far outside the calibrated view
LENS_ROUND_TRIP_TOL = 1e-4


class FloorPoint(StrictModel):
    pixel: tuple[float, float]   # (u, v) in pixels of an image of `image_size`, from the top-left corner
    floor: tuple[float, float]   # (x, y) on the floor, metres


class LensConfig(StrictModel):
    """The keys of an OpenCV calibration file (pipeline/lens.py), given inline."""

    camera_matrix: list[list[float]]              # 3x3, OpenCV pixels (pixel i's centre at i)
    dist_coeffs: list[float] | None = None        # pinhole k1 k2 p1 p2 [k3 ...] or fisheye k1..k4
    distortion_model: str | None = None           # pinhole (default) | fisheye (and OpenCV's aliases)
    image_width: int | None = None
    image_height: int | None = None
    rvec: list[float] | list[list[float]] | None = None
    tvec: list[float] | list[list[float]] | None = None

    @model_validator(mode="after")
    def _check(self) -> LensConfig:
        self.calibration("")   # the checks of the file reader: one set of rules for both
        return self

    def calibration(self, where: str) -> Calibration:
        if (self.image_width is None) != (self.image_height is None):
            raise ValueError("image_width/image_height: expected both, or neither")
        size = None if self.image_width is None else (self.image_width, self.image_height)
        return make_calibration(where, self.camera_matrix, self.dist_coeffs, self.distortion_model, size,
                                self.rvec, self.tvec)


class CalibrationConfig(StrictModel):
    image_size: tuple[int, int] | None = None        # (width, height) the pixels refer to; default: the lens's
    points: list[FloorPoint] | None = None           # 4+ measured floor points (pixels of the distorted frame)
    camera_matrix: list[list[float]] | None = None   # 3x4, world (x, y, z, 1) -> (u*w, v*w, w), undistorted pixels
    # lens distortion: an OpenCV calibration file (relative to this file) or its keys inline
    lens: str | LensConfig | None = None

    @field_validator("lens", mode="wrap")
    @classmethod
    def _file_or_inline(cls, v, handler):
        return mapping_or(LensConfig, v, handler)

    @model_validator(mode="after")
    def _one_source(self) -> CalibrationConfig:
        if self.points is not None and self.camera_matrix is not None:
            raise ValueError("expected one of points (4+ pixel/floor pairs) or camera_matrix (3x4), not both")
        if self.points is None and self.camera_matrix is None and self.lens is None:
            raise ValueError("expected points (4+ pixel/floor pairs), camera_matrix (3x4) or a lens with one pose (rvec/tvec)")
        if self.camera_matrix is not None and np.asarray(self.camera_matrix, dtype=object).shape != (3, 4):
            raise ValueError("camera_matrix: expected 3 rows of 4 numbers")
        if self.image_size is not None and min(self.image_size) <= 0:
            raise ValueError("image_size: expected [width, height] > 0")
        if self.image_size is None and self.lens is None:
            raise ValueError("image_size: missing; expected [width, height] of the frames the pixels refer to")
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
    calibration's (a video run may downscale frames); `lens` (optional) is undone before the
    homography H, which maps undistorted pixels of the lens's camera_matrix to the floor."""

    def __init__(self, H: np.ndarray, image_size: tuple[int, int], lens: Calibration | None = None):
        self.H = np.asarray(H, dtype=np.float64)
        self.H_inv = np.linalg.inv(self.H)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.lens = lens
        self.scale = np.ones(2)
        # the bottom-centre pixel sees the floor: pixels (and floor points) whose homogeneous w
        # has its sign are in front of the camera, the others above the horizon / behind it
        bottom = undistort_image_pixels(lens, [[self.image_size[0] / 2, self.image_size[1]]])[0]
        self._sign = 1.0 if (self.H @ np.array([bottom[0], bottom[1], 1.0]))[2] >= 0 else -1.0

    @classmethod
    def from_config(cls, cfg: CalibrationConfig, where: str = "calibration", base_dir: str | Path = ".") -> FloorMap:
        """`base_dir`: where a lens file path is relative to (the calibration file's folder)."""
        lens = _lens(cfg.lens, where, Path(base_dir))
        size = cfg.image_size
        if lens is not None and lens.image_size is not None:
            if size is not None and tuple(size) != lens.image_size:
                raise UserError(f"{where}: image_size {list(size)} differs from lens: {_named(lens)}image_width/"
                                f"image_height {list(lens.image_size)}; expected the size the lens was calibrated at")
            size = lens.image_size
        if size is None:
            raise UserError(f"{where}: image_size: missing (the lens has no image_width/image_height either); "
                            f"expected [width, height] of the frames the pixels refer to")
        if cfg.points is not None:
            px = np.array([p.pixel for p in cfg.points], dtype=np.float64).reshape(-1, 2)
            if lens is not None:
                px = undistort_image_pixels(lens, px)
            H = fit_homography(px, [p.floor for p in cfg.points], f"{where}: points")
            return cls(H, size, lens)
        if cfg.camera_matrix is not None:
            P, field = np.asarray(cfg.camera_matrix, dtype=np.float64), "camera_matrix"
        else:
            if len(lens.rvecs) != 1:
                raise UserError(f"{where}: lens: {_named(lens)}rvec/tvec: {len(lens.rvecs)} poses; without points or "
                                f"camera_matrix the floor comes from the lens's pose, expected exactly one")
            R, _ = cv2.Rodrigues(lens.rvecs[0].reshape(3, 1))
            P, field = corner_pixels(lens.camera_matrix) @ np.c_[R, lens.tvecs[0]], "lens: rvec/tvec"
        G = P[:, [0, 1, 3]]  # floor (x, y, 1) -> pixels
        if abs(np.linalg.det(G)) < 1e-12:
            raise UserError(f"{where}: {field}: the camera sees the floor edge-on; expected a camera looking at the floor")
        return cls(np.linalg.inv(G), size, lens)

    def for_frame(self, width: int, height: int, where: str = "calibration") -> FloorMap:
        """This map for frames of `width` x `height` (same aspect as the calibration's image_size)."""
        cw, ch = self.image_size
        if abs(cw / ch - width / height) > 0.01:
            raise UserError(f"{where}: image_size {cw}x{ch} does not match the video's {width}x{height} frames; "
                            f"expected the same aspect ratio")
        m = FloorMap(self.H, self.image_size, self.lens)
        m.scale = np.array([cw / width, ch / height])
        return m

    def to_floor(self, pixels) -> np.ndarray:
        """(N, 2) processed-frame pixels -> (N, 2) floor metres (NaN above the horizon)."""
        p = undistort_image_pixels(self.lens, np.asarray(pixels, dtype=np.float64).reshape(-1, 2) * self.scale)
        q = np.c_[p, np.ones(len(p))] @ self.H.T
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = q[:, :2] / q[:, 2:3]
        xy[~(q[:, 2] * self._sign > 1e-12)] = np.nan
        return xy

    def to_image(self, floor) -> tuple[np.ndarray, np.ndarray]:
        """(N, 2) floor metres -> ((N, 2) processed-frame pixels, (N,) bool: in front of the camera
        and, with a lens, where its model is one-to-one)."""
        f = np.asarray(floor, dtype=np.float64).reshape(-1, 2)
        q = np.c_[f, np.ones(len(f))] @ self.H_inv.T
        front = q[:, 2] * self._sign > 1e-12
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = q[:, :2] / q[:, 2:3]
        uv, ok = distort_image_pixels(self.lens, np.where(front[:, None], uv, np.nan))
        return uv / self.scale, front & ok


# ---- the lens: calibration-image pixels (from the top-left corner) <-> undistorted pixels

def undistort_image_pixels(lens: Calibration | None, px) -> np.ndarray:
    """(N, 2) pixels of the calibration image -> undistorted pixels of the lens's camera_matrix."""
    px = np.asarray(px, np.float64).reshape(-1, 2)
    if lens is None:
        return px
    return undistort_pixels(lens, px - HALF_PIXEL, lens.camera_matrix) + HALF_PIXEL


def distort_image_pixels(lens: Calibration | None, px) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of undistort_image_pixels: ((N, 2) pixels, (N,) bool: finite and inside the
    range where the lens model is one-to-one)."""
    px = np.asarray(px, np.float64).reshape(-1, 2)
    ok = np.isfinite(px).all(axis=1)
    if lens is None:
        return px, ok
    K = lens.camera_matrix
    norm = (np.where(ok[:, None], px, 0.0) - HALF_PIXEL - K[:2, 2]) @ np.linalg.inv(K[:2, :2]).T
    out = distort_normalised(lens, norm) + HALF_PIXEL
    back = undistort_pixels(lens, out - HALF_PIXEL)
    with np.errstate(invalid="ignore"):
        ok &= np.isfinite(out).all(axis=1) & (np.abs(back - norm).max(axis=1) < LENS_ROUND_TRIP_TOL)
    return out, ok


def _named(lens: Calibration) -> str:
    """'FILE: ' for a lens read from a file, '' for one given inline (for messages)."""
    return f"{lens.path}: " if lens.path else ""


def _lens(lens: str | LensConfig | None, where: str, base_dir: Path) -> Calibration | None:
    if lens is None:
        return None
    if isinstance(lens, LensConfig):
        return lens.calibration("")   # its keys were checked when the config was read
    try:
        return load_lens_file(base_dir / lens)
    except ValueError as e:
        raise UserError(f"{where}: lens: {e}") from None


def load_calibration(path: str | Path) -> FloorMap:
    """A calibration YAML file -> FloorMap; errors name the file and field."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: calibration file not found")
    return FloorMap.from_config(load_config(path, CalibrationConfig), str(path), path.parent)
