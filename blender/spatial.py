"""Pure geometry shared by the planner and the builders (numpy only, no bpy).

Floor footprints (oriented rectangles) and their overlap test, pallet-jack dimensions,
the pinhole camera of a plan (look-at, Blender Euler, projection) and the in-view check
that makes positive frames see a labelled object and negative frames see none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# ---------------------------------------------------------------- footprints

def footprint_corners(fp: dict) -> np.ndarray:
    """(4, 2) corners of an oriented rectangle {x, y, yaw, length, width}."""
    c, s = math.cos(fp["yaw"]), math.sin(fp["yaw"])
    hl, hw = fp["length"] / 2, fp["width"] / 2
    local = np.array([[hl, hw], [-hl, hw], [-hl, -hw], [hl, -hw]])
    rot = np.array([[c, -s], [s, c]])
    return local @ rot.T + np.array([fp["x"], fp["y"]])


def footprints_overlap(a: dict, b: dict, margin: float = 0.0) -> bool:
    """Separating-axis test of two oriented rectangles, each grown by `margin` on every side."""
    pa, pb = footprint_corners(_grow(a, margin)), footprint_corners(_grow(b, margin))
    for poly in (pa, pb):
        for i in range(2):
            edge = poly[i + 1] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            qa, qb = pa @ axis, pb @ axis
            if qa.max() <= qb.min() or qb.max() <= qa.min():
                return False
    return True


def _grow(fp: dict, m: float) -> dict:
    return {**fp, "length": fp["length"] + 2 * m, "width": fp["width"] + 2 * m}


def rack_footprint(row: dict) -> dict:
    return {"x": (row["x0"] + row["x1"]) / 2, "y": (row["y0"] + row["y1"]) / 2, "yaw": 0.0,
            "length": row["x1"] - row["x0"], "width": row["y1"] - row["y0"]}


# ---------------------------------------------------------------- pallet jacks

JACK_PIVOT_Z = {"manual": 0.4, "electric": 0.85}   # tiller pivot height above the floor


def jack_extent(j: dict) -> tuple[float, float]:
    """(x_min, x_max) of a jack along its local +X (forks point to +X, handle at -X), origin = footprint centre."""
    a = math.radians(j["handle_angle_deg"])
    handle_reach = max(0.12, j["handle_length"] * math.sin(a) + 0.1)
    if j.get("platform"):
        handle_reach = max(handle_reach, 0.5)
    total = j["fork_length"] + j["body_length"] + handle_reach
    return -total / 2, total / 2


def jack_grip(j: dict) -> tuple[float, float]:
    """(x, z) of the tiller grip in the jack's local frame."""
    x_min, x_max = jack_extent(j)
    pivot_x = x_max - j["fork_length"] - j["body_length"] * 0.5
    pivot_z = JACK_PIVOT_Z[j["kind"]]
    a = math.radians(j["handle_angle_deg"])
    return pivot_x - j["handle_length"] * math.sin(a), pivot_z + j["handle_length"] * math.cos(a)


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


def project(cam: dict, points: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """World points (N,3) -> (N,2) normalized image coords (0..1, y down) and depth (N,)."""
    R = np.asarray(cam["matrix"], float)
    pc = (np.asarray(points, float) - np.asarray(cam["location"], float)) @ R
    depth = -pc[:, 2]
    tan_h = math.tan(math.radians(cam["fov_deg"]) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = 0.5 + pc[:, 0] / np.where(depth > 1e-6, depth, np.nan) / tan_h / 2
        v = 0.5 - pc[:, 1] / np.where(depth > 1e-6, depth, np.nan) / (tan_h / aspect) / 2
    return np.stack([u, v], axis=1), depth


def labelled_boxes(plan: dict) -> list[tuple[str, int, np.ndarray]]:
    """(kind, index, (8,3) corners) of each labelled object's bounding box."""
    out = []
    for i, p in enumerate(plan["pedestrians"]):
        fp = {"x": p["x"], "y": p["y"], "yaw": p["yaw"], "length": 0.5, "width": 0.5}
        out.append(("pedestrian", i, _box(fp, p["z"], p["z"] + p["height"])))
    for i, j in enumerate(plan["pallet_jacks"]):
        x_min, x_max = jack_extent(j)
        fp = {"x": j["x"], "y": j["y"], "yaw": j["yaw"], "length": x_max - x_min, "width": j["width"]}
        top = max(jack_grip(j)[1], JACK_PIVOT_Z[j["kind"]] + 0.1)
        out.append(("pallet_jack", i, _box(fp, 0.0, top)))
    return out


def _box(fp: dict, z0: float, z1: float) -> np.ndarray:
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


def object_in_view(plan: dict, corners: np.ndarray, aspect: float, min_px: float,
                   image_h: int) -> tuple[bool, bool]:
    """(seen, maybe_seen): seen = mostly in frame, tall enough and not hidden behind racks;
    maybe_seen = any part could land in the frame (used to make negatives safe)."""
    cam = plan["camera"]
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
    if inter / full < 0.4 or not tall:
        return False, True
    loc = np.asarray(cam["location"], float)
    centre = corners.mean(0)
    top = centre.copy()
    top[2] = corners[:, 2].max() - 0.1
    racks = [(np.array([r["x0"], r["y0"], 0.0]), np.array([r["x1"], r["y1"], r["height"] + 0.3]))
             for r in plan["layout"]["racks"]]
    for target in (centre, top):
        if not any(_segment_hits_box(loc, target, lo_b, hi_b) for lo_b, hi_b in racks):
            return True, True
    return False, True


def check_camera_sees(plan: dict, aspect: float = 4 / 3, min_px: float = 24.0,
                      image_h: int = 480) -> dict:
    """Which labelled objects the camera sees: {'seen': [(kind, i)...], 'maybe': [...]}."""
    seen, maybe = [], []
    for kind, i, corners in labelled_boxes(plan):
        s, m = object_in_view(plan, corners, aspect, min_px, image_h)
        if s:
            seen.append([kind, i])
        if m:
            maybe.append([kind, i])
    return {"seen": seen, "maybe": maybe}
