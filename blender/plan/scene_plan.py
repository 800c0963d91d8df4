"""The typed plan of one frame: what the planner decides and the Blender view builds.

Plain dataclasses (no bpy, no numpy): `ScenePlan.to_dict()` is the JSON form (the same keys
in the same order as the untyped plans of version 1, so saved plans stay readable) and
`ScenePlan.from_dict()` reads it back, refusing other versions. Version 2 adds a site's own
assets (`assets`) and calibrated lens (`camera.lens`); version 3 adds procedural materials
(`materials`, and the per-object `surfaces` / `look` they pick); version 4 dresses people
(`pedestrians[i].outfit`: fabrics, prints, shorts, gloves, caps, glasses, hair styles, skin type;
docs/people.md). All are left out of the JSON
while unused, so a plan that uses none of them stays version 1, byte for byte. Units are metres and
degrees where the name says so; colours are sRGB 0..1; yaw is the angle of an object's
local +X (its front) from world +X, in radians.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar

PLAN_VERSION = 1          # what a plan without site assets or a calibrated lens is
SITE_PLAN_VERSION = 2     # a plan that uses either (the JSON gains `assets` / `camera.lens`)
MATERIAL_PLAN_VERSION = 3  # a plan with procedural materials (the JSON gains `materials`, `surfaces`, `look`)
PEOPLE_PLAN_VERSION = 4    # a plan with dressed people (the JSON gains `pedestrians[i].outfit`)
READ_VERSIONS = (PLAN_VERSION, SITE_PLAN_VERSION, MATERIAL_PLAN_VERSION, PEOPLE_PLAN_VERSION)
# fields added after version 1: omitted from to_dict() while at their default
_OMIT_DEFAULT = {"omit_default": True}
RGB = list[float]


# ---------------------------------------------------------------- materials (version 3)

@dataclass
class TextureSet:
    """A user's PBR set (scene.materials.texture_dir): image paths; roughness/normal may be absent."""

    name: str
    color: str
    roughness: str | None = None
    normal: str | None = None


@dataclass
class Surface:
    """One procedural material, built by blender/materials from these numbers alone.

    family: blender.plan.scene_config.MATERIAL_FAMILIES. color/color2: base and secondary colour
    (concrete patches, wood grain, label paper, the metal under chipped paint). wear: cracks,
    chips, scuffs; dirt: stains and grime; marks: tyre marks (concrete), tape and labels
    (cardboard). scale: pattern size in metres; seed: offsets the noise so no two look alike.
    texture: a user PBR set that replaces the procedural pattern.
    """

    family: str
    color: RGB
    color2: RGB
    roughness: float
    wear: float
    dirt: float
    marks: float
    scale: float
    seed: float
    texture: TextureSet | None = field(default=None, metadata=_OMIT_DEFAULT)


@dataclass
class Hdri:
    """World light from an environment map (scene.materials.hdri_dir), turned about z."""

    path: str
    rotation_deg: float
    strength: float


# slots of a load look, in the material order of blender/assets/loads.py
LOAD_SLOTS = ("wood", "cardboard", "wrap", "crate", "cardboard_dark")


@dataclass
class SceneMaterials:
    """The building's surfaces and the looks that loads pick by `look` (None: a plain material)."""

    floor: Surface | None
    walls: list[Surface | None]        # [upper wall, lower band]
    racks: list[Surface | None]        # [frame, beam]
    loads: list[list[Surface | None]]  # looks, each in LOAD_SLOTS order
    hdri: Hdri | None = None


# ---------------------------------------------------------------- building

@dataclass
class XSpan:
    x0: float
    x1: float


@dataclass
class YSpan:
    y0: float
    y1: float


@dataclass
class RackRow:
    """One back-to-back rack row: two sides of `depth` around a `flue` gap."""

    x0: float
    x1: float
    y0: float
    y1: float
    depth: float
    flue: float
    bay_width: float
    n_bays: int
    levels: list[float]    # beam heights, 0 = floor level
    height: float          # top beam


@dataclass
class Layout:
    width: float                   # x extent of the hall
    length: float                  # y extent; dock doors in the wall y = 0
    height: float
    racks: list[RackRow]
    aisles: list[XSpan]            # the first one runs along the side wall x = 0
    rack_y: list[float]            # [y0, y1] of the racked area
    cross_aisle: YSpan | None
    open_area: YSpan               # staging area between the dock wall and the racks


