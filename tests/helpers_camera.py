"""Site cameras for tests: OpenCV calibration files (cv2.FileStorage, as calibrateCamera users
write them) and OpenCV poses of a camera that looks along +y, tilted down."""

from __future__ import annotations

import math

import cv2
import numpy as np

from blender.plan.calibration import opencv_pose

W, H = 64, 48
K = np.array([[52.0, 0, 33.0], [0, 51.0, 22.5], [0, 0, 1]])
DIST = np.array([-0.3, 0.1, 0.002, -0.001, -0.02])   # k1 k2 p1 p2 k3: strong barrel
FISHEYE = np.array([0.05, -0.02, 0.004, -0.001])
TILT = math.radians(25)


def site_pose(loc=(5.0, 2.0, 3.0), tilt=TILT):
    """(rvec, tvec) of a camera at `loc` looking along +Y, tilted down by `tilt`."""
    fwd = np.array([0.0, math.cos(tilt), -math.sin(tilt)])
    x = np.array([1.0, 0, 0])
    M = np.stack([x, np.cross(-fwd, x), -fwd], axis=1)
    return opencv_pose(M, loc)


def write_cal(path, K=K, dist=DIST, size=(W, H), pose=True, model=None, **extra):
    """An OpenCV calibration file; pose True: site_pose(), or (rvec, tvec), or None/False."""
    fs = cv2.FileStorage(str(path), cv2.FILE_STORAGE_WRITE)
    if size:
        fs.write("image_width", size[0])
        fs.write("image_height", size[1])
    if K is not None:
        fs.write("camera_matrix", np.asarray(K, float))
    if dist is not None:
        fs.write("dist_coeffs", np.asarray(dist, float).reshape(1, -1))
    if model:
        fs.write("distortion_model", model)
    if pose:
        r, t = site_pose() if pose is True else pose
        fs.write("rvec", np.asarray(r, float).reshape(-1, 1))
        fs.write("tvec", np.asarray(t, float).reshape(-1, 1))
    for k, v in extra.items():
        fs.write(k, v)
    fs.release()
    return str(path)


def project(points, rvec, tvec, K, dist, model="pinhole") -> np.ndarray:
    """OpenCV's own projection of world points (N, 3) -> (N, 2) pixels (OpenCV convention)."""
    pts = np.ascontiguousarray(np.asarray(points, np.float64).reshape(-1, 1, 3))
    # fisheye.projectPoints wants contiguous (3, 1) vectors
    r = np.ascontiguousarray(np.asarray(rvec, np.float64).reshape(3, 1))
    t = np.ascontiguousarray(np.asarray(tvec, np.float64).reshape(3, 1))
    if model == "fisheye":
        uv, _ = cv2.fisheye.projectPoints(pts, r, t, np.asarray(K, np.float64), np.asarray(dist, np.float64))
    else:
        uv, _ = cv2.projectPoints(pts, r, t, np.asarray(K, np.float64), np.asarray(dist, np.float64))
    return uv.reshape(-1, 2)
