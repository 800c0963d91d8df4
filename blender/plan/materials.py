"""Procedural materials of a frame: which family each surface gets and its numbers (colours,
wear, dirt, marks, pattern size, noise seed), a user PBR set for some surfaces, an HDRI.

Drawn last, from a child stream of the frame's rng (`rng.spawn`), so turning materials on or
off changes no other draw: the same seed gives the same layout, objects, camera and masks
either way. Colours start from the ones the plan already holds (paint, stock, floor).
"""

from __future__ import annotations

from blender.plan.draw import Rng, jitter, pick, uniform
from blender.plan.scene_config import MaterialConfig
from blender.plan.scene_plan import Hdri, SceneMaterials, ScenePlan, Surface
from blender.plan.textures import hdri_files, texture_sets

# per family: (roughness range, pattern size range in metres)
FAMILY_RANGES = {
    "concrete": (None, (1.0, 3.0)),          # roughness: the floor's own draw
    "painted_steel": ((0.3, 0.6), (0.3, 1.2)),
    "wood": ((0.7, 0.9), (0.004, 0.012)),   # grain line pitch
    "cardboard": ((0.75, 0.9), (0.2, 0.5)),
    "shrink_wrap": ((0.04, 0.2), (0.15, 0.5)),
    "rubber": ((0.7, 0.95), (0.05, 0.3)),
    "plastic": ((0.25, 0.55), (0.1, 0.4)),
}
BARE_STEEL = (0.56, 0.57, 0.58)            # under chipped paint ...
RUST = (0.36, 0.19, 0.09)                  # ... or rust, on older kit
RUST_PROB = 0.3
LABEL_PAPER = [(0.93, 0.93, 0.9), (0.96, 0.94, 0.82), (0.95, 0.95, 0.95)]
PALLET_WOOD = [(0.62, 0.48, 0.32), (0.70, 0.58, 0.42), (0.48, 0.36, 0.24), (0.58, 0.52, 0.44)]
PLASTIC_PALLET = (0.15, 0.25, 0.5)
RUBBER = (0.04, 0.04, 0.04)
WALL_WEAR = 0.3            # cladding is scuffed far less than a pallet jack
TILE_M = (0.5, 2.0)        # a user PBR set repeats every this many metres
HDRI_TURN_DEG = (0.0, 360.0)
SEED_MAX = 1000.0
# words in a PBR set's name that fit a family; a family with no fitting set may take any set
FAMILY_WORDS = {
    "concrete": ("concrete", "asphalt", "floor", "cement", "ground", "tiles"),
    "painted_steel": ("metal", "paint", "steel", "iron", "rust", "corrugated"),
    "wood": ("wood", "plank", "pallet", "plywood"),
    "cardboard": ("cardboard", "paper", "carton"),
    "shrink_wrap": ("plastic", "wrap", "foil"),
    "rubber": ("rubber", "tyre", "tire"),
    "plastic": ("plastic",),
}


class _Draw:
    """Surfaces from one rng in a fixed order; a family that is off gives None (a plain material)."""

    def __init__(self, cfg: MaterialConfig, rng: Rng):
        self.cfg, self.rng = cfg, rng
        self.sets = texture_sets(cfg.texture_dir) if cfg.texture_dir else ()

    def surface(self, family: str, color, color2=None, roughness: float | None = None,
                wear_scale: float = 1.0, marks: float = 0.0) -> Surface | None:
        rng, cfg = self.rng, self.cfg
        texture = None
        if self.sets and rng.random() < cfg.texture_prob:
            words = FAMILY_WORDS[family]
            fitting = [s for s in self.sets if any(w in s.name.lower() for w in words)]
            texture = pick(rng, fitting or self.sets)
        if family not in cfg.families and texture is None:
            return None
        rough_r, scale_r = FAMILY_RANGES[family]
        return Surface(family=family, color=jitter(rng, color, 0.03),
                       color2=jitter(rng, color2 if color2 is not None else color, 0.03),
                       roughness=roughness if roughness is not None else uniform(rng, rough_r),
                       wear=uniform(rng, cfg.wear) * wear_scale, dirt=uniform(rng, cfg.dirt),
                       marks=marks, scale=uniform(rng, TILE_M if texture else scale_r),
                       seed=uniform(rng, (0.0, SEED_MAX)), texture=texture)

    def paint(self, color, wear_scale: float = 1.0) -> Surface | None:
        under = RUST if self.rng.random() < RUST_PROB else BARE_STEEL
        return self.surface("painted_steel", color, under, wear_scale=wear_scale)


