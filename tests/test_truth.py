"""The clip's floor truth: the analytics' footprint rule applied to the exact silhouette."""

import numpy as np
import pytest

from blender.annotate import project_triangles, silhouette
from blender.truth import footprint_truth
from pipeline.analytics.calibration import CalibrationConfig, FloorMap

W, H = 320, 240


def _camera(c=(0.0, 0.0, 4.0), tilt_deg=40.0, f=300.0):
    """P = K [R | -R c] of a camera at c looking along +y, tilted down by tilt_deg."""
    t = np.radians(tilt_deg)
    forward = np.array([0, np.cos(t), -np.sin(t)])
    right = np.array([1.0, 0, 0])
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])
    K = np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])
    return K @ np.c_[R, -R @ np.asarray(c)]


def _box(x0, y0, z0, x1, y1, z1):
    v = np.array([[x, y, z] for x in (x0, x1) for y in (y0, y1) for z in (z0, z1)], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    t = np.array([tri for a, b, c, d in quads for tri in ((a, b, c), (a, c, d))])
    return v, t


def _truth(v, t, P):
    floor = FloorMap.from_config(CalibrationConfig(image_size=(W, H), camera_matrix=P.tolist()))
    return footprint_truth(silhouette(v, t, P, W, H), floor)


def test_two_fork_tips_give_the_point_between_them_on_the_floor():
    P = _camera()
    # two forks 3 cm above the floor, pointing at the camera, 0.5 m apart (a jack's)
    a_v, a_t = _box(-0.33, 5.0, 0.03, -0.17, 6.2, 0.085)
    b_v, b_t = _box(0.17, 5.0, 0.03, 0.33, 6.2, 0.085)
    v, t = np.r_[a_v, b_v], np.r_[a_t, b_t + len(a_v)]
    x, y = _truth(v, t, P)
    assert x == pytest.approx(0.0, abs=0.02)            # between the tips, not at one of them
    assert 5.0 < y < 5.0 + 0.03 * 5.0 / 4.0 + 0.05      # just beyond the near edge (its height's parallax)


def test_a_box_on_the_floor_stands_at_its_near_edge_and_out_of_view_is_none():
    P = _camera()
    v, t = _box(-0.2, 6.0, 0.0, 0.2, 6.3, 1.7)  # a person-sized block standing on the floor
    x, y = _truth(v, t, P)
    assert x == pytest.approx(0.0, abs=0.02) and y == pytest.approx(6.0, abs=0.03)
    assert project_triangles(v, t, P).shape[0] > 0
    far_v, far_t = _box(40.0, 6.0, 0.0, 40.4, 6.3, 1.7)  # far outside the extended canvas
    assert _truth(far_v, far_t, P) is None
