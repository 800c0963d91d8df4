"""Scene config schema: every randomization range of a frame, validated (pydantic, no bpy).

Defaults are what a real warehouse looks like; `blender.plan.plan_scene` draws from them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from blender.palettes import PAINT
from blender.plan.textures import hdri_files, texture_sets
from pipeline.common import StrictModel

Range = tuple[float, float]
IntRange = tuple[int, int]

POSES = ("walk", "stand", "carry", "bend", "crouch", "push")
DISTRACTOR_KINDS = ("forklift", "pallet_stack", "load", "cart", "cone", "barrier", "bin")
STOCK_KINDS = ("boxes", "wrapped", "crate", "pallet")
# procedural material families (blender/materials); a surface whose family is off stays plain
MATERIAL_FAMILIES = ("concrete", "painted_steel", "wood", "cardboard", "shrink_wrap", "rubber", "plastic")
# people (docs/people.md): fabric patterns of shirts and trousers (material family `fabric_<name>`),
# hair styles beyond the library mesh's own hair region, Fitzpatrick skin types I-VI
FABRICS = ("woven", "knit", "denim", "check", "stripe", "camo")
HAIR_STYLES = ("short", "shaved", "bun", "ponytail", "volume")
SKIN_TYPES = (1, 2, 3, 4, 5, 6)
# the off value of every appearance key of `pedestrians`: with all of them, people are planned
# (and the config hashes) as before these keys existed
APPEARANCE_OFF = {"fabrics": [], "print_prob": 0.0, "shorts_prob": 0.0, "glove_prob": 0.0, "cap_prob": 0.0,
                  "glasses_prob": 0.0, "skin_types": [], "hair_styles": {}}


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


def _check_known(values, known: list, what: str):
    """Only names (or values) from `known`: the first other one is the error."""
    bad = [k for k in values if k not in known]
    if bad:
        raise ValueError(f"unknown {what} {bad[0]!r}; choose from {known}")
    return values


def _check_weights(weights: dict[str, float], known: list[str], what: str, unit: str | None = None) -> dict:
    """A {name: weight} choice table: only known names, and something to choose."""
    _check_known(weights, known, what)
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
    dock_door_width: Range = (2.8, 3.4)
    dock_door_height: Range = (3.4, 4.4)
    dock_open_prob: float = Field(0.5, ge=0, le=1)


class MaterialConfig(_Section):
    floor_value: Range = (0.35, 0.65)      # concrete grey level
    floor_stains: Range = (0.0, 0.6)       # strength of dark stains
    floor_roughness: Range = (0.35, 0.8)
    wall_palettes: int = Field(4, ge=1, le=4)  # how many of the wall colour schemes to draw from
    # Procedural materials (docs/materials.md); an empty list keeps the plain materials of
    # plan version 1. wear: cracks, chips, scuffs; dirt: stains and grime (0..1 each).
    families: list[str] = list(MATERIAL_FAMILIES)
    wear: Range = (0.0, 0.8)
    dirt: Range = (0.0, 0.7)
    load_looks: int = Field(3, ge=1, le=8)    # looks of the stock loads per frame (each a few meshes)
    # A folder of the user's PBR sets (files *_Color/_BaseColor/_diff, *_Roughness/_rough,
    # *_Normal/_NormalGL/_nor_gl) and the share of surfaces that take one instead of a pattern.
    texture_dir: str | None = None
    texture_prob: float = Field(0.5, ge=0, le=1)
    # A folder of .hdr/.exr environment maps: world light through the dock doors.
    hdri_dir: str | None = None
    hdri_prob: float = Field(1.0, ge=0, le=1)
    hdri_strength: Range = (0.3, 1.5)

    @field_validator("families")
    @classmethod
    def _families_known(cls, v):
        return _check_known(v, list(MATERIAL_FAMILIES), "family")

    @field_validator("texture_dir")
    @classmethod
    def _textures_readable(cls, v):
        if v is not None:
            texture_sets(v)   # a missing folder, no set or an unreadable file: one line naming it
        return v

    @field_validator("hdri_dir")
    @classmethod
    def _hdris_readable(cls, v):
        if v is not None:
            hdri_files(v)
        return v

    @property
    def enabled(self) -> bool:
        """Whether frames get a SceneMaterials (plan version 3) at all."""
        return bool(self.families or self.texture_dir or self.hdri_dir)


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
    # A site's own camera (blender/plan/calibration.py): intrinsics and lens distortion from an
    # OpenCV calibration file; mode `site` also takes the height, tilt and roll of its poses.
    calibration: str | None = None
    mode: Literal["generic", "site"] = "generic"
    site_height_jitter_m: float = Field(0.2, ge=0)    # std of the height drawn around a site pose
    site_angle_jitter_deg: float = Field(2.0, ge=0)   # std of each tilt/roll/pan angle around it

    @model_validator(mode="after")
    def _site_needs_calibration(self) -> CameraConfig:
        if self.mode == "site" and not self.calibration:
            raise ValueError("mode 'site' needs calibration: FILE (an OpenCV YAML with rvec/tvec)")
        return self


class PedestrianConfig(_Section):
    count: IntRange = (2, 7)
    height: Range = (1.5, 1.95)            # used when no human library is given
    pose_weights: dict[str, float] = {"walk": 0.5, "stand": 0.2, "carry": 0.12,
                                       "bend": 0.09, "crouch": 0.09}
    vest_prob: float = Field(0.6, ge=0, le=1)
    hard_hat_prob: float = Field(0.5, ge=0, le=1)
    short_sleeve_prob: float = Field(0.3, ge=0, le=1)
    # Appearance (docs/people.md). Every key at its off value ([] / {} / 0) plans the people of
    # before (plan version 1, byte for byte): fabrics []: plain-coloured clothes; skin_types []:
    # the old six-shade palette; hair_styles {}: the library mesh's own hair only.
    fabrics: list[str] = list(FABRICS)     # patterns drawn per shirt and per trousers
    print_prob: float = Field(0.4, ge=0, le=1)     # shirts with a logo / text print, chest or back
    shorts_prob: float = Field(0.1, ge=0, le=1)
    glove_prob: float = Field(0.3, ge=0, le=1)
    cap_prob: float = Field(0.35, ge=0, le=1)      # of the people without a hard hat
    glasses_prob: float = Field(0.3, ge=0, le=1)   # safety glasses
    skin_types: list[int] = list(SKIN_TYPES)       # Fitzpatrick types, drawn evenly
    hair_styles: dict[str, float] = {"short": 0.45, "shaved": 0.12, "bun": 0.13, "ponytail": 0.13,
                                     "volume": 0.17}

    @field_validator("pose_weights")
    @classmethod
    def _poses_known(cls, v):
        # "push" is given by the pallet-jack pairing, never drawn on its own
        return _check_weights(v, [p for p in POSES if p != "push"], "pose")

    @field_validator("fabrics")
    @classmethod
    def _fabrics_known(cls, v):
        return _check_known(v, list(FABRICS), "fabric")

    @field_validator("skin_types")
    @classmethod
    def _skin_types_known(cls, v):
        return _check_known(v, list(SKIN_TYPES), "Fitzpatrick skin type")

    @field_validator("hair_styles")
    @classmethod
    def _hair_styles_known(cls, v):
        return _check_weights(v, list(HAIR_STYLES), "hair style", "style") if v else v

    @property
    def appearance(self) -> bool:
        """Whether people get an Outfit (plan version 4): any appearance key away from its off value."""
        return bool(self.fabrics or self.skin_types or self.hair_styles or self.print_prob or self.shorts_prob
                    or self.glove_prob or self.cap_prob or self.glasses_prob)


class PalletJackConfig(_Section):
    count: IntRange = (1, 3)
    electric_prob: float = Field(0.35, ge=0, le=1)
    platform_prob: float = Field(0.4, ge=0, le=1)   # electric ones with a stand-on platform
    fork_length: Range = (1.0, 1.2)        # 1.15 m fits a EUR pallet lengthwise
    forks_raised_prob: float = Field(0.4, ge=0, le=1)
    handle_angle_deg: Range = (0.0, 65.0)  # tiller tilt from vertical
    loaded_prob: float = Field(0.4, ge=0, le=1)
    load_height: Range = (0.3, 1.3)        # pallet and goods on the forks
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