def plan_materials(cfg: MaterialConfig, rng: Rng, plan: ScenePlan) -> SceneMaterials:
    """Fill in plan.materials and the per-object `surfaces` / `look` of `plan` (in place)."""
    d = _Draw(cfg, rng)
    fl = plan.floor
    base = [min(1.0, fl.value * 2 * c) for c in fl.tint]
    floor = d.surface("concrete", base, [c * uniform(rng, (0.7, 0.9)) for c in base],
                      roughness=fl.roughness, marks=uniform(rng, (0.0, 1.0)))
    walls = [d.paint(plan.walls.upper, WALL_WEAR), d.paint(plan.walls.lower, WALL_WEAR)]
    racks = [d.paint(plan.rack_colors.frame), d.paint(plan.rack_colors.beam)]
    sc = plan.stock_colors
    looks = []
    for k in range(cfg.load_looks):
        carton = sc.cardboard[k % 3]
        looks.append([d.surface("wood", pick(rng, PALLET_WOOD), [c * 0.75 for c in PALLET_WOOD[0]]),
                      d.surface("cardboard", carton, pick(rng, LABEL_PAPER), marks=uniform(rng, (0.3, 1.0))),
                      d.surface("shrink_wrap", sc.wrap, carton),
                      d.surface("plastic", sc.crate),
                      d.surface("cardboard", sc.cardboard[3], pick(rng, LABEL_PAPER), marks=uniform(rng, (0.3, 1.0)))])
    n = len(looks)
    for s in plan.stock:
        s.look = int(rng.integers(n))
    for j in plan.pallet_jacks:
        _dress_jack(d, j, n)
    for x in plan.distractors:
        x.surfaces = _prop_surfaces(d, x)
        if x.kind == "load":
            x.look = int(rng.integers(n))
    hdri = None
    if cfg.hdri_dir and rng.random() < cfg.hdri_prob:
        hdri = Hdri(path=pick(rng, hdri_files(cfg.hdri_dir)), rotation_deg=uniform(rng, HDRI_TURN_DEG),
                    strength=uniform(rng, cfg.hdri_strength))
    return SceneMaterials(floor=floor, walls=walls, racks=racks, loads=looks, hdri=hdri)


def dress_jacks(cfg: MaterialConfig, rng: Rng, plan: ScenePlan) -> None:
    """Surfaces for pallet jacks added to a plan after its materials were drawn (clip scenarios)."""
    d = _Draw(cfg, rng)
    for j in plan.pallet_jacks:
        _dress_jack(d, j, len(plan.materials.loads))


def _dress_jack(d: _Draw, j, n_looks: int) -> None:
    j.surfaces = [d.paint(j.color), d.surface("rubber", RUBBER)]
    if j.load is not None:
        j.load.look = int(d.rng.integers(n_looks))


def _prop_surfaces(d: _Draw, x) -> list:
    """Slots [paint, dark, steel, accent] of blender/assets/distractors.py (pallet stacks: [pallets])."""
    if x.kind == "load":
        return []
    if x.kind == "pallet_stack":
        return [d.surface("plastic", PLASTIC_PALLET) if x.plastic else d.surface("wood", pick(d.rng, PALLET_WOOD))]
    if x.kind in ("forklift", "cart"):
        accent = d.surface("cardboard", (0.65, 0.5, 0.3), pick(d.rng, LABEL_PAPER), marks=0.8) if x.kind == "cart" else None
        return [d.paint(x.color), d.surface("rubber", RUBBER), None, accent]
    # cones, barriers and bins are moulded plastic
    accent = d.surface("plastic", (0.95, 0.95, 0.95)) if x.kind == "cone" else None
    return [d.surface("plastic", x.color), d.surface("rubber", RUBBER), None, accent]
