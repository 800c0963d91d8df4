"""Scripted clip scenarios that exercise the safety rules of pipeline.analytics.

A scenario keeps the random warehouse of the clip's base plan but replaces its labelled
actors and camera: people and pallet jacks move on straight lanes across the open staging
area (free floor between the dock wall and the racks), watched by a CCTV camera looking down
the lanes (with scene.camera.calibration: through the calibrated lens; with camera.mode site:
at the site pose's height, tilt and roll). Lanes run along the camera's view so actors pass
side by side, not in front of each other: the ground truth then measures the analytics, not
occlusion. Each scenario returns the rules it exercises, in floor metres (world x, y), for
rules.yaml.

  near_miss   a moving pallet jack passes one person at 0.6-1.1 m (an event; at least 0.63 m
              beside the widest jacks, whose footprint would touch the walker's) and another
              at 2.2-3.0 m (none); rule: proximity within 1.5 m while the jack moves
  zone_entry  one person walks through a vehicle-only aisle, another walks past it
  line_cross  two people cross a dock-door line in opposite directions, a jack crosses too
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from blender.plan.actors import make_jack, make_person, person_foot
from blender.plan.camera import camera_view, labelled_boxes, view_frame
from blender.plan.draw import Rng, uniform
from blender.plan.geometry import aimed_camera
from blender.plan.materials import dress_jacks
from blender.plan.motion import (
    MOVER_CLEARANCE_M,
    JackMotion,
    Motion,
    PersonMotion,
    PhaseMesh,
    phase_cycle,
)
from blender.plan.placement import FloorSpace
from blender.plan.scene_config import SceneConfig
from blender.plan.scene_plan import ScenePlan, plan_version
from blender.plan.site import apply_lens, draw_site_camera
from pipeline.lens import cached_calibration

SCENARIOS = ("near_miss", "zone_entry", "line_cross")

CAMERA_BACK_M = 7.0        # camera this far behind the lanes' centre, along -x
CAMERA_HEIGHT_M = 4.0
CAMERA_FOV_DEG = 60.0
LANE_CLEAR_M = 1.5         # distractors this close to a lane's floor strip are removed
DOOR_CLEAR_Y_M = 3.0       # lanes keep off the dock doors' aprons (y < 2.6 m)
PASS_GAP_M = 0.01          # near_miss: the least floor between the passing jack's and walker's footprints


@dataclass
class Lane:
    """An actor's straight path: start (x, y), heading (yaw, rad) and speed (m/s; 0 stands)."""

    kind: str              # "pedestrian" | "pallet_jack"
    x: float
    y: float
    yaw: float
    speed: float


