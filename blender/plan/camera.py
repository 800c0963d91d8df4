"""The camera of a frame: a CCTV camera hung from the roof or a wall, or a robot's camera
driving in the aisles, placed so that positives see a labelled object and negatives none."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from blender.plan.draw import Rng, pick, uniform
from blender.plan.geometry import (
    JACK_PIVOT_Z,
    Footprint,
    aimed_camera,
    footprint_corners,
    jack_footprint,
    jack_grip,
    project,
)
from blender.plan.placement import FloorSpace
from blender.plan.scene_config import CameraConfig
from blender.plan.scene_plan import Camera, Jack, Lens, Person, RackRow, ScenePlan, UserAsset, View
from blender.plan.site import apply_lens, asset_boxes, draw_site_camera
from pipeline.lens import cached_calibration

POSITION_TRIES = 50
ROOF_CLEARANCE_M = 0.8       # the camera stays under the roof trusses
AIM_HEIGHT_M = 0.8           # about the middle of a person, the top of a jack's body
CCTV_MAX_PITCH_DEG = 60.0    # CCTV looks across the floor, not straight down
CCTV_AIM_Z_M = (0.3, 1.4)
# over an aisle or open floor, never just above a rack top: 0.5 m clear of racks and props
CAMERA_FOOTPRINT_M = 0.3
CAMERA_WALL_MARGIN_M = 0.4
CAMERA_CLEARANCE_M = 0.5
PERSON_BOX_M = 0.5           # plan-view box of a person for the in-view check
RACK_TOP_MARGIN_M = 0.3      # loads stick out over the top beam
IN_FRAME_SHARE = 0.4         # "seen" needs this share of the box inside the frame


def draw_camera(cfg: CameraConfig, rng: Rng, floor: FloorSpace, target: np.ndarray) -> Camera:
    lay = floor.layout
    robot = bool(rng.random() < cfg.robot_prob)
    for _ in range(POSITION_TRIES):
        if robot:
            h, dist, fov = uniform(rng, cfg.robot_height), uniform(rng, cfg.robot_distance), uniform(rng, cfg.robot_fov_deg)
        else:
            h, dist, fov = uniform(rng, cfg.cctv_height), uniform(rng, cfg.cctv_distance), uniform(rng, cfg.cctv_fov_deg)
        h = min(h, lay.height - ROOF_CLEARANCE_M)
        if not robot:
            dist = max(dist, (h - AIM_HEIGHT_M) / math.tan(math.radians(CCTV_MAX_PITCH_DEG)))
        a = rng.uniform(0, 2 * math.pi)
        loc = np.array([target[0] + dist * math.cos(a), target[1] + dist * math.sin(a), h])
        fp = Footprint(loc[0], loc[1], 0.0, CAMERA_FOOTPRINT_M, CAMERA_FOOTPRINT_M)
        if floor.inside(fp, CAMERA_WALL_MARGIN_M) and floor.free(fp, CAMERA_CLEARANCE_M):
            break
    aim = target + np.array([rng.normal(0, cfg.aim_jitter_m / 2), rng.normal(0, cfg.aim_jitter_m / 2), 0.0])
    if robot:
        d_xy = float(np.linalg.norm(aim[:2] - loc[:2]))
        aim[2] = h + d_xy * math.tan(math.radians(uniform(rng, cfg.robot_pitch_deg)))
    else:
        aim[2] = uniform(rng, CCTV_AIM_Z_M)
    roll = math.radians(uniform(rng, cfg.roll_deg))
    return aimed_camera("robot" if robot else "cctv", loc, aim, roll, fov)


def place_camera(cfg: CameraConfig, rng: Rng, floor: FloorSpace, focus: tuple[float, float], aspect: float,
                 negative: bool, pedestrians: list[Person], jacks: list[Jack],
                 assets: Sequence[UserAsset] = (), lens: Lens | None = None) -> Camera:
    """Up to cfg.max_tries cameras until one sees a labelled object (or, for a negative,
    none can show); else the one that saw most. `lens`: a calibrated camera (its intrinsics
    replace the drawn field of view; camera.mode site also takes its poses)."""
    boxes = labelled_boxes(pedestrians, jacks) + asset_boxes(assets)
    aspect, image_h = view_frame(aspect, cfg.image_height_px, lens)
    racks = floor.layout.racks
    best = None
    for _ in range(cfg.max_tries):
        if boxes and not negative:
            target = pick(rng, boxes)[2].mean(0)
        else:
            target = np.array([focus[0], focus[1], AIM_HEIGHT_M])
            if negative and boxes:  # look somewhere away from the labelled objects
                target = np.array([uniform(rng, (1, floor.layout.width - 1)),
                                   uniform(rng, (1, floor.layout.length - 1)), AIM_HEIGHT_M])
        if cfg.mode == "site":
            cam = draw_site_camera(cached_calibration(cfg.calibration), cfg.site_height_jitter_m,
                                   cfg.site_angle_jitter_deg, cfg.cctv_distance, rng, floor, target)
        else:
            cam = draw_camera(cfg, rng, floor, target)
        if lens is not None:
            apply_lens(cam, lens)
        cam.view = camera_view(cam, boxes, racks, aspect, cfg.min_object_px, image_h)
        if negative:
            if not cam.view.maybe:
                return cam
        elif not boxes or cam.view.seen:
            return cam
        if best is None or len(cam.view.seen) > len(best.view.seen):
            best = cam
    return best if best is not None else cam


# ---------------------------------------------------------------- in-view check

def view_frame(aspect: float, image_height_px: int, lens: Lens | None) -> tuple[float, int]:
    """(aspect, height in pixels) of the image the in-view check projects into: with a
    calibrated lens, the undistorted render (larger than the image: it covers the barrel)."""
    if lens is None:
        return aspect, image_height_px
    return (lens.render_size[0] / lens.render_size[1],
            round(image_height_px * lens.render_size[1] / lens.image_size[1]))


def labelled_boxes(pedestrians: Sequence[Person], jacks: Sequence[Jack]) -> list[tuple[str, int, np.ndarray]]:
    """(kind, index, (8,3) corners) of each labelled object's bounding box."""
    out = []
    for i, p in enumerate(pedestrians):
        fp = Footprint(p.x, p.y, p.yaw, PERSON_BOX_M, PERSON_BOX_M)
        out.append(("pedestrian", i, _box(fp, p.z, p.z + p.height)))
    for i, j in enumerate(jacks):
        fp = jack_footprint(j)
        top = max(jack_grip(j)[1], JACK_PIVOT_Z[j.kind] + 0.1)
        out.append(("pallet_jack", i, _box(fp, 0.0, top)))
    return out


