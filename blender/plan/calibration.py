"""A site's camera calibration (OpenCV YAML) -> the plan's Lens and the site's poses (cv2, no bpy).

File format: what cv2.FileStorage reads (the `%YAML:1.0` files cv2.calibrateCamera samples
and `cv2.FileStorage.write` produce, or plain YAML lists):

    camera_matrix: 3x3                      fx 0 cx / 0 fy cy / 0 0 1, pixels
    dist_coeffs: 4, 5, 8, 12 or 14 values   k1 k2 p1 p2 [k3 ...] (fisheye: k1 k2 k3 k4)
    distortion_model: pinhole | fisheye     optional (plumb_bob, rational_polynomial = pinhole;
                                            equidistant = fisheye); default pinhole
    image_width, image_height               optional; the size the calibration was made at
    rvec, tvec                              optional; 3 values, or N x 3 for N poses of the site
                                            (OpenCV extrinsics: x_cam = R(rvec) X + tvec, the world
                                            z axis up, the floor at z = 0, metres)

The OpenCV camera looks down +z with y down; Blender's looks down -z with y up, so the
Blender camera's axes in world are R^T @ diag(1, -1, -1) and it stands at -R^T tvec.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from blender.plan.scene_plan import Lens

MODELS = {"pinhole": "pinhole", "plumb_bob": "pinhole", "rational_polynomial": "pinhole",
          "fisheye": "fisheye", "equidistant": "fisheye"}
PINHOLE_COEFFS = (4, 5, 8, 12, 14)
# the undistorted render may be at most this many times the calibrated image per side:
# beyond it a (fisheye) lens sees too wide for one perspective render
MAX_RENDER_FACTOR = 4.0
CV_TO_BLENDER = np.diag([1.0, -1.0, -1.0])


@dataclass(frozen=True)
class Calibration:
    path: str
    camera_matrix: np.ndarray          # 3x3
    dist_coeffs: np.ndarray            # (n,)
    model: str                         # pinhole | fisheye
    image_size: tuple[int, int] | None
    rvecs: np.ndarray                  # (N, 3), N = 0 without a pose
    tvecs: np.ndarray


def _bad(path: str, field: str, what: str) -> ValueError:
    return ValueError(f"{path}: {field}: {what}")


def _read_matrix(fs: cv2.FileStorage, path: str, name: str) -> np.ndarray | None:
    node = fs.getNode(name)
    if node.empty() or node.isNone():
        return None
    if node.isSeq():  # plain YAML list (nested or flat)
        rows = [node.at(i) for i in range(node.size())]
        try:
            if rows and rows[0].isSeq():
                return np.array([[r.at(j).real() for j in range(r.size())] for r in rows], dtype=np.float64)
            return np.array([r.real() for r in rows], dtype=np.float64)
        except Exception:  # noqa: BLE001 - FileNode raises cv2.error on non-numbers
            raise _bad(path, name, "expected numbers") from None
    if node.isMap():
        m = node.mat()
        if m is None:
            raise _bad(path, name, "expected an !!opencv-matrix or a list of numbers")
        return np.asarray(m, dtype=np.float64)
    raise _bad(path, name, "expected a matrix, got a single value")


def _finite(path: str, name: str, a: np.ndarray) -> np.ndarray:
    if not np.isfinite(a).all():
        raise _bad(path, name, "holds a non-finite value")
    return a


def load_calibration(path: str | Path) -> Calibration:
    """Parse and check a calibration file; any problem is a ValueError naming the file and field."""
    path = str(path)
    if not Path(path).is_file():
        raise ValueError(f"{path}: calibration file not found")
    try:
        fs = cv2.FileStorage(path, cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_FORMAT_YAML)
    except (cv2.error, SystemError) as e:  # the binding wraps cv2.error in a SystemError
        err = e.__cause__ or e.__context__ or e
        text = next((ln for ln in str(err).splitlines() if "error:" in ln), "") or "parse error"
        raise ValueError(f"{path}: not an OpenCV YAML file ({text.split('error:')[-1].strip()[:120]})") from None
    try:
        if not fs.isOpened():
            raise ValueError(f"{path}: not an OpenCV YAML file")
        K = _read_matrix(fs, path, "camera_matrix")
        if K is None:
            raise _bad(path, "camera_matrix", "missing (3x3: fx 0 cx / 0 fy cy / 0 0 1)")
        K = _finite(path, "camera_matrix", K.reshape(3, 3) if K.size == 9 else K)
        if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[2, 2] - 1) > 1e-9 or K[2, :2].any():
            raise _bad(path, "camera_matrix", "expected 3x3 [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
        node = fs.getNode("distortion_model")
        model = "pinhole" if node.empty() or node.isNone() else node.string()
        if model not in MODELS:
            raise _bad(path, "distortion_model", f"{model!r}: expected one of {sorted(MODELS)}")
        model = MODELS[model]
        D = _read_matrix(fs, path, "dist_coeffs")
        D = np.zeros(4 if model == "fisheye" else 5) if D is None else _finite(path, "dist_coeffs", D.ravel())
        sizes = (4,) if model == "fisheye" else PINHOLE_COEFFS
        if D.size not in sizes:
            raise _bad(path, "dist_coeffs", f"{D.size} values; the {model} model takes {' or '.join(map(str, sizes))}")
        size = _image_size(fs, path)
        rvecs, tvecs = _poses(fs, path)
    finally:
        fs.release()
    return Calibration(path, K, D, model, size, rvecs, tvecs)


def _image_size(fs: cv2.FileStorage, path: str) -> tuple[int, int] | None:
    w, h = fs.getNode("image_width"), fs.getNode("image_height")
    if w.empty() and h.empty():
        return None
    if w.empty() or h.empty() or not (w.isInt() and h.isInt()) or min(w.real(), h.real()) < 16:
        raise _bad(path, "image_width/image_height", "expected both, as integers >= 16")
    return int(w.real()), int(h.real())


def _poses(fs: cv2.FileStorage, path: str) -> tuple[np.ndarray, np.ndarray]:
    r, t = _read_matrix(fs, path, "rvec"), _read_matrix(fs, path, "tvec")
    if r is None and t is None:
        return np.zeros((0, 3)), np.zeros((0, 3))
    if r is None or t is None:
        raise _bad(path, "rvec/tvec", "give both or neither")
    r, t = _finite(path, "rvec", r), _finite(path, "tvec", t)
    if r.size % 3 or r.size != t.size:
        raise _bad(path, "rvec/tvec", f"expected 3 values each (or N x 3 for N poses), got {r.size} and {t.size}")
    r, t = r.reshape(-1, 3), t.reshape(-1, 3)
    for i in range(len(r)):
        _, loc = blender_pose(r[i], t[i])
        if loc[2] <= 0:
            raise _bad(path, "rvec/tvec", f"pose {i} puts the camera at height {loc[2]:.3f} m; the world "
                                          "frame must have z up and the floor at z = 0")
    return r, t


@functools.lru_cache(maxsize=8)
def cached_calibration(path: str) -> Calibration:
    return load_calibration(path)


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

def undistort_pixels(cal_lens: Lens, pts: np.ndarray, P: np.ndarray | None = None) -> np.ndarray:
    """Distorted pixel coords (N, 2) -> undistorted coords: normalised (P None) or pixels of P."""
    K = np.asarray(cal_lens.camera_matrix, np.float64)
    D = np.asarray(cal_lens.dist_coeffs, np.float64)
    src = np.ascontiguousarray(pts, np.float64).reshape(-1, 1, 2)
    if cal_lens.model == "fisheye":
        out = cv2.fisheye.undistortPoints(src, K, D, P=P)
    else:
        # the iterative solver with a tight criterion: the default 5 iterations leave
        # tenths of a pixel at the corners of strongly distorted lenses
        crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)
        out = cv2.undistortPointsIter(src, K, D, None, P, crit)
    return out.reshape(-1, 2)


def render_camera_matrix(lens: Lens) -> np.ndarray:
    """The centred pinhole K of the undistorted render (OpenCV convention: pixel i's centre is i)."""
    f = lens.render_focal_px
    w, h = lens.render_size
    return np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])