def _lanes(name: str, xc: float, yc: float, rng: Rng) -> tuple[list[Lane], dict]:
    """The lanes and rules of scenario `name` around (xc, yc); +x points away from the camera."""
    fwd, back = 0.0, math.pi
    if name == "near_miss":
        near_gap, far_gap = uniform(rng, (0.6, 1.1)), uniform(rng, (2.2, 3.0))
        yj = yc + 0.3
        lanes = [Lane("pallet_jack", xc + 2.2, yj, back, 1.0),
                 Lane("pedestrian", xc - 1.8, yj - near_gap, fwd, 1.2),
                 Lane("pedestrian", xc + 1.5, yj + far_gap, fwd, 0.8)]
        rules = {"proximity": [{"name": "jack_near_person", "a": "pedestrian", "b": "pallet_jack",
                                "max_distance_m": 1.5, "release_m": 0.3, "min_speed_mps": 0.3}]}
    elif name == "zone_entry":
        x0, x1, y0, y1 = xc - 1.0, xc + 0.8, yc - 0.4, yc + 1.2
        lanes = [Lane("pedestrian", xc - 2.0, yc + 0.4, fwd, 1.2),
                 Lane("pedestrian", xc + 2.0, yc - 1.4, back, 1.0),
                 Lane("pallet_jack", xc + 2.5, yc + 2.2, back, 0.0)]
        rules = {"zones": [{"name": "vehicle_aisle", "classes": ["pedestrian"],
                            "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}]}
    elif name == "line_cross":
        lanes = [Lane("pedestrian", xc - 1.8, yc - 0.8, fwd, 1.2),
                 Lane("pedestrian", xc + 1.8, yc + 0.6, back, 1.1),
                 Lane("pallet_jack", xc - 2.2, yc + 1.7, fwd, 1.0)]
        rules = {"lines": [{"name": "dock_door", "start": [xc, yc - 2.5], "end": [xc, yc + 2.5]}]}
    else:
        raise ValueError(f"unknown scenario {name!r} (expected one of {', '.join(SCENARIOS)})")
    return lanes, rules


def plan_scenario(base: ScenePlan, name: str, scene_cfg: SceneConfig, rng: Rng,
                  humans: Sequence[dict] | None, aspect: float) -> tuple[ScenePlan, Motion, dict]:
    """(plan, motion, rules) of scenario `name` in the warehouse of `base`; deterministic in rng."""
    plan = copy.deepcopy(base)
    lay = plan.layout
    # lanes span about 4.5 m along x and 4 m across: the staging area is 8-16 m deep
    y_hi = lay.open_area.y1 - 1.5
    yc = uniform(rng, (DOOR_CLEAR_Y_M + 1.5, max(DOOR_CLEAR_Y_M + 1.5, y_hi - 3.3)))
    xc = uniform(rng, (CAMERA_BACK_M + 1.0, lay.width - 5.0))
    lanes, rules = _lanes(name, xc, yc, rng)
    peds, jacks, pm, jm = [], [], [], []
    for lane in lanes:
        if lane.kind == "pedestrian":
            p = make_person(rng, scene_cfg.pedestrians, "walk" if lane.speed > 0 else "stand", humans)
            p.x, p.y, p.yaw = lane.x, lane.y, lane.yaw
            cycle = phase_cycle(list(humans or []), p.mesh_id, p.pose) if lane.speed > 0 else []
            peds.append(p)
            pm.append(PersonMotion(lane.speed, [PhaseMesh(m["id"], m["phase"]) for m in cycle], keeps_lane=True))
        else:
            j = make_jack(rng, scene_cfg.pallet_jacks)
            j.x, j.y, j.yaw = lane.x, lane.y, lane.yaw
            j.load = None   # a pallet load would hide the truck's wheels: the footprint is the truth's subject
            jacks.append(j)
            jm.append(JackMotion(lane.speed))   # moves on its own: no pusher to stand next to it
    if name == "near_miss":
        # the near walker passes the jack side by side: their footprints stay apart (movers do
        # not overlap; one would turn back), which a wide jack at the shortest gap would not
        j, p = jacks[0], peds[0]
        p.y = min(p.y, j.y - (j.width + person_foot(p.pose)[1]) / 2 - 2 * MOVER_CLEARANCE_M - PASS_GAP_M)
    plan.pedestrians, plan.pallet_jacks = peds, jacks
    plan.version = max(plan.version, plan_version(plan.assets, plan.camera.lens, plan.materials, peds))
    x_lo = xc - CAMERA_BACK_M - 1.0
    x_hi = xc + 6.0 + LANE_CLEAR_M   # beyond the farthest lane end of a clip of up to ~6 s
    y_lo = min(ln.y for ln in lanes) - LANE_CLEAR_M - 1.0
    y_top = max(ln.y for ln in lanes) + LANE_CLEAR_M + 1.0
    def clear(x: float, y: float) -> bool:
        return not (x_lo <= x <= x_hi and y_lo <= y <= y_top)

    plan.distractors = [d for d in plan.distractors if clear(d.x, d.y)]
    plan.assets = [a for a in plan.assets if clear(a.x, a.y)]   # a site's models too, parked jacks included
    cfg_cam, lens = scene_cfg.camera, base.camera.lens
    if cfg_cam.mode == "site":
        # the site's height, tilt and roll, facing down the lanes (+x); drawn last: the draws
        # above are those of a scenario without it
        target = np.array([xc + 0.7, yc + 0.3, 0.0])
        cam = draw_site_camera(cached_calibration(cfg_cam.calibration), cfg_cam.site_height_jitter_m,
                               cfg_cam.site_angle_jitter_deg, cfg_cam.cctv_distance, rng, FloorSpace(lay),
                               target, facing=0.0)
    else:
        loc = [xc - CAMERA_BACK_M, yc + 0.3, min(CAMERA_HEIGHT_M, lay.height - 1.0)]
        cam = aimed_camera("cctv", loc, [xc + 0.7, yc + 0.3, 0.0], 0.0, CAMERA_FOV_DEG)
    if lens is not None:   # a calibrated camera: its intrinsics replace the scenario's field of view
        apply_lens(cam, lens)
    view_aspect, view_h = view_frame(aspect, cfg_cam.image_height_px, lens)
    cam.view = camera_view(cam, labelled_boxes(peds, jacks), lay.racks, view_aspect,
                           cfg_cam.min_object_px, view_h)
    plan.camera = cam
    plan.focus = [xc, yc]
    if plan.materials is not None:  # the scenario's own jacks get painted like the base plan's
        dress_jacks(scene_cfg.materials, rng.spawn(1)[0], plan)
    return plan, Motion(pm, jm, 0.0), rules
