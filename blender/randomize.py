"""Scene randomization: SceneConfig + numpy Generator -> a JSON plan of one image.

Pure numpy + pydantic (no bpy): everything random about a frame is decided here, so plans
can be tested, saved next to the image and rebuilt exactly. blender/scene turns a plan
into bpy objects without drawing any random number of its own.

World frame: metres, Z up. The warehouse spans x in [0, width], y in [0, length]; dock
doors are in the wall y = 0, in front of an open staging area; double-sided rack rows run
along +y separated by aisles, split by an optional cross-aisle. Yaw is the angle of an
object's local +X (its "front": fork tips, a person's facing direction) from world +X.
Colours in the plan are sRGB 0..1; the scene converts them to linear.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field, field_validator

from blender.palettes import (
    CARDBOARD,
    HAIR,
    HAT,
    LINE_COLORS,
    PAINT,
    RACK_BEAM,
    RACK_FRAME,
    SHIRT,
    SHOES,
    SKIN,
    TROUSERS,
    VEST,
    WALLS,
)
from blender.spatial import (  # noqa: F401 - re-exported: the planner's public geometry
    JACK_PIVOT_Z,
    check_camera_sees,
    footprint_corners,
    footprints_overlap,
    jack_extent,
    jack_grip,
    labelled_boxes,
    look_at_matrix,
    matrix_to_euler_xyz,
    object_in_view,
    project,
    rack_footprint,
)
from pipeline.common import StrictModel, UserError, read_json

PLAN_VERSION = 1
Range = tuple[float, float]
IntRange = tuple[int, int]

POSES = ("walk", "stand", "carry", "bend", "crouch", "push")
DISTRACTOR_KINDS = ("forklift", "pallet_stack", "load", "cart", "cone", "barrier", "bin")
STOCK_KINDS = ("boxes", "wrapped", "crate", "pallet")


def _check_range(v):
    if v is None:
        return v
    lo, hi = v
    if lo > hi:
        raise ValueError(f"range [{lo}, {hi}]: low end is above high end")
    return v


class _Section(StrictModel):
    @field_validator("*", mode="after")
    @classmethod
    def _ranges_ordered(cls, v):
        if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int | float) for x in v):
            return _check_range(v)
        return v


def _check_weights(weights: dict[str, float], known: list[str], what: str, unit: str | None = None) -> dict:
    """A {name: weight} choice table: only known names, and something to choose."""
    bad = [k for k in weights if k not in known]
    if bad:
        raise ValueError(f"unknown {what} {bad[0]!r}; choose from {known}")
    if not weights or sum(weights.values()) <= 0:
        raise ValueError(f"needs at least one {unit or what} with a positive weight")
    return weights


class LayoutConfig(_Section):
    width: Range = (24.0, 40.0)            # x extent of the hall (m)
    length: Range = (30.0, 50.0)           # y extent
    height: Range = (8.0, 12.0)            # ceiling height
    aisle_width: Range = (2.8, 4.0)        # between rack rows (narrow-aisle to counterbalance)
    rack_depth: Range = (1.0, 1.2)         # one side of a back-to-back row
    rack_height: Range = (5.0, 9.0)        # top beam; capped at ceiling - 1.5 m
    bay_width: Range = (2.5, 2.9)          # two pallet slots per bay and level
    level_step: Range = (1.5, 2.1)         # vertical beam pitch
    open_area_depth: Range = (8.0, 16.0)   # staging area between dock wall and racks
    cross_aisle_prob: float = Field(0.8, ge=0, le=1)
    cross_aisle_width: Range = (3.0, 4.5)
    stock_fill: Range = (0.55, 0.95)       # share of rack slots holding a load
    dock_doors: IntRange = (2, 5)
    dock_open_prob: float = Field(0.5, ge=0, le=1)


class MaterialConfig(_Section):
    floor_value: Range = (0.35, 0.65)      # concrete grey level
    floor_stains: Range = (0.0, 0.6)       # strength of dark stains
    floor_roughness: Range = (0.35, 0.8)
    wall_palettes: int = Field(4, ge=1, le=4)  # how many of the wall colour schemes to draw from


class LightConfig(_Section):
    fixture_spacing: Range = (4.5, 8.0)    # grid pitch of ceiling fixtures
    fixture_power_w: Range = (400.0, 1400.0)
    fixture_off_prob: float = Field(0.08, ge=0, le=1)
    color_temp_k: Range = (3200.0, 6500.0)
    daylight_prob: float = Field(0.5, ge=0, le=1)
    sun_strength: Range = (1.0, 5.0)
    sun_elevation_deg: Range = (10.0, 55.0)
    world_strength: Range = (0.05, 0.4)


class CameraConfig(_Section):
    robot_prob: float = Field(0.4, ge=0, le=1)   # else a fixed CCTV camera
    cctv_height: Range = (2.5, 10.0)
    cctv_distance: Range = (4.0, 18.0)           # horizontal distance to the target object
    cctv_fov_deg: Range = (50.0, 90.0)           # horizontal field of view
    robot_height: Range = (0.5, 2.0)
    robot_distance: Range = (2.0, 12.0)
    robot_fov_deg: Range = (60.0, 90.0)
    robot_pitch_deg: Range = (-15.0, 5.0)
    roll_deg: Range = (-3.0, 3.0)
    aim_jitter_m: float = Field(1.5, ge=0)
    min_object_px: float = Field(24.0, ge=1)     # projected height needed to count as seen
    image_height_px: int = Field(480, ge=16)     # only for the pixel threshold above
    max_tries: int = Field(60, ge=1)


class PedestrianConfig(_Section):
    count: IntRange = (2, 7)
    height: Range = (1.5, 1.95)            # used when no human library is given
    pose_weights: dict[str, float] = {"walk": 0.5, "stand": 0.2, "carry": 0.12,
                                       "bend": 0.09, "crouch": 0.09}
    vest_prob: float = Field(0.6, ge=0, le=1)
    hard_hat_prob: float = Field(0.5, ge=0, le=1)
    short_sleeve_prob: float = Field(0.3, ge=0, le=1)

    @field_validator("pose_weights")
    @classmethod
    def _poses_known(cls, v):
        # "push" is given by the pallet-jack pairing, never drawn on its own
        return _check_weights(v, [p for p in POSES if p != "push"], "pose")


class PalletJackConfig(_Section):
    count: IntRange = (1, 3)
    electric_prob: float = Field(0.35, ge=0, le=1)
    forks_raised_prob: float = Field(0.4, ge=0, le=1)
    handle_angle_deg: Range = (0.0, 65.0)  # tiller tilt from vertical
    loaded_prob: float = Field(0.4, ge=0, le=1)
    pushed_prob: float = Field(0.35, ge=0, le=1)
    colors: list[str] = ["yellow", "red", "blue", "orange"]

    @field_validator("colors")
    @classmethod
    def _colors_known(cls, v):
        bad = [c for c in v if c not in PAINT]
        if bad or not v:
            raise ValueError(f"unknown colour {bad[:1]}; choose from {sorted(PAINT)}")
        return v


class DistractorConfig(_Section):
    count: IntRange = (4, 12)
    kind_weights: dict[str, float] = {"forklift": 0.12, "pallet_stack": 0.2, "load": 0.2,
                                      "cart": 0.12, "cone": 0.14, "barrier": 0.1, "bin": 0.12}
    staging_loads: IntRange = (4, 14)      # loads parked along the staging-area walls

    @field_validator("kind_weights")
    @classmethod
    def _kinds_known(cls, v):
        return _check_weights(v, list(DISTRACTOR_KINDS), "distractor", "kind")


class PostConfig(_Section):
    noise_sigma: Range = (0.0, 0.02)       # std of additive noise, image in 0..1
    blur_prob: float = Field(0.3, ge=0, le=1)
    blur_px: Range = (0.5, 3.0)            # motion-blur length when blurred


class SceneConfig(StrictModel):
    """Every randomization range of a frame; defaults are what a real warehouse looks like."""

    negative_fraction: float = Field(0.05, ge=0, le=1)   # share of frames with nothing labelled in view
    focus_radius: float = Field(9.0, gt=1)               # labelled objects cluster around a focus point
    layout: LayoutConfig = LayoutConfig()
    materials: MaterialConfig = MaterialConfig()
    lights: LightConfig = LightConfig()
    camera: CameraConfig = CameraConfig()
    pedestrians: PedestrianConfig = PedestrianConfig()
    pallet_jacks: PalletJackConfig = PalletJackConfig()
    distractors: DistractorConfig = DistractorConfig()
    post: PostConfig = PostConfig()


# Footprints (length along local +X, width) of things placed on the floor, in metres.
PERSON_FOOT = {"walk": (0.75, 0.55), "stand": (0.5, 0.55), "carry": (0.8, 0.6),
               "bend": (0.9, 0.55), "crouch": (0.8, 0.6), "push": (0.7, 0.6)}


# ---------------------------------------------------------------- small helpers

def _u(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def _i(rng: np.random.Generator, r: IntRange) -> int:
    return int(rng.integers(r[0], r[1] + 1))


def _pick(rng: np.random.Generator, seq: Sequence):
    return seq[int(rng.integers(len(seq)))]


def _jitter(rng: np.random.Generator, rgb, amount: float = 0.04) -> list[float]:
    return [float(np.clip(c + rng.uniform(-amount, amount), 0.0, 1.0)) for c in rgb]


def _weighted(rng: np.random.Generator, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([max(0.0, weights[k]) for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def kelvin_to_rgb(kelvin: float) -> list[float]:
    """Black-body colour (Tanner Helland's fit), normalized so the largest channel is 1."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = np.clip(np.array([r, g, b]) / 255.0, 0.0, 1.0)
    return [float(c) for c in rgb / rgb.max()]


# ---------------------------------------------------------------- layout

def _plan_layout(cfg: LayoutConfig, rng: np.random.Generator) -> dict:
    W, L, H = _u(rng, cfg.width), _u(rng, cfg.length), _u(rng, cfg.height)
    rack_h = min(_u(rng, cfg.rack_height), H - 1.5)
    step = _u(rng, cfg.level_step)
    levels = [0.0]
    while levels[-1] + step + 1.0 < rack_h:
        levels.append(round(levels[-1] + step, 3))
    depth, bay_w = _u(rng, cfg.rack_depth), _u(rng, cfg.bay_width)
    flue = 0.25
    row_w = 2 * depth + flue
    open_d = _u(rng, cfg.open_area_depth)
    y_lo, y_hi = open_d, L - _u(rng, (1.5, 3.0))
    cross = None
    if rng.random() < cfg.cross_aisle_prob and y_hi - y_lo > 14:
        cw = _u(rng, cfg.cross_aisle_width)
        yc = _u(rng, (y_lo + 0.35 * (y_hi - y_lo), y_lo + 0.65 * (y_hi - y_lo)))
        cross = {"y0": yc - cw / 2, "y1": yc + cw / 2}
    segments = [(y_lo, y_hi)] if cross is None else [(y_lo, cross["y0"]), (cross["y1"], y_hi)]

    rows, aisles = [], []
    x = _u(rng, cfg.aisle_width)  # aisle along the side wall
    aisles.append({"x0": 0.0, "x1": x})
    while True:
        aisle = _u(rng, cfg.aisle_width)
        if x + row_w + 1.5 > W:
            break
        for s0, s1 in segments:
            n_bays = int((s1 - s0) // bay_w)
            if n_bays < 1:
                continue
            rows.append({"x0": round(x, 4), "x1": round(x + row_w, 4), "y0": round(s0, 4),
                         "y1": round(s0 + n_bays * bay_w, 4), "depth": depth, "flue": flue,
                         "bay_width": bay_w, "n_bays": n_bays, "levels": levels,
                         "height": rack_h})
        aisles.append({"x0": x + row_w, "x1": min(W, x + row_w + aisle)})
        x += row_w + aisle
    return {"width": W, "length": L, "height": H, "racks": rows, "aisles": aisles,
            "rack_y": [y_lo, y_hi], "cross_aisle": cross, "open_area": {"y0": 0.0, "y1": open_d}}


def _plan_stock(layout: dict, cfg: LayoutConfig, rng: np.random.Generator) -> list[dict]:
    fill = _u(rng, cfg.stock_fill)
    out = []
    for row in layout["racks"]:
        levels = row["levels"]
        gaps = [b - a for a, b in zip(levels, levels[1:] + [row["height"] + 1.8], strict=True)]
        for side in (0, 1):
            cx = row["x0"] + row["depth"] / 2 if side == 0 else row["x1"] - row["depth"] / 2
            for b in range(row["n_bays"]):
                for li, z in enumerate(levels):
                    for k in range(2):
                        if rng.random() > fill:
                            continue
                        kind = _pick(rng, ("boxes", "boxes", "wrapped", "wrapped", "crate", "pallet"))
                        h = 0.14 if kind == "pallet" else _u(rng, (0.5, max(0.55, min(1.5, gaps[li] - 0.3))))
                        slot = row["bay_width"] / 2
                        out.append({
                            "kind": kind,
                            "x": round(cx + rng.uniform(-0.04, 0.04), 4),
                            "y": round(row["y0"] + b * row["bay_width"] + (k + 0.5) * slot + rng.uniform(-0.05, 0.05), 4),
                            "z": z + (0.0 if li == 0 else 0.12),   # beam top
                            "length": min(1.2, row["depth"] + 0.05), "width": min(1.0, slot - 0.15),
                            "height": round(h, 3), "variant": int(rng.integers(4)),
                        })
    return out


def _plan_doors(layout: dict, cfg: LayoutConfig, rng: np.random.Generator) -> list[dict]:
    n = _i(rng, cfg.dock_doors)
    W = layout["width"]
    pitch = W / (n + 1)
    doors = []
    for i in range(n):
        w = _u(rng, (2.8, 3.4))
        doors.append({"x": (i + 1) * pitch + rng.uniform(-0.2, 0.2) * pitch, "width": w,
                      "height": _u(rng, (3.4, 4.4)), "open": bool(rng.random() < cfg.dock_open_prob)})
    doors.sort(key=lambda d: d["x"])
    # keep doors apart and off the corners
    for i in range(1, n):
        min_x = doors[i - 1]["x"] + (doors[i - 1]["width"] + doors[i]["width"]) / 2 + 0.6
        doors[i]["x"] = max(doors[i]["x"], min_x)
    return [d for d in doors if d["x"] + d["width"] / 2 < W - 0.5 and d["x"] - d["width"] / 2 > 0.5]


def _plan_floor(layout: dict, doors: list[dict], cfg: MaterialConfig, rng: np.random.Generator) -> dict:
    lines = []

    def line(x0, y0, x1, y1, width, color):
        lines.append({"x0": round(x0, 4), "y0": round(y0, 4), "x1": round(x1, 4), "y1": round(y1, 4),
                      "width": width, "color": list(LINE_COLORS[color])})

    lane = "yellow" if rng.random() < 0.8 else "white"
    for row in layout["racks"]:  # lines along rack faces keep trucks off the uprights
        line(row["x0"] - 0.15, row["y0"], row["x0"] - 0.15, row["y1"], 0.1, lane)
        line(row["x1"] + 0.15, row["y0"], row["x1"] + 0.15, row["y1"], 0.1, lane)
    oy = layout["open_area"]["y1"]
    line(0.3, oy - 0.6, layout["width"] - 0.3, oy - 0.6, 0.12, lane)
    if rng.random() < 0.7:  # pedestrian walkway along one side wall
        walk = "green" if rng.random() < 0.5 else "yellow"
        wx = 1.0 if rng.random() < 0.5 else layout["width"] - 2.2
        line(wx, 0.3, wx, layout["length"] - 0.3, 0.1, walk)
        line(wx + 1.2, 0.3, wx + 1.2, layout["length"] - 0.3, 0.1, walk)
    for d in doors:  # keep-clear boxes in front of the dock doors
        x0, x1, y1 = d["x"] - d["width"] / 2 - 0.2, d["x"] + d["width"] / 2 + 0.2, 4.0
        for seg in ((x0, 0.2, x0, y1), (x1, 0.2, x1, y1), (x0, y1, x1, y1)):
            line(*seg, 0.1, lane)
    return {"value": _u(rng, cfg.floor_value), "stains": _u(rng, cfg.floor_stains),
            "roughness": _u(rng, cfg.floor_roughness), "tint": _jitter(rng, (0.5, 0.5, 0.5), 0.03),
            "lines": lines}


def _plan_lights(layout: dict, doors: list[dict], cfg: LightConfig, rng: np.random.Generator) -> dict:
    spacing = _u(rng, cfg.fixture_spacing)
    W, L, H = layout["width"], layout["length"], layout["height"]
    nx, ny = max(1, round(W / spacing)), max(1, round(L / spacing))
    temp = _u(rng, cfg.color_temp_k)
    power = _u(rng, cfg.fixture_power_w)
    kind = "linear" if rng.random() < 0.5 else "highbay"
    fixtures = []
    for i in range(nx):
        for j in range(ny):
            fixtures.append({"x": (i + 0.5) * W / nx, "y": (j + 0.5) * L / ny, "z": H - _u(rng, (0.3, 1.2)),
                             "power": power * _u(rng, (0.85, 1.15)),
                             "on": bool(rng.random() >= cfg.fixture_off_prob)})
    daylight = None
    if rng.random() < cfg.daylight_prob or any(d["open"] for d in doors):
        daylight = {"strength": _u(rng, cfg.sun_strength),
                    "elevation_deg": _u(rng, cfg.sun_elevation_deg),
                    "azimuth_deg": _u(rng, (45.0, 135.0)),  # sun outside y < 0, shining in through the doors
                    "sky_strength": _u(rng, (1.0, 4.0))}
    return {"kind": kind, "fixtures": fixtures, "color_temp_k": temp, "color": kelvin_to_rgb(temp),
            "world_strength": _u(rng, cfg.world_strength), "daylight": daylight}


# ---------------------------------------------------------------- floor placement

class _Floor:
    """Free-space bookkeeping for 2D footprint rejection sampling."""

    def __init__(self, layout: dict):
        self.layout = layout
        self.blocked = [rack_footprint(r) for r in layout["racks"]]

    def inside(self, fp: dict, margin: float = 0.3) -> bool:
        c = footprint_corners(fp)
        return bool((c[:, 0] > margin).all() and (c[:, 0] < self.layout["width"] - margin).all()
                    and (c[:, 1] > margin).all() and (c[:, 1] < self.layout["length"] - margin).all())

    def free(self, fp: dict, margin: float = 0.15) -> bool:
        return self.inside(fp) and not any(footprints_overlap(fp, b, margin) for b in self.blocked)

    def add(self, fp: dict) -> None:
        self.blocked.append({k: fp[k] for k in ("x", "y", "yaw", "length", "width")})

    def aisle_axis(self, x: float, y: float) -> str | None:
        """'y' inside a rack aisle, 'x' in the cross-aisle, None in open floor."""
        lay = self.layout
        cross = lay["cross_aisle"]
        if cross and cross["y0"] <= y <= cross["y1"]:
            return "x"
        if lay["rack_y"][0] <= y <= lay["rack_y"][1] and lay["racks"]:
            return "y"
        return None

    def place(self, rng: np.random.Generator, center: tuple[float, float], radius: float,
              length: float, width: float, align: float = 0.85, tries: int = 200) -> dict | None:
        for _ in range(tries):
            r = radius * math.sqrt(rng.random())
            a = rng.uniform(0, 2 * math.pi)
            x, y = center[0] + r * math.cos(a), center[1] + r * math.sin(a)
            axis = self.aisle_axis(x, y)
            if axis is not None and rng.random() < align:
                yaw = (math.pi / 2 if axis == "y" else 0.0) + (math.pi if rng.random() < 0.5 else 0.0)
                yaw += rng.normal(0, 0.08)
            else:
                yaw = rng.uniform(-math.pi, math.pi)
            fp = {"x": x, "y": y, "yaw": float(math.remainder(yaw, 2 * math.pi)), "length": length, "width": width}
            if self.free(fp):
                self.add(fp)
                return fp
        return None


def _focus_point(layout: dict, rng: np.random.Generator) -> tuple[float, float]:
    W = layout["width"]
    choice = rng.random()
    if choice < 0.45 and len(layout["aisles"]) > 1 and layout["racks"]:
        a = _pick(rng, layout["aisles"][1:])
        y0, y1 = layout["rack_y"]
        return ((a["x0"] + a["x1"]) / 2, _u(rng, (y0 + 2, max(y0 + 2, y1 - 2))))
    if choice < 0.65 and layout["cross_aisle"]:
        c = layout["cross_aisle"]
        return (_u(rng, (2.0, W - 2.0)), (c["y0"] + c["y1"]) / 2)
    oa = layout["open_area"]
    return (_u(rng, (3.0, W - 3.0)), _u(rng, (oa["y0"] + 2.0, max(oa["y0"] + 2.0, oa["y1"] - 1.0))))


# ---------------------------------------------------------------- things on the floor

def load_human_index(humans_dir: str | Path) -> list[dict]:
    """The mesh library written by `python -m pipeline.humans` (index.json 'meshes')."""
    path = Path(humans_dir) / "index.json"
    if not path.is_file():
        raise UserError(f"{path}: human mesh library not found; run `make humans` "
                        f"(python -m pipeline.humans --out {humans_dir} --count 24)")
    data = read_json(path, "human mesh index")
    meshes = data.get("meshes") if isinstance(data, dict) else None
    if not isinstance(meshes, list) or not meshes:
        raise UserError(f"{path}: expected a non-empty 'meshes' list")
    return meshes


def _person(rng: np.random.Generator, cfg: PedestrianConfig, pose: str, humans: Sequence[dict] | None) -> dict:
    if humans:
        pool = [h for h in humans if h["pose"] == pose] or list(humans)
        mesh = _pick(rng, pool)
        mesh_id, height, pose = mesh["id"], float(mesh["height"]), mesh["pose"]
    else:
        mesh_id, height = None, _u(rng, cfg.height)
    long_sleeves = rng.random() >= cfg.short_sleeve_prob
    p = {
        "mesh_id": mesh_id, "pose": pose, "height": round(height, 4), "z": 0.0,
        "skin": _jitter(rng, _pick(rng, SKIN), 0.03), "hair": _jitter(rng, _pick(rng, HAIR), 0.03),
        "shirt": _jitter(rng, _pick(rng, SHIRT)), "long_sleeves": bool(long_sleeves),
        "trousers": _jitter(rng, _pick(rng, TROUSERS)), "shoes": _jitter(rng, _pick(rng, SHOES), 0.02),
        "vest": bool(rng.random() < cfg.vest_prob), "vest_color": _jitter(rng, _pick(rng, VEST), 0.03),
        "hard_hat": bool(rng.random() < cfg.hard_hat_prob), "hat_color": _jitter(rng, _pick(rng, HAT), 0.03),
        "carry_box": None, "pushing": None,
    }
    if pose == "carry":
        p["carry_box"] = {"size": [round(_u(rng, (0.3, 0.55)), 3), round(_u(rng, (0.25, 0.4)), 3),
                                   round(_u(rng, (0.2, 0.4)), 3)],
                          "color": _jitter(rng, _pick(rng, CARDBOARD), 0.03)}
    return p


def _jack(rng: np.random.Generator, cfg: PalletJackConfig) -> dict:
    electric = bool(rng.random() < cfg.electric_prob)
    raised = bool(rng.random() < cfg.forks_raised_prob)
    j = {
        "kind": "electric" if electric else "manual",
        "color": _jitter(rng, PAINT[_pick(rng, cfg.colors)], 0.03),
        "fork_length": _u(rng, (1.0, 1.2)),
        "width": _pick(rng, (0.54, 0.56, 0.685)),
        "fork_height": _u(rng, (0.17, 0.2)) if raised else 0.085,
        "forks_raised": raised,
        "body_length": _u(rng, (0.6, 0.8)) if electric else _u(rng, (0.25, 0.32)),
        "handle_length": _u(rng, (0.55, 0.7)) if electric else _u(rng, (1.1, 1.25)),
        "handle_angle_deg": _u(rng, cfg.handle_angle_deg),
        "platform": bool(electric and rng.random() < 0.4),   # stand-on (ride) platform
        "load": None, "pushed_by": None,
    }
    if rng.random() < cfg.loaded_prob:
        # The pallet and its load are separate, unlabelled objects: a mask of "pallet jack"
        # covers the truck only, as an annotator would draw it.
        j["load"] = {"kind": _pick(rng, ("boxes", "wrapped", "crate", "pallet")),
                     "height": round(_u(rng, (0.3, 1.3)), 3), "variant": int(rng.integers(4))}
    return j


def _distractor(rng: np.random.Generator, kind: str) -> dict:
    d: dict = {"kind": kind, "color": None}
    if kind == "forklift":
        d.update(length=_u(rng, (2.3, 2.8)), width=_u(rng, (1.0, 1.25)), mast_height=_u(rng, (2.0, 2.4)),
                 fork_height=_u(rng, (0.05, 1.2)), color=_jitter(rng, PAINT[_pick(rng, ("yellow", "orange", "red", "green", "blue"))]))
        d["footprint"] = [d["length"] + 1.1, d["width"]]
    elif kind == "pallet_stack":
        d.update(count=_i(rng, (1, 8)), plastic=bool(rng.random() < 0.2))
        d["footprint"] = [1.2, 0.8]
    elif kind == "load":
        d.update(load=_pick(rng, ("boxes", "wrapped", "crate")), height=_u(rng, (0.5, 1.6)), variant=int(rng.integers(4)))
        d["footprint"] = [1.2, 0.8]
    elif kind == "cart":
        d.update(length=_u(rng, (0.9, 1.2)), width=_u(rng, (0.55, 0.7)),
                 color=_jitter(rng, PAINT[_pick(rng, ("blue", "grey", "green", "red"))]),
                 boxes=_i(rng, (0, 3)))
        d["footprint"] = [d["length"] + 0.2, d["width"]]
    elif kind == "cone":
        d.update(height=_u(rng, (0.45, 0.75)), color=_jitter(rng, PAINT["orange"]))
        d["footprint"] = [0.38, 0.38]
    elif kind == "barrier":
        d.update(length=_u(rng, (1.2, 2.0)), height=_u(rng, (0.9, 1.1)),
                 color=_jitter(rng, PAINT[_pick(rng, ("yellow", "red", "orange"))]))
        d["footprint"] = [d["length"], 0.45]
    elif kind == "bin":
        d.update(height=_u(rng, (0.5, 1.1)), size=_u(rng, (0.45, 0.75)),
                 color=_jitter(rng, PAINT[_pick(rng, ("blue", "grey", "green", "yellow", "red"))]))
        d["footprint"] = [d["size"], d["size"]]
    return d


def _camera(cfg: CameraConfig, rng: np.random.Generator, floor: _Floor, target: np.ndarray) -> dict:
    lay = floor.layout
    robot = bool(rng.random() < cfg.robot_prob)
    for _ in range(50):
        if robot:
            h, dist, fov = _u(rng, cfg.robot_height), _u(rng, cfg.robot_distance), _u(rng, cfg.robot_fov_deg)
        else:
            h, dist, fov = _u(rng, cfg.cctv_height), _u(rng, cfg.cctv_distance), _u(rng, cfg.cctv_fov_deg)
        h = min(h, lay["height"] - 0.8)  # under the roof trusses
        if not robot:  # CCTV looks across the floor, not straight down (<= ~60 deg pitch)
            dist = max(dist, (h - 0.8) / math.tan(math.radians(60)))
        a = rng.uniform(0, 2 * math.pi)
        loc = np.array([target[0] + dist * math.cos(a), target[1] + dist * math.sin(a), h])
        # over an aisle or open floor, never just above a rack top (CCTV hangs from the roof
        # or a wall, robots drive in aisles); 0.5 m clear of racks and props
        fp = {"x": loc[0], "y": loc[1], "yaw": 0.0, "length": 0.3, "width": 0.3}
        if floor.inside(fp, 0.4) and floor.free(fp, 0.5):
            break
    aim = target + np.array([rng.normal(0, cfg.aim_jitter_m / 2), rng.normal(0, cfg.aim_jitter_m / 2), 0.0])
    if robot:
        d_xy = float(np.linalg.norm(aim[:2] - loc[:2]))
        aim[2] = h + d_xy * math.tan(math.radians(_u(rng, cfg.robot_pitch_deg)))
    else:
        aim[2] = _u(rng, (0.3, 1.4))
    roll = math.radians(_u(rng, cfg.roll_deg))
    R = look_at_matrix(loc, aim, roll)
    return {"kind": "robot" if robot else "cctv", "location": [float(v) for v in loc],
            "look_at": [float(v) for v in aim], "roll_deg": math.degrees(roll), "fov_deg": fov,
            "sensor_width_mm": 36.0, "focal_mm": 18.0 / math.tan(math.radians(fov) / 2),
            "matrix": R.tolist(), "rotation_euler": matrix_to_euler_xyz(R)}


# ---------------------------------------------------------------- the plan

def plan_scene(cfg: SceneConfig, rng: np.random.Generator, *, negative: bool | None = False,
               humans: Sequence[dict] | None = None, aspect: float = 4 / 3) -> dict:
    """One frame's JSON-serializable plan.

    negative=True: nothing labelled is in view (none placed, or the camera looks away);
    None: draw that from cfg.negative_fraction. humans: entries of the mesh library index
    (load_human_index); without it, pedestrians carry mesh_id None and a sampled height and
    the builder picks a library mesh of the same pose, scaled to that height.
    aspect: image width / height, for the in-view check.
    """
    if negative is None:
        negative = bool(rng.random() < cfg.negative_fraction)
    layout = _plan_layout(cfg.layout, rng)
    doors = _plan_doors(layout, cfg.layout, rng)
    plan: dict = {
        "version": PLAN_VERSION, "negative": bool(negative),
        "layout": layout, "doors": doors,
        "walls": {"lower": _jitter(rng, _pick(rng, WALLS[:cfg.materials.wall_palettes])[0], 0.03),
                  "upper": _jitter(rng, _pick(rng, WALLS[:cfg.materials.wall_palettes])[1], 0.03),
                  "band_height": _u(rng, (1.0, 2.5))},
        "rack_colors": {"frame": _jitter(rng, _pick(rng, RACK_FRAME), 0.03),
                        "beam": _jitter(rng, _pick(rng, RACK_BEAM), 0.03)},
        "stock": _plan_stock(layout, cfg.layout, rng),
        "stock_colors": {"cardboard": [_jitter(rng, c, 0.03) for c in CARDBOARD],
                         "wrap": _jitter(rng, (0.85, 0.87, 0.88), 0.04),
                         "crate": _jitter(rng, PAINT[_pick(rng, ("blue", "grey", "red", "green"))], 0.03)},
        "floor": _plan_floor(layout, doors, cfg.materials, rng),
        "lights": _plan_lights(layout, doors, cfg.lights, rng),
    }
    floor = _Floor(layout)
    for d in doors:  # keep the dock door fronts clear
        floor.add({"x": d["x"], "y": 1.0, "yaw": 0.0, "length": d["width"], "width": 1.6})
    focus = _focus_point(layout, rng)
    plan["focus"] = list(focus)
    R = cfg.focus_radius

    place_labelled = not (negative and rng.random() < 0.5)
    pedestrians, jacks = [], []
    if place_labelled:
        for _ in range(_i(rng, cfg.pallet_jacks.count)):
            j = _jack(rng, cfg.pallet_jacks)
            x_min, x_max = jack_extent(j)
            pushed = rng.random() < cfg.pallet_jacks.pushed_prob
            if pushed and not j["platform"]:  # a tiller is worked at hand height, not parked upright
                work = _u(rng, (40.0, 60.0)) if j["kind"] == "manual" else _u(rng, (25.0, 50.0))
                j["handle_angle_deg"] = float(np.clip(work, *cfg.pallet_jacks.handle_angle_deg))
            extra = 0.7 if pushed else 0.0  # room for the person behind the tiller
            fp = floor.place(rng, focus, R, x_max - x_min + extra, j["width"] + 0.1)
            if fp is None:
                continue
            # the footprint centre moves forward when it includes the person behind
            c, s = math.cos(fp["yaw"]), math.sin(fp["yaw"])
            j.update(x=fp["x"] + c * extra / 2, y=fp["y"] + s * extra / 2, yaw=fp["yaw"])
            if pushed:
                person_pose = "stand" if j["platform"] else "push"
                p = _person(rng, cfg.pedestrians, person_pose, humans)
                gx, gz = jack_grip(j)
                if j["platform"]:  # riding: stands on the platform behind the drive unit
                    off, p["z"] = x_max - j["fork_length"] - j["body_length"] - 0.24, 0.15
                else:              # walking behind the tiller, hands on the grip
                    off = gx - 0.42
                p.update(x=j["x"] + c * off, y=j["y"] + s * off, yaw=fp["yaw"], pushing=len(jacks))
                j["pushed_by"] = len(pedestrians)
                pedestrians.append(p)
            jacks.append(j)
        for _ in range(_i(rng, cfg.pedestrians.count)):
            pose = _weighted(rng, cfg.pedestrians.pose_weights)
            p = _person(rng, cfg.pedestrians, pose, humans)
            fl, fw = PERSON_FOOT.get(p["pose"], (0.7, 0.6))
            fp = floor.place(rng, focus, R, fl, fw, align=0.7 if p["pose"] == "walk" else 0.3)
            if fp is None:
                continue
            p.update(x=fp["x"], y=fp["y"], yaw=fp["yaw"])
            pedestrians.append(p)
    for p in pedestrians:
        p["x"], p["y"], p["yaw"] = round(float(p["x"]), 4), round(float(p["y"]), 4), round(float(p["yaw"]), 5)
    plan["pedestrians"], plan["pallet_jacks"] = pedestrians, jacks

    distractors = []
    dcfg = cfg.distractors
    for _ in range(_i(rng, dcfg.count)):
        d = _distractor(rng, _weighted(rng, dcfg.kind_weights))
        fp = floor.place(rng, focus, R * 1.3, d["footprint"][0], d["footprint"][1], align=0.6)
        if fp is not None:
            d.update(x=fp["x"], y=fp["y"], yaw=fp["yaw"])
            distractors.append(d)
    oa = layout["open_area"]
    for _ in range(_i(rng, dcfg.staging_loads)):  # staged loads lined up along the staging area
        d = _distractor(rng, "load" if rng.random() < 0.75 else "pallet_stack")
        side = rng.random() < 0.5
        x = _u(rng, (0.9, 1.6)) if side else layout["width"] - _u(rng, (0.9, 1.6))
        fp = {"x": x, "y": _u(rng, (oa["y0"] + 1.0, max(oa["y0"] + 1.0, oa["y1"] - 1.0))),
              "yaw": math.pi / 2 + rng.normal(0, 0.03), "length": 1.2, "width": 0.8}
        if floor.free(fp, 0.05):
            floor.add(fp)
            d.update(x=fp["x"], y=fp["y"], yaw=fp["yaw"])
            distractors.append(d)
    plan["distractors"] = distractors

    plan["camera"] = _place_camera(plan, cfg.camera, rng, floor, focus, aspect)
    if negative and plan["camera"]["view"]["maybe"]:
        # could not look away from everything: drop the labelled objects (and the loads they carried)
        plan["pedestrians"], plan["pallet_jacks"] = [], []
        plan["camera"]["view"] = {"seen": [], "maybe": []}
    plan["post"] = {
        "noise_sigma": _u(rng, cfg.post.noise_sigma),
        "blur_px": _u(rng, cfg.post.blur_px) if rng.random() < cfg.post.blur_prob else 0.0,
        "blur_angle_deg": _u(rng, (0.0, 180.0)),
    }
    return plan


def _place_camera(plan: dict, cfg: CameraConfig, rng: np.random.Generator, floor: _Floor,
                  focus: tuple[float, float], aspect: float) -> dict:
    boxes = labelled_boxes(plan)
    best = None
    for _ in range(cfg.max_tries):
        if boxes and not plan["negative"]:
            target = _pick(rng, boxes)[2].mean(0)
        else:
            target = np.array([focus[0], focus[1], 0.8])
            if plan["negative"] and boxes:  # look somewhere away from the labelled objects
                target = np.array([_u(rng, (1, floor.layout["width"] - 1)),
                                   _u(rng, (1, floor.layout["length"] - 1)), 0.8])
        cam = _camera(cfg, rng, floor, target)
        plan["camera"] = cam
        view = check_camera_sees(plan, aspect, cfg.min_object_px, cfg.image_height_px)
        cam["view"] = view
        if plan["negative"]:
            if not view["maybe"]:
                return cam
        elif not boxes or view["seen"]:
            return cam
        if best is None or len(view["seen"]) > len(best["view"]["seen"]):
            best = cam
    return best if best is not None else cam
