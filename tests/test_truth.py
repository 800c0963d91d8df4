"""The clip's floor truth: the floor point under an object's lowest image point, from geometry."""

import numpy as np
import pytest

from blender.truth import camera_centre, footprint_point


def _look_down_camera(c, tilt_deg=50.0, f=500.0, size=(640, 480)):
    """P = K [R | -R c] of a camera at c looking along +y, tilted down by tilt_deg."""
    t = np.radians(tilt_deg)
    forward = np.array([0, np.cos(t), -np.sin(t)])
    right = np.array([1.0, 0, 0])
    down = np.cross(forward, right)
    R = np.stack([right, down, forward])  # rows: camera x (right), y (down), z (forward)
    K = np.array([[f, 0, size[0] / 2], [0, f, size[1] / 2], [0, 0, 1]])
    return K @ np.c_[R, -R @ c]


def test_camera_centre_is_recovered():
    c = np.array([1.0, -2.0, 5.0])
    assert np.allclose(camera_centre(_look_down_camera(c)), c)


def test_footprint_of_a_raised_low_point_lies_on_its_ray_beyond_it():
    c = np.array([0.0, 0.0, 5.0])
    P = _look_down_camera(c)
    # a jack-like box: its near bottom edge (y = 4) 3 cm above the floor, a wheel further back
    box = np.array([[x, y, z] for x in (-0.3, 0.3) for y in (4.0, 5.2) for z in (0.03, 0.2)])
    wheel = np.array([[0.0, 5.0, 0.0]])
    x, y = footprint_point(np.r_[box, wheel], P)
    # the near bottom edge is lowest in the image; its ray meets the floor 3 cm * 4 m / 4.97 m further on
    assert x == pytest.approx(-0.3 * 5 / 4.97, abs=1e-9) or x == pytest.approx(0.3 * 5 / 4.97, abs=1e-9)
    assert y == pytest.approx(4.0 * 5 / 4.97, abs=1e-9)
    # the floor point projects to the same pixel as the vertex (same ray)
    def px(p):
        u = P @ np.r_[p, 1.0]
        return u[:2] / u[2]
    near = box[(box[:, 1] == 4.0) & (box[:, 2] == 0.03)]
    assert any(np.allclose(px(np.array([x, y, 0.0])), px(v)) for v in near)


def test_a_point_on_the_floor_is_its_own_footprint_and_points_behind_are_ignored():
    c = np.array([0.0, 0.0, 3.0])
    P = _look_down_camera(c, tilt_deg=30)
    sole = np.array([[0.2, 3.0, 0.0], [0.2, 3.3, 0.0], [0.2, 3.2, 1.7]])
    behind = np.array([[0.0, -2.0, 0.0]])  # behind the camera: projects with w < 0
    assert footprint_point(np.r_[sole, behind], P) == pytest.approx((0.2, 3.0))
