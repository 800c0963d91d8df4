"""A camera's calibration in OpenCV's terms: the calibration file format and lens distortion of
pixels (cv2 + numpy only: no torch, no bpy).

One reader for two users: blender.plan renders a site's camera from it (`scene.camera.calibration`)
and pipeline.analytics undistorts a wide-angle camera's pixels before its floor homography
(`lens:` of the calibration file). Both take the same file, or the same keys inline.

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

Pixel convention: OpenCV's (pixel i's centre is at i). The analytics measure pixels from the
image's top-left corner (pixel i covers [i, i+1)) and shift by half a pixel on the way in and out.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MODELS = {"pinhole": "pinhole", "plumb_bob": "pinhole", "rational_polynomial": "pinhole",
          "fisheye": "fisheye", "equidistant": "fisheye"}
PINHOLE_COEFFS = (4, 5, 8, 12, 14)
# the iterative undistortion's stopping rule: the default 5 iterations leave tenths of a pixel
# at the corners of strongly distorted lenses
UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-10)


@dataclass(frozen=True)
class Calibration:
    path: str                          # the file, or where inline keys were given (for messages)
    camera_matrix: np.ndarray          # 3x3
    dist_coeffs: np.ndarray            # (n,)
    model: str                         # pinhole | fisheye
    image_size: tuple[int, int] | None
    rvecs: np.ndarray                  # (N, 3), N = 0 without a pose
    tvecs: np.ndarray


def _bad(path: str, field: str, what: str) -> ValueError:
    return ValueError(f"{path}: {field}: {what}" if path else f"{field}: {what}")


def _finite(path: str, name: str, a: np.ndarray) -> np.ndarray:
    if not np.isfinite(a).all():
        raise _bad(path, name, "holds a non-finite value")
    return a


def make_calibration(path: str, camera_matrix, dist_coeffs=None, distortion_model: str | None = None,
                     image_size: tuple[int, int] | None = None, rvec=None, tvec=None) -> Calibration:
    """Check the keys of a calibration (read from a file or given inline) -> Calibration; any
    problem is a ValueError naming `path` (if any) and the field."""
    if camera_matrix is None:
        raise _bad(path, "camera_matrix", "missing (3x3: fx 0 cx / 0 fy cy / 0 0 1)")
    K = _finite(path, "camera_matrix", np.asarray(camera_matrix, dtype=np.float64))
    K = K.reshape(3, 3) if K.size == 9 else K
    if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0 or abs(K[2, 2] - 1) > 1e-9 or K[2, :2].any():
        raise _bad(path, "camera_matrix", "expected 3x3 [[fx, 0, cx], [0, fy, cy], [0, 0, 1]] with fx, fy > 0")
    model = "pinhole" if distortion_model is None else distortion_model
    if model not in MODELS:
        raise _bad(path, "distortion_model", f"{model!r}: expected one of {sorted(MODELS)}")
    model = MODELS[model]
    if dist_coeffs is None:
        D = np.zeros(4 if model == "fisheye" else 5)
    else:
        D = _finite(path, "dist_coeffs", np.asarray(dist_coeffs, dtype=np.float64).ravel())
    sizes = (4,) if model == "fisheye" else PINHOLE_COEFFS
    if D.size not in sizes:
        raise _bad(path, "dist_coeffs", f"{D.size} values; the {model} model takes {' or '.join(map(str, sizes))}")
    rvecs, tvecs = _poses(path, rvec, tvec)
    return Calibration(path, K, D, model, image_size, rvecs, tvecs)


def _poses(path: str, r, t) -> tuple[np.ndarray, np.ndarray]:
    if r is None and t is None:
        return np.zeros((0, 3)), np.zeros((0, 3))
    if r is None or t is None:
        raise _bad(path, "rvec/tvec", "give both or neither")
    r = _finite(path, "rvec", np.asarray(r, dtype=np.float64))
    t = _finite(path, "tvec", np.asarray(t, dtype=np.float64))
    if r.size % 3 or r.size != t.size or r.size == 0:
        raise _bad(path, "rvec/tvec", f"expected 3 values each (or N x 3 for N poses), got {r.size} and {t.size}")
    r, t = r.reshape(-1, 3), t.reshape(-1, 3)
    for i in range(len(r)):
        height = camera_centre(r[i], t[i])[2]
        if height <= 0:
            raise _bad(path, "rvec/tvec", f"pose {i} puts the camera at height {height:.3f} m; the world "
                                          "frame must have z up and the floor at z = 0")
    return r, t


def camera_centre(rvec, tvec) -> np.ndarray:
    """Where an OpenCV camera stands in the world: -R^T tvec."""
    R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))
    return -R.T @ np.asarray(tvec, np.float64).reshape(3)


# ---------------------------------------------------------------- the file

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


def _image_size(fs: cv2.FileStorage, path: str) -> tuple[int, int] | None:
    w, h = fs.getNode("image_width"), fs.getNode("image_height")
    if w.empty() and h.empty():
        return None
    if w.empty() or h.empty() or not (w.isInt() and h.isInt()) or min(w.real(), h.real()) < 16:
        raise _bad(path, "image_width/image_height", "expected both, as integers >= 16")
    return int(w.real()), int(h.real())


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
        node = fs.getNode("distortion_model")
        model = None if node.empty() or node.isNone() else node.string()
        return make_calibration(path, _read_matrix(fs, path, "camera_matrix"), _read_matrix(fs, path, "dist_coeffs"),
                                model, _image_size(fs, path), _read_matrix(fs, path, "rvec"),
                                _read_matrix(fs, path, "tvec"))
    finally:
        fs.release()


@functools.lru_cache(maxsize=8)
def cached_calibration(path: str) -> Calibration:
    return load_calibration(path)


# ---------------------------------------------------------------- pixel conventions

# OpenCV puts pixel i's centre at i; blender.cycles and the analytics measure from the image's
# top-left corner (pixel i covers [i, i+1))
HALF_PIXEL = 0.5


def corner_pixels(K) -> np.ndarray:
    """An OpenCV camera matrix (pixel centres at integers) for pixels from the top-left corner."""
    return np.array([[1, 0, HALF_PIXEL], [0, 1, HALF_PIXEL], [0, 0, 1.0]]) @ np.asarray(K, np.float64)


# ---------------------------------------------------------------- distortion of pixels
# `lens`: anything with camera_matrix, dist_coeffs and model (a Calibration, a scene plan's Lens)

def undistort_pixels(lens, pts: np.ndarray, P: np.ndarray | None = None) -> np.ndarray:
    """Distorted pixel coords (N, 2) -> undistorted coords: normalised (P None) or pixels of P."""
    K = np.asarray(lens.camera_matrix, np.float64)
    D = np.asarray(lens.dist_coeffs, np.float64)
    src = np.ascontiguousarray(pts, np.float64).reshape(-1, 1, 2)
    if len(src) == 0:
        return np.zeros((0, 2))
    if lens.model == "fisheye":
        out = cv2.fisheye.undistortPoints(src, K, D, P=P)
    else:
        out = cv2.undistortPointsIter(src, K, D, None, P, UNDISTORT_CRITERIA)
    return out.reshape(-1, 2)


def distort_normalised(lens, xy: np.ndarray) -> np.ndarray:
    """Normalised image coords (N, 2) (x/z, y/z in the camera frame) -> distorted pixels (N, 2)."""
    K = np.asarray(lens.camera_matrix, np.float64)
    D = np.asarray(lens.dist_coeffs, np.float64)
    xy = np.asarray(xy, np.float64).reshape(-1, 2)
    if len(xy) == 0:
        return np.zeros((0, 2))
    rays = np.ascontiguousarray(np.c_[xy, np.ones(len(xy))].reshape(-1, 1, 3))
    zero = np.zeros(3)
    if lens.model == "fisheye":
        uv, _ = cv2.fisheye.projectPoints(rays, zero, zero, K, D)
    else:
        uv, _ = cv2.projectPoints(rays, zero, zero, K, D)
    return uv.reshape(-1, 2)