def make_lens(cal: Calibration, image_size: tuple[int, int]) -> Lens:
    """The plan's Lens: the render just covers every pixel of the calibrated image, undistorted."""
    w, h = image_size
    base = Lens(camera_matrix=cal.camera_matrix.tolist(), dist_coeffs=cal.dist_coeffs.tolist(), model=cal.model,
                image_size=[w, h], render_size=[w, h], render_focal_px=float(cal.camera_matrix[0, 0]))
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    border = np.concatenate([np.c_[xs[0], ys[0]], np.c_[xs[-1], ys[-1]], np.c_[xs[:, 0], ys[:, 0]],
                             np.c_[xs[:, -1], ys[:, -1]], np.c_[xs.ravel()[::97], ys.ravel()[::97]]])
    norm = undistort_pixels(base, border)
    if not np.isfinite(norm).all():
        raise ValueError(f"{cal.path}: dist_coeffs: the lens cannot be undistorted over the whole image")
    f = base.render_focal_px
    # +1 px per side: the remap's nearest and bilinear lookups stay inside the render
    rw = 2 * math.ceil(np.abs(norm[:, 0]).max() * f + 1.5)
    rh = 2 * math.ceil(np.abs(norm[:, 1]).max() * f + 1.5)
    if rw > MAX_RENDER_FACTOR * w or rh > MAX_RENDER_FACTOR * h:
        raise ValueError(f"{cal.path}: the calibrated field of view needs a {rw}x{rh} undistorted render "
                         f"(more than {MAX_RENDER_FACTOR:g}x the {w}x{h} image); a perspective render cannot cover it")
    base.render_size = [int(rw), int(rh)]
    return base


def lens_fov_deg(lens: Lens) -> float:
    """Horizontal field of view of the undistorted render camera."""
    return math.degrees(2 * math.atan(lens.render_size[0] / 2 / lens.render_focal_px))