@dataclass
class Door:
    x: float
    width: float
    height: float
    open: bool


@dataclass
class Walls:
    lower: RGB
    upper: RGB
    band_height: float


@dataclass
class RackColors:
    frame: RGB
    beam: RGB


@dataclass
class StockItem:
    """A load on a rack beam (or the floor level of a rack)."""

    kind: str              # blender.plan.scene_config.STOCK_KINDS
    x: float
    y: float
    z: float
    length: float
    width: float
    height: float
    variant: int
    look: int = field(default=0, metadata=_OMIT_DEFAULT)  # SceneMaterials.loads index


@dataclass
class StockColors:
    cardboard: list[RGB]
    wrap: RGB
    crate: RGB


@dataclass
class FloorLine:
    x0: float
    y0: float
    x1: float
    y1: float
    width: float
    color: RGB


@dataclass
class Floor:
    value: float
    stains: float
    roughness: float
    tint: RGB
    lines: list[FloorLine]


@dataclass
class Fixture:
    x: float
    y: float
    z: float
    power: float
    on: bool


@dataclass
class Daylight:
    strength: float
    elevation_deg: float
    azimuth_deg: float
    sky_strength: float


@dataclass
class Lights:
    kind: str              # "linear" or "highbay"
    fixtures: list[Fixture]
    color_temp_k: float
    color: RGB
    world_strength: float
    daylight: Daylight | None


# ---------------------------------------------------------------- labelled objects

@dataclass
class CarryBox:
    size: list[float]
    color: RGB


@dataclass
class Print:
    """A logo or text print on a shirt (blender/materials/fabric.py), centred on the chest or back."""

    place: str             # "chest" or "back"
    shape: str             # blender.plan.actors.PRINT_SHAPES
    color: RGB
    size: float            # width, metres
    seed: float


@dataclass
class Outfit:
    """What a person wears beyond the version-1 colours (pedestrians.* appearance keys).

    shirt/trousers: fabric Surfaces (family `fabric_<pattern>`, colour = the Person's colour),
    None: the plain colour. shorts: legs bare below the hem. gloves, cap, glasses: their
    colours (glasses: the lens tint), None: not worn (a cap only without a hard hat).
    hair_style: blender.plan.scene_config.HAIR_STYLES. skin_type: the Fitzpatrick type (1-6)
    the Person's skin colour was drawn from, 0 for the old palette.
    """

    shirt: Surface | None
    trousers: Surface | None
    print: Print | None
    shorts: bool
    gloves: RGB | None
    cap: RGB | None
    glasses: RGB | None
    hair_style: str
    skin_type: int


@dataclass
class Person:
    mesh_id: str | None    # library mesh; None: the builder picks one of `pose` and `height`
    pose: str
    height: float
    z: float               # feet above the floor (riders stand on a platform)
    skin: RGB
    hair: RGB
    shirt: RGB
    long_sleeves: bool
    trousers: RGB
    shoes: RGB
    vest: bool
    vest_color: RGB
    hard_hat: bool
    hat_color: RGB
    carry_box: CarryBox | None
    pushing: int | None    # index of the pallet jack this person pushes
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    outfit: Outfit | None = field(default=None, metadata=_OMIT_DEFAULT)  # version 4


@dataclass
class JackLoad:
    kind: str
    height: float
    variant: int
    look: int = field(default=0, metadata=_OMIT_DEFAULT)


@dataclass
class Jack:
    kind: str              # "manual" or "electric"
    color: RGB
    fork_length: float
    width: float
    fork_height: float
    forks_raised: bool
    body_length: float
    handle_length: float
    handle_angle_deg: float  # tiller tilt from vertical
    platform: bool           # stand-on (ride) platform
    load: JackLoad | None    # a separate, unlabelled object on the forks
    pushed_by: int | None    # index of the person pushing it
    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    surfaces: list[Surface | None] = field(default_factory=list, metadata=_OMIT_DEFAULT)  # [paint, rubber]


# ---------------------------------------------------------------- unlabelled props
# One class per kind; fields in the order the plan has always listed them.

