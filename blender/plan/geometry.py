"""Pure geometry shared by the planner and the Blender view (numpy only, no bpy).

Floor footprints (oriented rectangles) and their overlap test, pallet-jack dimensions and
the pinhole camera of a plan (look-at, Blender Euler, projection).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from blender.plan.scene_plan import Camera, Jack, RackRow

# ---------------------------------------------------------------- footprints


@dataclass(frozen=True)
class Footprint:
    """An oriented rectangle on the floor: centre, yaw, length along local +X, width."""

    x: float
    y: float
    yaw: float
    length: float
    width: float


def footprint_corners(fp: Footprint) -> np.ndarray:
    """(4, 2) corners of an oriented rectangle."""
    c, s = math.cos(fp.yaw), math.sin(fp.yaw)
    hl, hw = fp.length / 2, fp.width / 2
    local = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
    rot = np.array([[c, -s], [s, c]])
    return local @ rot.T + np.array([fp.x, fp.y])


def footprints_overlap(a: Footprint, b: Footprint, margin: float = 0.0) -> bool:
    """Separating-axis test of two oriented rectangles, each grown by `margin` on every side."""
    if math.hypot(a.x - b.x, a.y - b.y) > (_radius(a, margin) + _radius(b, margin)) * (1 + 1e-9):
        return False   # their circumcircles are apart: so are they
    pa, pb = footprint_corners(_grow(a, margin)), footprint_corners(_grow(b, margin))
    for poly in (pa, pb):
        for i in range(2):
            edge = poly[i + 1] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            qa, qb = pa @ axis, pb @ axis
            if qa.max() <= qb.min() or qb.max() <= qa.min():
                return False
    return True


def _grow(fp: Footprint, m: float) -> Footprint:
    return replace(fp, length=fp.length + 2 * m, width=fp.width + 2 * m)


def _radius(fp: Footprint, m: float) -> float:
    """Centre to corner, grown by `m` on every side."""
    return math.hypot(fp.length + 2 * m, fp.width + 2 * m) / 2


def rack_footprint(row: RackRow) -> Footprint:
    return Footprint((row.x0 + row.x1) / 2, (row.y0 + row.y1) / 2, 0.0, row.x1 - row.x0, row.y1 - row.y0)


# ---------------------------------------------------------------- pallet jacks

JACK_PIVOT_Z = {"manual": 0.4, "electric": 0.85}   # tiller pivot height above the floor
# the tiller's reach behind the body never drops below this (its base casting) ...
MIN_HANDLE_REACH_M = 0.12
# ... and a stand-on platform sticks out at least this far
PLATFORM_REACH_M = 0.5
PLATFORM_LENGTH_M = 0.45  # the deck behind the drive unit ...
PLATFORM_TOP_M = 0.15     # ... and its top, where a rider's feet are


def jack_extent(j: Jack) -> tuple[float, float]:
    """(x_min, x_max) of a jack along its local +X (forks point to +X, handle at -X), origin = footprint centre."""
    a = math.radians(j.handle_angle_deg)
    handle_reach = max(MIN_HANDLE_REACH_M, j.handle_length * math.sin(a) + 0.1)  # + the grip
    if j.platform:
        handle_reach = max(handle_reach, PLATFORM_REACH_M)
    total = j.fork_length + j.body_length + handle_reach
    return -total / 2, total / 2


def jack_footprint(j: Jack) -> Footprint:
    """The floor a jack takes (forks, body and tiller; no pusher), at its place in the plan."""
    x_min, x_max = jack_extent(j)
    return Footprint(j.x, j.y, j.yaw, x_max - x_min, j.width)


def jack_grip(j: Jack) -> tuple[float, float]:
    """(x, z) of the tiller grip in the jack's local frame."""
    x_min, x_max = jack_extent(j)
    pivot_x = x_max - j.fork_length - j.body_length * 0.5
    pivot_z = JACK_PIVOT_Z[j.kind]
    a = math.radians(j.handle_angle_deg)
    return pivot_x - j.handle_length * math.sin(a), pivot_z + j.handle_length * math.cos(a)


# ---------------------------------------------------------------- camera

def look_at_matrix(loc: Sequence[float], target: Sequence[float], roll_rad: float = 0.0) -> np.ndarray:
    """3x3 rotation whose columns are the camera's X (right), Y (up) and Z (backwards) in world."""
    loc, target = np.asarray(loc, float), np.asarray(target, float)
    f = target - loc
    f /= np.linalg.norm(f)
    up = np.array([0.0, 0.0, 1.0])
    r = np.cross(f, up)
    if np.linalg.norm(r) < 1e-6:  # looking straight down
        r = np.array([1.0, 0.0, 0.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    c, s = math.cos(roll_rad), math.sin(roll_rad)
    r, u = c * r + s * u, -s * r + c * u
    return np.stack([r, u, -f], axis=1)


def matrix_to_euler_xyz(R: np.ndarray) -> list[float]:
    """Blender's XYZ Euler (R = Rz @ Ry @ Rx) of a rotation matrix."""
    b = math.asin(-float(np.clip(R[2, 0], -1, 1)))
    a = math.atan2(R[2, 1], R[2, 2])
    c = math.atan2(R[1, 0], R[0, 0])
    return [a, b, c]


# a full-frame 36 mm sensor: the focal length then reads like a photographer's
SENSOR_WIDTH_MM = 36.0


def aimed_camera(kind: str, loc: Sequence[float], target: Sequence[float], roll_rad: float,
                 fov_deg: float) -> Camera:
    """A camera at `loc` looking at `target`, rolled by `roll_rad`, with horizontal `fov_deg`."""
    R = look_at_matrix(loc, target, roll_rad)
    return Camera(kind=kind, location=[float(v) for v in loc], look_at=[float(v) for v in target],
                  roll_deg=math.degrees(roll_rad), fov_deg=fov_deg, sensor_width_mm=SENSOR_WIDTH_MM,
                  focal_mm=SENSOR_WIDTH_MM / 2 / math.tan(math.radians(fov_deg) / 2),
                  matrix=R.tolist(), rotation_euler=matrix_to_euler_xyz(R))


def project(cam: Camera, points: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """World points (N,3) -> (N,2) normalized image coords (0..1, y down) and depth (N,)."""
    R = np.asarray(cam.matrix, float)
    pc = (np.asarray(points, float) - np.asarray(cam.location, float)) @ R
    depth = -pc[:, 2]
    tan_h = math.tan(math.radians(cam.fov_deg) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = 0.5 + pc[:, 0] / np.where(depth > 1e-6, depth, np.nan) / tan_h / 2
        v = 0.5 - pc[:, 1] / np.where(depth > 1e-6, depth, np.nan) / (tan_h / aspect) / 2
    return np.stack([u, v], axis=1), depth