def _box(fp: Footprint, z0: float, z1: float) -> np.ndarray:
    c = footprint_corners(fp)
    return np.concatenate([np.c_[c, np.full(4, z0)], np.c_[c, np.full(4, z1)]])


def _segment_hits_box(p0: np.ndarray, p1: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool:
    d = p1 - p0
    t0, t1 = 0.0, 1.0
    for k in range(3):
        if abs(d[k]) < 1e-9:
            if p0[k] < lo[k] or p0[k] > hi[k]:
                return False
            continue
        a, b = (lo[k] - p0[k]) / d[k], (hi[k] - p0[k]) / d[k]
        t0, t1 = max(t0, min(a, b)), min(t1, max(a, b))
        if t0 > t1:
            return False
    return True


def object_in_view(cam: Camera, racks: Sequence[RackRow], corners: np.ndarray, aspect: float,
                   min_px: float, image_h: int) -> tuple[bool, bool]:
    """(seen, maybe_seen): seen = mostly in frame, tall enough and not hidden behind racks;
    maybe_seen = any part could land in the frame (used to make negatives safe)."""
    uv, depth = project(cam, corners, aspect)
    front = depth > 0.05
    if not front.any():
        return False, False
    if not front.all():
        return False, True   # straddles the image plane: assume some of it shows
    lo, hi = uv.min(0), uv.max(0)
    clo, chi = np.clip(lo, 0, 1), np.clip(hi, 0, 1)
    inter = np.prod(np.maximum(chi - clo, 0))
    if inter <= 0:
        return False, False
    full = np.prod(np.maximum(hi - lo, 1e-9))
    tall = (chi[1] - clo[1]) * image_h >= min_px
    if inter / full < IN_FRAME_SHARE or not tall:
        return False, True
    loc = np.asarray(cam.location, float)
    centre = corners.mean(0)
    top = centre.copy()
    top[2] = corners[:, 2].max() - 0.1
    blocks = [(np.array([r.x0, r.y0, 0.0]), np.array([r.x1, r.y1, r.height + RACK_TOP_MARGIN_M])) for r in racks]
    for target in (centre, top):
        if not any(_segment_hits_box(loc, target, lo_b, hi_b) for lo_b, hi_b in blocks):
            return True, True
    return False, True


def camera_view(cam: Camera, boxes: list[tuple[str, int, np.ndarray]], racks: Sequence[RackRow],
                aspect: float, min_px: float, image_h: int) -> View:
    view = View()
    for kind, i, corners in boxes:
        s, m = object_in_view(cam, racks, corners, aspect, min_px, image_h)
        if s:
            view.seen.append([kind, i])
        if m:
            view.maybe.append([kind, i])
    return view


def check_camera_sees(plan: ScenePlan, aspect: float = 4 / 3, min_px: float = 24.0, image_h: int = 480) -> View:
    """Which labelled objects of a plan its camera sees."""
    boxes = labelled_boxes(plan.pedestrians, plan.pallet_jacks) + asset_boxes(plan.assets)
    return camera_view(plan.camera, boxes, plan.layout.racks, aspect, min_px, image_h)
