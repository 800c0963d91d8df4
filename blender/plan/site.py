"""A site's own things in the plan: its assets on the floor and its calibrated camera (no bpy).

Drawn only when the config asks for them, after everything a plan without them draws, so
existing seeds keep their plans.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from blender.plan.calibration import blender_pose, lens_fov_deg, make_lens
from blender.plan.draw import Rng, integer, uniform
from blender.plan.geometry import SENSOR_WIDTH_MM, Footprint, footprint_corners, matrix_to_euler_xyz
from blender.plan.placement import FloorSpace
from blender.plan.scene_plan import Camera, Lens, UserAsset
from pipeline.lens import Calibration, cached_calibration

PROP_RADIUS_FACTOR = 1.3          # "scatter" reaches as far as the generic props
WALL_GAP_M = (0.3, 0.8)           # "wall": clearance to the staging-area side wall
WALL_TRIES = 30
SITE_POSITION_TRIES = 50
SITE_MIN_DISTANCE_M = 1.0
SITE_MIN_HEIGHT_M = 0.2
ROOF_CLEARANCE_M = 0.8
AIM_HEIGHT_M = 0.8


@dataclass(frozen=True)
class AssetSpec:
    """An `assets:` entry with its scaled bounding box, measured by the Blender view
    (blender.assets.user.measure_assets)."""

    path: str
    category: str
    scale: float
    size: tuple[float, float, float]   # length (local +X), width, height after scaling
    count: tuple[int, int]
    placement: str                     # focus | scatter | wall


# ---------------------------------------------------------------- assets

def place_assets(rng: Rng, specs: Sequence[AssetSpec], floor: FloorSpace, focus: tuple[float, float],
                 radius: float, labelled: bool) -> list[UserAsset]:
    """Copies of each spec on free floor; labelled ones only when `labelled` (not an empty negative)."""
    out = []
    for spec in specs:
        n = integer(rng, spec.count)
        if spec.category == "pallet_jack" and not labelled:
            continue
        length, width, _ = spec.size
        for _ in range(n):
            if spec.placement == "wall":
                fp = _wall_spot(rng, floor, length, width)
            else:
                r = radius * (PROP_RADIUS_FACTOR if spec.placement == "scatter" else 1.0)
                fp = floor.place(rng, focus, r, length, width, align=0.6)
            if fp is not None:
                out.append(UserAsset(path=spec.path, category=spec.category, scale=spec.scale,
                                     size=[float(v) for v in spec.size], x=round(float(fp.x), 4),
                                     y=round(float(fp.y), 4), yaw=round(float(fp.yaw), 5)))
    return out


def _wall_spot(rng: Rng, floor: FloorSpace, length: float, width: float) -> Footprint | None:
    lay = floor.layout
    oa = lay.open_area
    for _ in range(WALL_TRIES):
        left = rng.random() < 0.5
        gap = uniform(rng, WALL_GAP_M) + width / 2
        x = gap if left else lay.width - gap
        y = uniform(rng, (oa.y0 + length / 2, max(oa.y0 + length / 2, oa.y1 - length / 2)))
        fp = Footprint(x, y, math.pi / 2, length, width)   # its length along the wall
        if floor.free(fp, 0.05):
            floor.add(fp)
            return fp
    return None


def asset_footprint(a: UserAsset) -> Footprint:
    """The floor an asset takes: its scaled bounding box, as placed."""
    return Footprint(a.x, a.y, a.yaw, a.size[0], a.size[1])


def asset_boxes(assets: Sequence[UserAsset]) -> list[tuple[str, int, np.ndarray]]:
    """("asset", index in plan.assets, (8,3) corners) of each labelled asset, for the in-view check."""
    out = []
    for i, a in enumerate(assets):
        if a.labelled:
            c = footprint_corners(asset_footprint(a))
            out.append(("asset", i, np.concatenate([np.c_[c, np.zeros(4)], np.c_[c, np.full(4, a.size[2])]])))
    return out


# ---------------------------------------------------------------- camera

@functools.lru_cache(maxsize=8)
def site_lens(path: str, image_size: tuple[int, int], max_pixels: float = 0.0) -> Lens:
    return make_lens(cached_calibration(path), image_size, max_pixels)


def apply_lens(cam: Camera, lens: Lens) -> None:
    """The calibrated intrinsics replace the drawn field of view (its draw is kept: same stream)."""
    fov = lens_fov_deg(lens)
    cam.fov_deg = fov
    cam.focal_mm = SENSOR_WIDTH_MM * lens.render_focal_px / lens.render_size[0]
    cam.lens = lens


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def draw_site_camera(cal: Calibration, jitter_m: float, jitter_deg: float, distance: tuple[float, float],
                     rng: Rng, floor: FloorSpace, target: np.ndarray, facing: float | None = None) -> Camera:
    """A camera with the height, tilt and roll of one of the site's poses (jittered), placed in
    this hall to look at `target`: the hall is random, so the pose's x, y and heading are not kept.
    `facing` (radians from +x): the direction it looks (a scenario's lanes); None: a free spot
    on a random side of the target."""
    i = int(rng.integers(len(cal.rvecs)))
    M0, loc0 = blender_pose(cal.rvecs[i], cal.tvecs[i])
    # small rotations about the camera's own axes (tilt, pan, roll), then the height
    J, _ = cv2.Rodrigues(rng.normal(0.0, math.radians(jitter_deg), 3).reshape(3, 1))
    M = M0 @ J
    lay = floor.layout
    h = float(np.clip(loc0[2] + rng.normal(0.0, jitter_m), SITE_MIN_HEIGHT_M, lay.height - ROOF_CLEARANCE_M))
    fwd = -M[:, 2]
    heading = math.atan2(fwd[1], fwd[0])
    flat = math.hypot(fwd[0], fwd[1])
    # where the optical axis meets aim height; a level or upward camera stands at the far range
    reach = (h - AIM_HEIGHT_M) * flat / -fwd[2] if fwd[2] < -1e-3 else distance[1]
    d = float(np.clip(reach, SITE_MIN_DISTANCE_M, max(distance[1], SITE_MIN_DISTANCE_M)))
    for _ in range(SITE_POSITION_TRIES if facing is None else 1):
        a = rng.uniform(0, 2 * math.pi) if facing is None else facing
        loc = np.array([target[0] - d * math.cos(a), target[1] - d * math.sin(a), h])
        fp = Footprint(loc[0], loc[1], 0.0, 0.3, 0.3)
        if floor.inside(fp, 0.4) and floor.free(fp, 0.5):
            break
    Rw = _rot_z(a - heading) @ M
    roll = math.degrees(math.atan2(Rw[2, 0], Rw[2, 1]))
    look = loc + d / max(flat, 1e-6) * (-Rw[:, 2])
    return Camera(kind="site", location=[float(v) for v in loc], look_at=[float(v) for v in look],
                  roll_deg=roll, fov_deg=0.0, sensor_width_mm=SENSOR_WIDTH_MM, focal_mm=0.0,
                  matrix=Rw.tolist(), rotation_euler=matrix_to_euler_xyz(Rw))