@dataclass
class Forklift:
    kind: ClassVar[str] = "forklift"
    color: RGB
    length: float
    width: float
    mast_height: float
    fork_height: float
    footprint: list[float]   # [length, width] of the floor it blocks
    x: float
    y: float
    yaw: float
    # [paint, dark, steel, accent] (pallet_stack: [pallets]); empty: plain materials
    surfaces: list[Surface | None] = field(default_factory=list, metadata=_OMIT_DEFAULT)


@dataclass
class PalletStack:
    kind: ClassVar[str] = "pallet_stack"
    color: None = field(default=None, init=False)
    count: int
    plastic: bool
    footprint: list[float]
    x: float
    y: float
    yaw: float
    # [paint, dark, steel, accent] (pallet_stack: [pallets]); empty: plain materials
    surfaces: list[Surface | None] = field(default_factory=list, metadata=_OMIT_DEFAULT)


@dataclass
class FloorLoad:
    kind: ClassVar[str] = "load"
    color: None = field(default=None, init=False)
    load: str
    height: float
    variant: int
    footprint: list[float]
    x: float
    y: float
    yaw: float
    # [paint, dark, steel, accent] (pallet_stack: [pallets]); empty: plain materials
    surfaces: list[Surface | None] = field(default_factory=list, metadata=_OMIT_DEFAULT)
    look: int = field(default=0, metadata=_OMIT_DEFAULT)  # SceneMaterials.loads index


@dataclass
class Cart:
    kind: ClassVar[str] = "cart"
    color: RGB
    length: float
    width: float
    boxes: int
    footprint: list[float]
    x: float
    y: float
    yaw: float
    # [paint, dark, steel, accent] (pallet_stack: [pallets]); empty: plain materials
    surfaces: list[Surface | None] = field(default_factory=list, metadata=_OMIT_DEFAULT)


@dataclass
class Cone:
    kind: ClassVar[str] = "cone"
    color: RGB
    height: float
    footprint: list[float]
    x: float
    y: float
    yaw: float
    # [paint, dark, steel, accent] (pallet_stack: [pallets]); empty: plain materials
    surfaces: list[Surface | None] = field(default_factory=list, metadata=_OMIT_DEFAULT)


@dataclass
class Barrier:
    kind: ClassVar[str] = "barrier"
    color: RGB
    length: float
    height: float
    footprint: list[float]
    x: float
    y: float
    yaw: float
    # [paint, dark, steel, accent] (pallet_stack: [pallets]); empty: plain materials
    surfaces: list[Surface | None] = field(default_factory=list, metadata=_OMIT_DEFAULT)


@dataclass
class Bin:
    kind: ClassVar[str] = "bin"
    color: RGB
    height: float
    size: float
    footprint: list[float]
    x: float
    y: float
    yaw: float
    # [paint, dark, steel, accent] (pallet_stack: [pallets]); empty: plain materials
    surfaces: list[Surface | None] = field(default_factory=list, metadata=_OMIT_DEFAULT)


Distractor = Forklift | PalletStack | FloorLoad | Cart | Cone | Barrier | Bin
DISTRACTOR_TYPES: dict[str, type] = {t.kind: t for t in typing.get_args(Distractor)}


# ---------------------------------------------------------------- a site's own assets

@dataclass
class UserAsset:
    """A site's own model (render config `assets:`), placed on the floor. The file is read
    by the Blender view only; `size` is its scaled bounding box, measured there once per job."""

    path: str
    category: str          # "pallet_jack" (labelled, one instance) or the site's word for an unlabelled prop
    scale: float
    size: list[float]      # [length along local +X, width, height], metres, after scaling
    x: float
    y: float
    yaw: float

    @property
    def labelled(self) -> bool:
        return self.category == "pallet_jack"


# ---------------------------------------------------------------- camera, post, plan

@dataclass
class Lens:
    """A calibrated camera (blender.plan.calibration): the scene is rendered undistorted by a
    centred pinhole of `render_size` and `render_focal_px`, then both the image and the index
    pass are remapped into the calibrated image (blender/distort.py). OpenCV pixel convention."""

    camera_matrix: list[list[float]]
    dist_coeffs: list[float]
    model: str             # "pinhole" (k1 k2 p1 p2 [k3 ...]) or "fisheye" (k1..k4)
    image_size: list[int]  # [width, height] of the calibrated (output) image
    render_size: list[int]
    render_focal_px: float

