"""Things on the floor: pedestrians and pallet jacks (the labelled classes), pushers paired
with their jacks, and unlabelled props (forklifts, pallets, loads, carts, cones, ...)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from blender.palettes import CARDBOARD, HAIR, HAT, PAINT, SHIRT, SHOES, SKIN, TROUSERS, VEST
from blender.plan.draw import Rng, integer, jitter, pick, uniform, weighted
from blender.plan.geometry import PLATFORM_TOP_M, Footprint, jack_extent, jack_grip
from blender.plan.placement import FloorSpace
from blender.plan.scene_config import (
    DistractorConfig,
    PalletJackConfig,
    PedestrianConfig,
    SceneConfig,
)
from blender.plan.scene_plan import (
    DISTRACTOR_TYPES,
    CarryBox,
    Distractor,
    Jack,
    JackLoad,
    Outfit,
    Person,
    Print,
    Surface,
)
from pipeline.humans import still_meshes  # torch-free at import, as blender.plan's load_human_index

# Floor footprints (length along local +X, width) of people by pose, in metres.
PERSON_FOOT = {"walk": (0.75, 0.55), "stand": (0.5, 0.55), "carry": (0.8, 0.6),
               "bend": (0.9, 0.55), "crouch": (0.8, 0.6), "push": (0.7, 0.6)}
OTHER_POSE_FOOT = (0.7, 0.6)
CARRY_BOX_M = ((0.3, 0.55), (0.25, 0.4), (0.2, 0.4))  # carton length, width, height

# Pallet jacks: the usual walkie / hand pallet truck sizes.
JACK_WIDTHS_M = (0.54, 0.56, 0.685)   # over the forks: narrow, EUR, US pallets
RAISED_FORK_HEIGHT_M = (0.17, 0.2)
LOWERED_FORK_HEIGHT_M = 0.085
BODY_LENGTH_M = {"electric": (0.6, 0.8), "manual": (0.25, 0.32)}      # drive unit / pump
HANDLE_LENGTH_M = {"electric": (0.55, 0.7), "manual": (1.1, 1.25)}    # tiller
LOAD_KINDS = ("boxes", "wrapped", "crate", "pallet")
# a pushed tiller is worked at hand height, not parked upright
TILLER_WORK_ANGLE_DEG = {"manual": (40.0, 60.0), "electric": (25.0, 50.0)}
PUSHER_ROOM_M = 0.7          # floor behind a pushed jack for its pusher
JACK_SIDE_CLEARANCE_M = 0.1
PUSHER_REACH_M = 0.42        # body centre to hands on the grip
RIDER_BEHIND_BODY_M = 0.24   # a rider's centre on the platform, behind the drive unit

# Props: the placement radius grows past the labelled cluster, and staged loads line the
# staging-area side walls, turned to face the hall.
PROP_RADIUS_FACTOR = 1.3
STAGED_LOAD_PROB = 0.75      # else an empty pallet stack
STAGED_WALL_GAP_M = (0.9, 1.6)
STAGED_YAW_SIGMA = 0.03
PALLET_FOOTPRINT_M = (1.2, 0.8)   # EUR pallet

# People's appearance (docs/people.md). Skin: sRGB reference shades of the Fitzpatrick types
# I-VI; a person of type t gets a shade up to half way to either neighbour type, so the six
# types together tile the range evenly from the palest to the darkest skin.
FITZPATRICK = {1: (0.97, 0.85, 0.77), 2: (0.92, 0.75, 0.63), 3: (0.83, 0.63, 0.49),
               4: (0.68, 0.48, 0.33), 5: (0.49, 0.32, 0.21), 6: (0.28, 0.18, 0.12)}
SKIN_SPREAD = 0.5          # of the step to the next type, either way: the types tile the range
# fabric: (roughness, pattern size in metres) per pattern; which garments may take it
FABRIC_RANGES = {"woven": ((0.8, 0.95), (0.004, 0.01)), "knit": ((0.85, 0.98), (0.004, 0.01)),
                 "denim": ((0.75, 0.9), (0.006, 0.012)), "check": ((0.8, 0.95), (0.04, 0.12)),
                 "stripe": ((0.8, 0.95), (0.01, 0.06)), "camo": ((0.8, 0.95), (0.06, 0.16))}
SHIRT_FABRICS = ("woven", "knit", "denim", "check", "stripe", "camo")
TROUSER_FABRICS = ("woven", "knit", "denim", "camo", "check")
DENIM = [(0.12, 0.2, 0.38), (0.2, 0.3, 0.5), (0.35, 0.45, 0.62), (0.08, 0.08, 0.1)]
CAMO = [(0.33, 0.36, 0.22), (0.45, 0.42, 0.3), (0.3, 0.32, 0.34), (0.5, 0.45, 0.35)]
FABRIC_ACCENT = [(0.9, 0.9, 0.88), (0.08, 0.08, 0.09), (0.75, 0.12, 0.1), (0.95, 0.75, 0.1),
                 (0.15, 0.3, 0.6), (0.2, 0.45, 0.25)]
FABRIC_SEED_MAX = 1000.0
PRINT_SHAPES = ("disc", "ring", "text", "chevron", "block", "band")
PRINT_INK = [(0.95, 0.95, 0.93), (0.06, 0.06, 0.07), (0.95, 0.78, 0.1), (0.8, 0.12, 0.1),
             (0.1, 0.3, 0.7), (0.95, 0.45, 0.05)]
PRINT_CONTRAST = 0.8     # inks at least this far (sum of sRGB channels) from the shirt: a print that shows
PRINT_WIDTH_M = {"chest": (0.07, 0.13), "back": (0.14, 0.22)}
BACK_PRINT_PROB = 0.4
GLOVES = [(0.55, 0.55, 0.53), (0.07, 0.07, 0.08), (0.95, 0.45, 0.05), (0.15, 0.35, 0.8),
          (0.82, 0.68, 0.38), (0.9, 0.9, 0.87), (0.2, 0.5, 0.22), (0.75, 0.12, 0.08)]
CAPS = [(0.08, 0.1, 0.22), (0.07, 0.07, 0.08), (0.75, 0.1, 0.08), (0.5, 0.5, 0.5), (0.9, 0.9, 0.88),
        (0.12, 0.3, 0.7), (0.2, 0.4, 0.2), (0.95, 0.5, 0.05), (0.7, 0.62, 0.45)]
OUTFIT_SALT = 0x9E0F1E   # tells the outfit stream apart from any other seeded by the same state
LENSES = [(0.85, 0.88, 0.9), (0.1, 0.1, 0.11), (0.85, 0.62, 0.15), (0.55, 0.6, 0.68)]


def person_foot(pose: str) -> tuple[float, float]:
    """(length, width) of the floor a person of `pose` takes."""
    return PERSON_FOOT.get(pose, OTHER_POSE_FOOT)


def person_footprint(p: Person) -> Footprint:
    """The floor a person takes, at its place in the plan."""
    return Footprint(p.x, p.y, p.yaw, *person_foot(p.pose))


def make_person(rng: Rng, cfg: PedestrianConfig, pose: str, humans: Sequence[dict] | None) -> Person:
    """A dressed person of `pose` (the library mesh's pose wins when it has none of that pose)."""
    stills = still_meshes(humans or [])
    if stills:
        pool = [h for h in stills if h["pose"] == pose] or stills
        mesh = pick(rng, pool)
        mesh_id, height, pose = mesh["id"], float(mesh["height"]), mesh["pose"]
    else:
        mesh_id, height = None, uniform(rng, cfg.height)
    long_sleeves = rng.random() >= cfg.short_sleeve_prob
    p = Person(
        mesh_id=mesh_id, pose=pose, height=round(height, 4), z=0.0,
        skin=jitter(rng, pick(rng, SKIN), 0.03), hair=jitter(rng, pick(rng, HAIR), 0.03),
        shirt=jitter(rng, pick(rng, SHIRT)), long_sleeves=bool(long_sleeves),
        trousers=jitter(rng, pick(rng, TROUSERS)), shoes=jitter(rng, pick(rng, SHOES), 0.02),
        vest=bool(rng.random() < cfg.vest_prob), vest_color=jitter(rng, pick(rng, VEST), 0.03),
        hard_hat=bool(rng.random() < cfg.hard_hat_prob), hat_color=jitter(rng, pick(rng, HAT), 0.03),
        carry_box=None, pushing=None,
    )
    if pose == "carry":
        p.carry_box = CarryBox(size=[round(uniform(rng, r), 3) for r in CARRY_BOX_M],
                               color=jitter(rng, pick(rng, CARDBOARD), 0.03))
    if cfg.appearance:
        # a stream of its own: the frame's other draws (layout, camera, materials, a clip's
        # motion) stay as they were whether people are dressed or not
        dress_person(cfg, outfit_rng(rng), p)
    return p


def outfit_rng(rng: Rng) -> Rng:
    """A generator seeded by where `rng` stands now (its state, not a draw and not a spawn, so
    neither its own sequence nor the children it spawns later change); distinct per person."""
    state = rng.bit_generator.state["state"]
    words = [state["state"], state["inc"]] if isinstance(state, dict) else [hash(str(state)) & (2**63 - 1)]
    return np.random.default_rng([*words, OUTFIT_SALT])


def skin_tone(rng: Rng, skin_type: int) -> list[float]:
    """A shade of Fitzpatrick type `skin_type`: towards a neighbour type by up to SKIN_SPREAD of the step."""
    t = uniform(rng, (max(1.0, skin_type - SKIN_SPREAD), min(6.0, skin_type + SKIN_SPREAD)))
    lo = min(int(math.floor(t)), 5)
    a, b, f = FITZPATRICK[lo], FITZPATRICK[lo + 1], t - lo
    return jitter(rng, [(1 - f) * x + f * y for x, y in zip(a, b, strict=True)], 0.015)


def fabric(rng: Rng, pattern: str, color, color2) -> Surface:
    rough, scale = FABRIC_RANGES[pattern]
    return Surface(family=f"fabric_{pattern}", color=list(color), color2=jitter(rng, color2, 0.03),
                   roughness=round(uniform(rng, rough), 4), wear=round(uniform(rng, (0.0, 0.6)), 4),
                   dirt=round(uniform(rng, (0.0, 0.5)), 4), marks=round(uniform(rng, (0.3, 1.0)), 4),
                   scale=round(uniform(rng, scale), 5), seed=round(uniform(rng, (0.0, FABRIC_SEED_MAX)), 3))


def _garment(rng: Rng, allowed: Sequence[str], color, dark: bool) -> tuple[Surface | None, list[float]]:
    """A fabric pattern of `allowed` (None: none is on) and the colour it starts from."""
    if not allowed:
        return None, color
    pattern = pick(rng, allowed)
    if pattern == "denim":
        color = jitter(rng, pick(rng, DENIM), 0.03)
        second = [min(1.0, c * 1.6 + 0.15) for c in color]           # faded threads
    elif pattern == "camo":
        color = jitter(rng, pick(rng, CAMO), 0.03)
        second = [c * 0.55 for c in pick(rng, CAMO)]
    elif pattern in ("woven", "knit"):
        second = [c * (0.7 if dark else 1.25) for c in color]         # heather: a shade of its own
        second = [min(1.0, c) for c in second]
    else:                                                              # check, stripe: a contrast
        second = pick(rng, FABRIC_ACCENT)
    return fabric(rng, pattern, color, second), color


def dress_person(cfg: PedestrianConfig, rng: Rng, p: Person) -> None:
    """Draw the Outfit of `p` (and its skin shade) from `rng`, in a fixed order; keys at their off
    values give what the version-1 plan would have (plain colours, no accessories)."""
    skin_type = 0
    if cfg.skin_types:
        skin_type = int(pick(rng, cfg.skin_types))
        p.skin = skin_tone(rng, skin_type)
    shirt_allowed = [f for f in SHIRT_FABRICS if f in cfg.fabrics]
    shirt, p.shirt = _garment(rng, shirt_allowed, p.shirt, sum(p.shirt) < 1.2)
    trousers_allowed = [f for f in TROUSER_FABRICS if f in cfg.fabrics]
    trousers, p.trousers = _garment(rng, trousers_allowed, p.trousers, sum(p.trousers) < 1.2)
    printed = None
    if rng.random() < cfg.print_prob:
        place = "back" if rng.random() < BACK_PRINT_PROB else "chest"
        ink = pick(rng, [c for c in PRINT_INK if abs(sum(c) - sum(p.shirt)) > PRINT_CONTRAST] or PRINT_INK)
        printed = Print(place=place, shape=pick(rng, PRINT_SHAPES), color=jitter(rng, ink, 0.03),
                        size=round(uniform(rng, PRINT_WIDTH_M[place]), 4),
                        seed=round(uniform(rng, (0.0, FABRIC_SEED_MAX)), 3))
    shorts = bool(rng.random() < cfg.shorts_prob)
    gloves = jitter(rng, pick(rng, GLOVES), 0.03) if rng.random() < cfg.glove_prob else None
    cap_roll, cap_color = rng.random(), jitter(rng, pick(rng, CAPS), 0.03)
    cap = cap_color if (not p.hard_hat and cap_roll < cfg.cap_prob) else None
    glasses = jitter(rng, pick(rng, LENSES), 0.02) if rng.random() < cfg.glasses_prob else None
    hair = weighted(rng, cfg.hair_styles) if cfg.hair_styles else "short"
    p.outfit = Outfit(shirt=shirt, trousers=trousers, print=printed, shorts=shorts, gloves=gloves, cap=cap,
                      glasses=glasses, hair_style=hair, skin_type=skin_type)


def make_jack(rng: Rng, cfg: PalletJackConfig) -> Jack:
    electric = bool(rng.random() < cfg.electric_prob)
    raised = bool(rng.random() < cfg.forks_raised_prob)
    kind = "electric" if electric else "manual"
    j = Jack(
        kind=kind,
        color=jitter(rng, PAINT[pick(rng, cfg.colors)], 0.03),
        fork_length=uniform(rng, cfg.fork_length),
        width=pick(rng, JACK_WIDTHS_M),
        fork_height=uniform(rng, RAISED_FORK_HEIGHT_M) if raised else LOWERED_FORK_HEIGHT_M,
        forks_raised=raised,
        body_length=uniform(rng, BODY_LENGTH_M[kind]),
        handle_length=uniform(rng, HANDLE_LENGTH_M[kind]),
        handle_angle_deg=uniform(rng, cfg.handle_angle_deg),
        platform=bool(electric and rng.random() < cfg.platform_prob),
        load=None, pushed_by=None,
    )
    if rng.random() < cfg.loaded_prob:
        # The pallet and its load are separate, unlabelled objects: a mask of "pallet jack"
        # covers the truck only, as an annotator would draw it.
        j.load = JackLoad(kind=pick(rng, LOAD_KINDS), height=round(uniform(rng, cfg.load_height), 3),
                          variant=int(rng.integers(4)))
    return j


def place_labelled(rng: Rng, cfg: SceneConfig, floor: FloorSpace, focus: tuple[float, float],
                   humans: Sequence[dict] | None) -> tuple[list[Person], list[Jack]]:
    """Pallet jacks (some with their pusher) first, then free pedestrians, around `focus`."""
    pedestrians: list[Person] = []
    jacks: list[Jack] = []
    radius = cfg.focus_radius
    jcfg = cfg.pallet_jacks
    for _ in range(integer(rng, jcfg.count)):
        j = make_jack(rng, jcfg)
        pushed = rng.random() < jcfg.pushed_prob
        if pushed and not j.platform:
            work = uniform(rng, TILLER_WORK_ANGLE_DEG[j.kind])
            j.handle_angle_deg = float(np.clip(work, *jcfg.handle_angle_deg))
        # measured with the tiller where the jack stands: a pushed one's is tilted to work, and a
        # longer reach measured before would stick out of the floor it was given (into a neighbour's)
        x_min, x_max = jack_extent(j)
        extra = PUSHER_ROOM_M if pushed else 0.0
        fp = floor.place(rng, focus, radius, x_max - x_min + extra, j.width + JACK_SIDE_CLEARANCE_M)
        if fp is None:
            continue
        # the footprint centre moves forward when it includes the person behind
        c, s = math.cos(fp.yaw), math.sin(fp.yaw)
        j.x, j.y, j.yaw = fp.x + c * extra / 2, fp.y + s * extra / 2, fp.yaw
        if pushed:
            p = make_person(rng, cfg.pedestrians, "stand" if j.platform else "push", humans)
            gx, gz = jack_grip(j)
            if j.platform:  # riding: stands on the platform behind the drive unit
                off, p.z = x_max - j.fork_length - j.body_length - RIDER_BEHIND_BODY_M, PLATFORM_TOP_M
            else:           # walking behind the tiller, hands on the grip
                off = gx - PUSHER_REACH_M
            p.x, p.y, p.yaw, p.pushing = j.x + c * off, j.y + s * off, fp.yaw, len(jacks)
            j.pushed_by = len(pedestrians)
            pedestrians.append(p)
        jacks.append(j)
    pcfg = cfg.pedestrians
    for _ in range(integer(rng, pcfg.count)):
        p = make_person(rng, pcfg, weighted(rng, pcfg.pose_weights), humans)
        fp = floor.place(rng, focus, radius, *person_foot(p.pose), align=0.7 if p.pose == "walk" else 0.3)
        if fp is None:
            continue
        p.x, p.y, p.yaw = fp.x, fp.y, fp.yaw
        pedestrians.append(p)
    for p in pedestrians:
        p.x, p.y, p.yaw = round(float(p.x), 4), round(float(p.y), 4), round(float(p.yaw), 5)
    return pedestrians, jacks


def draw_distractor(rng: Rng, kind: str) -> dict:
    """The drawn fields of a prop of `kind`, footprint included (its place comes later)."""
    if kind == "forklift":
        d = dict(length=uniform(rng, (2.3, 2.8)), width=uniform(rng, (1.0, 1.25)),
                 mast_height=uniform(rng, (2.0, 2.4)), fork_height=uniform(rng, (0.05, 1.2)),
                 color=jitter(rng, PAINT[pick(rng, ("yellow", "orange", "red", "green", "blue"))]))
        d["footprint"] = [d["length"] + 1.1, d["width"]]   # + forks sticking out
    elif kind == "pallet_stack":
        d = dict(count=integer(rng, (1, 8)), plastic=bool(rng.random() < 0.2))
        d["footprint"] = list(PALLET_FOOTPRINT_M)
    elif kind == "load":
        d = dict(load=pick(rng, ("boxes", "wrapped", "crate")), height=uniform(rng, (0.5, 1.6)),
                 variant=int(rng.integers(4)))
        d["footprint"] = list(PALLET_FOOTPRINT_M)
    elif kind == "cart":
        d = dict(length=uniform(rng, (0.9, 1.2)), width=uniform(rng, (0.55, 0.7)),
                 color=jitter(rng, PAINT[pick(rng, ("blue", "grey", "green", "red"))]),
                 boxes=integer(rng, (0, 3)))
        d["footprint"] = [d["length"] + 0.2, d["width"]]   # + push handle
    elif kind == "cone":
        d = dict(height=uniform(rng, (0.45, 0.75)), color=jitter(rng, PAINT["orange"]))
        d["footprint"] = [0.38, 0.38]
    elif kind == "barrier":
        d = dict(length=uniform(rng, (1.2, 2.0)), height=uniform(rng, (0.9, 1.1)),
                 color=jitter(rng, PAINT[pick(rng, ("yellow", "red", "orange"))]))
        d["footprint"] = [d["length"], 0.45]               # feet
    elif kind == "bin":
        d = dict(height=uniform(rng, (0.5, 1.1)), size=uniform(rng, (0.45, 0.75)),
                 color=jitter(rng, PAINT[pick(rng, ("blue", "grey", "green", "yellow", "red"))]))
        d["footprint"] = [d["size"], d["size"]]
    else:
        raise ValueError(f"unknown distractor kind {kind!r}; choose from {sorted(DISTRACTOR_TYPES)}")
    return d


def _placed(kind: str, fields: dict, fp: Footprint) -> Distractor:
    return DISTRACTOR_TYPES[kind](**fields, x=fp.x, y=fp.y, yaw=fp.yaw)


def distractor_footprint(d: Distractor) -> Footprint:
    """The floor a prop blocks, as placed."""
    return Footprint(d.x, d.y, d.yaw, *d.footprint)


def place_distractors(rng: Rng, cfg: DistractorConfig, floor: FloorSpace, focus: tuple[float, float],
                      radius: float) -> list[Distractor]:
    """Props around the focus, then loads staged along the staging-area side walls."""
    out = []
    for _ in range(integer(rng, cfg.count)):
        kind = weighted(rng, cfg.kind_weights)
        d = draw_distractor(rng, kind)
        fp = floor.place(rng, focus, radius * PROP_RADIUS_FACTOR, d["footprint"][0], d["footprint"][1], align=0.6)
        if fp is not None:
            out.append(_placed(kind, d, fp))
    lay = floor.layout
    oa = lay.open_area
    for _ in range(integer(rng, cfg.staging_loads)):
        kind = "load" if rng.random() < STAGED_LOAD_PROB else "pallet_stack"
        d = draw_distractor(rng, kind)
        side = rng.random() < 0.5
        x = uniform(rng, STAGED_WALL_GAP_M) if side else lay.width - uniform(rng, STAGED_WALL_GAP_M)
        fp = Footprint(x, uniform(rng, (oa.y0 + 1.0, max(oa.y0 + 1.0, oa.y1 - 1.0))),
                       math.pi / 2 + rng.normal(0, STAGED_YAW_SIGMA), *PALLET_FOOTPRINT_M)
        if floor.free(fp, 0.05):
            floor.add(fp)
            out.append(_placed(kind, d, fp))
    return out