@dataclass
class View:
    """Labelled objects the camera sees ([kind, index] pairs); `maybe`: any part could show."""

    seen: list[list] = field(default_factory=list)
    maybe: list[list] = field(default_factory=list)


@dataclass
class Camera:
    kind: str              # "cctv" or "robot"
    location: list[float]
    look_at: list[float]
    roll_deg: float
    fov_deg: float         # horizontal
    sensor_width_mm: float
    focal_mm: float
    matrix: list[list[float]]       # columns: camera X (right), Y (up), Z (backwards) in world
    rotation_euler: list[float]     # Blender XYZ Euler of `matrix`
    view: View = field(default_factory=View)
    lens: Lens | None = field(default=None, metadata=_OMIT_DEFAULT)  # calibrated camera, else ideal pinhole


@dataclass
class Post:
    noise_sigma: float
    blur_px: float         # 0: no motion blur
    blur_angle_deg: float


@dataclass
class ScenePlan:
    version: int
    negative: bool         # nothing labelled is in view
    layout: Layout
    doors: list[Door]
    walls: Walls
    rack_colors: RackColors
    stock: list[StockItem]
    stock_colors: StockColors
    floor: Floor
    lights: Lights
    focus: list[float]     # where the labelled objects cluster
    pedestrians: list[Person]
    pallet_jacks: list[Jack]
    distractors: list[Distractor]
    camera: Camera
    post: Post
    assets: list[UserAsset] = field(default_factory=list, metadata=_OMIT_DEFAULT)
    materials: SceneMaterials | None = field(default=None, metadata=_OMIT_DEFAULT)

    def to_dict(self) -> dict:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ScenePlan:
        """A plan's JSON form back to a plan; another version or a bad field is a ValueError."""
        version = data.get("version") if isinstance(data, dict) else None
        if version not in READ_VERSIONS:
            raise ValueError(f"scene plan version {version!r}: this code reads versions {list(READ_VERSIONS)}")
        return _from_dict(cls, data, "plan")


def plan_version(assets: list, lens: Lens | None, materials: SceneMaterials | None = None,
                 pedestrians: list[Person] = ()) -> int:
    """The lowest version whose readers keep everything the plan uses (older ones would drop it)."""
    if any(p.outfit is not None for p in pedestrians):
        return PEOPLE_PLAN_VERSION
    if materials is not None:
        return MATERIAL_PLAN_VERSION
    return SITE_PLAN_VERSION if assets or lens is not None else PLAN_VERSION


# ---------------------------------------------------------------- JSON form

def _class_kind(tp: type) -> str | None:
    """The kind a prop class stands for (a class constant, not a field), else None."""
    kind = getattr(tp, "kind", None)
    return kind if isinstance(kind, str) and "kind" not in {f.name for f in dataclasses.fields(tp)} else None


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _to_dict(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        kind = _class_kind(type(obj))
        out = {} if kind is None else {"kind": kind}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.metadata.get("omit_default") and value == _default(f):
                continue
            out[f.name] = _to_dict(value)
        return out
    if isinstance(obj, list):
        return [_to_dict(v) for v in obj]
    return obj


def _from_dict(tp: Any, data: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if data is None and type(None) in options:
            return None
        if all(dataclasses.is_dataclass(o) for o in options):  # the distractor kinds
            kind = data.get("kind") if isinstance(data, dict) else None
            if kind not in DISTRACTOR_TYPES:
                raise ValueError(f"{where}.kind: unknown kind {kind!r}; expected one of {sorted(DISTRACTOR_TYPES)}")
            return _from_dict(DISTRACTOR_TYPES[kind], data, where)
        return _from_dict(next(o for o in options if o is not type(None)), data, where)
    if origin is list:
        if not isinstance(data, list):
            raise ValueError(f"{where}: expected a list, got {type(data).__name__}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_from_dict(item, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
        hints = typing.get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp)}
        unknown = set(data) - set(fields) - ({"kind"} if _class_kind(tp) else set())
        if unknown:
            raise ValueError(f"{where}.{sorted(unknown)[0]}: unknown field")
        kwargs = {}
        for name, f in fields.items():
            if not f.init:
                continue
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise ValueError(f"{where}.{name}: missing")
                continue
            kwargs[name] = _from_dict(hints[name], data[name], f"{where}.{name}")
        return tp(**kwargs)
    return data
