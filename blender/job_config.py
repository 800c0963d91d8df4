"""Job config schemas of blender.render and blender.clip: dataset or clip, Cycles quality
presets, annotation thresholds, and the scene (blender.plan.scene_config).

Loaded with `pipeline.common.load_config`; the resolved config (presets expanded into
concrete values) is what manifest.json stores and what the config hash is computed from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from blender.plan.scene_config import APPEARANCE_OFF, SceneConfig
from pipeline.common import StrictModel
from pipeline.lens import cached_calibration

# Concrete Cycles settings per preset; a key set explicitly in the config wins over the preset.
# Both presets keep the object-index pass exact; they differ only in light transport and noise.
PRESETS: dict[str, dict] = {
    # Measured on 2 shared vCPUs (bench/render.py): a warehouse frame costs ~0.6-1 s of wall
    # time per sample at 640x480 whatever the bounce count (primary hits dominate), while
    # OIDN with albedo+normal guides turns 2-6 samples into clean images. So presets trade
    # samples, not bounces; adaptive sampling is off because it cannot help below ~16 spp.
    # With today's materials and people 3 spp took 4.8 s/frame; PSNR to a 32-spp render of 4
    # default frames, measured in one run: 3 spp 32.0 dB (render 4.1 s), 2 spp 30.8 dB (3.0 s),
    # 3 spp + FAST denoise 31.5 dB (3.9 s). 2 spp keeps the preset within 4 s/frame;
    # `render.samples=3` (or 16 for hero frames) buys the rest.
    "quality": {
        "samples": 2,
        "adaptive_threshold": 0.0,
        "denoise": True,
        "denoise_quality": "BALANCED",
        "denoise_passes": "RGB_ALBEDO_NORMAL",
        "max_bounces": 4,
        "diffuse_bounces": 2,
        "glossy_bounces": 2,
        "transparent_bounces": 4,
        "clamp_indirect": 5.0,
        "ao_bounces": 0,
    },
    "fast": {
        # OIDN takes ~0.3 s of a ~2 s Cycles frame at 1 spp. Its FAST model, measured against BALANCED on 5 demo
        # frames in one run: 0.29 s/frame less, PSNR to a 32-spp render 27.4 against 27.8 dB
        # (2 spp + FAST: 29.2 dB for 0.73 s more); no visible difference at 640x480
        "samples": 1,
        "adaptive_threshold": 0.0,
        "denoise": True,
        "denoise_quality": "FAST",
        "denoise_passes": "RGB_ALBEDO_NORMAL",
        "max_bounces": 2,
        "diffuse_bounces": 1,
        "glossy_bounces": 1,
        "transparent_bounces": 2,
        "clamp_indirect": 3.0,
        # Cycles' Fast GI: light after the first bounce comes from ambient occlusion tinted by
        # the world instead of more paths. Measured on 10 demo frames in one run, the same
        # scenes alternated: Cycles 1.90 against 2.56 s/frame (0.74x); PSNR to a 32-spp
        # 4-bounce render 25.0 against 26.3 dB on 5 frames, the floor's ambient light a little
        # brighter, as in the reference (README "Presets")
        "ao_bounces": 1,
    },
}


class DatasetConfig(StrictModel):
    name: str = "warehouse_synth"
    num_images: int = Field(1000, ge=1)
    seed: int = Field(0, ge=0)
    # the share of negative frames is scene.negative_fraction (the scene planner draws it)


class RenderConfig(StrictModel):
    preset: Literal["quality", "fast"] = "quality"
    resolution: tuple[int, int] = (640, 480)
    samples: int | None = Field(None, ge=1, le=4096)
    adaptive_threshold: float | None = Field(None, ge=0.0, le=1.0)  # 0 turns adaptive sampling off
    denoise: bool | None = None
    denoise_quality: Literal["FAST", "BALANCED", "HIGH"] | None = None
    # guides for OIDN: albedo and normal keep texture and edges crisp at a few samples per pixel
    denoise_passes: Literal["RGB", "RGB_ALBEDO", "RGB_ALBEDO_NORMAL"] | None = None
    max_bounces: int | None = Field(None, ge=0, le=64)
    diffuse_bounces: int | None = Field(None, ge=0, le=64)
    glossy_bounces: int | None = Field(None, ge=0, le=64)
    transparent_bounces: int | None = Field(None, ge=0, le=64)
    clamp_indirect: float | None = Field(None, ge=0.0)  # 0 = no clamp
    # from this bounce on, indirect light is ambient occlusion tinted by the world (Cycles' Fast
    # GI, AO distance 10 m); 0 traces every bounce
    ao_bounces: int | None = Field(None, ge=0, le=64)
    # A calibrated lens (scene.camera.calibration) renders its undistorted view, then warps it.
    # At full density (0) the image's centre is 1:1 and a barrel lens needs more pixels than the
    # image (k1 = -0.25: 1.54x, and 1.54x the Cycles time); the default renders as many pixels
    # as the image has, the same view at a lower density (README "Your site": 0.65x the pixels,
    # 0.75x the quality preset's time and 0.8-0.9x the fast one's; -1.5 and -0.5 dB against a
    # 32-spp full-density render). Training resizes images by more than that.
    lens_pixels: float = Field(1.0, ge=0.0, le=16.0)
    view_transform: Literal["AgX", "Standard", "Filmic", "Khronos PBR Neutral"] = "AgX"
    threads: int = Field(0, ge=0, le=1024)  # 0 = all cores
    postprocess: bool = True  # sensor noise + motion blur from the scene plan
    # auto: the best GPU backend Cycles reports, else the CPU (blender/render_device.py). Masks
    # are the same on every device; pixels differ by sampling noise, so it is not in the hash.
    device: Literal["auto", "cpu", "cuda", "optix", "hip", "metal"] = "auto"

    @field_validator("lens_pixels")
    @classmethod
    def _lens_pixels(cls, v: float) -> float:
        if 0 < v < 0.25:
            raise ValueError(f"lens_pixels must be 0 (full density) or >= 0.25, got {v}")
        return v

    @model_validator(mode="after")
    def _fill_from_preset(self) -> RenderConfig:
        w, h = self.resolution
        if not (16 <= w <= 8192 and 16 <= h <= 8192):
            raise ValueError(f"resolution must be two integers in [16, 8192], got {list(self.resolution)}")
        for key, value in PRESETS[self.preset].items():
            if getattr(self, key) is None:
                # bypass validate_assignment recursion: the preset values are known-good
                object.__setattr__(self, key, value)
        if self.diffuse_bounces > self.max_bounces or self.glossy_bounces > self.max_bounces:
            raise ValueError(f"diffuse_bounces ({self.diffuse_bounces}) and glossy_bounces "
                             f"({self.glossy_bounces}) must be <= max_bounces ({self.max_bounces})")
        return self


class AnnotationConfig(StrictModel):
    min_visibility: float = Field(0.15, ge=0.0, le=1.0)  # below: iscrowd 1 (ignored by COCOeval)
    min_area: int = Field(64, ge=0)  # visible pixels; below: iscrowd 1
    silhouette_margin: float = Field(0.5, ge=0.0, le=4.0)  # canvas beyond each border, x image size


ASSET_SUFFIXES = (".blend", ".glb", ".gltf", ".obj", ".fbx")


class AssetConfig(StrictModel):
    """A site's own model. Paths are relative to the working directory (like humans_dir); the
    view measures its bounding box once per job, so no footprint is given here."""

    path: str
    category: str = "distractor"   # pallet_jack: labelled; anything else (rack, vehicle, ...): unlabelled
    scale: float = Field(1.0, gt=0)
    count: tuple[int, int] = (1, 1)  # copies per frame, drawn in [low, high]
    # focus: among the labelled objects; scatter: a wider ring like the props; wall: along the
    # staging-area side walls, turned to face the hall
    placement: Literal["focus", "scatter", "wall"] = "focus"

    @field_validator("path")
    @classmethod
    def _readable(cls, v: str) -> str:
        p = Path(v)
        if p.suffix.lower() not in ASSET_SUFFIXES:
            raise ValueError(f"{v}: expected a {', '.join(ASSET_SUFFIXES)} file")
        if not p.is_file():
            raise ValueError(f"{v}: file not found")
        return v

    @field_validator("category")
    @classmethod
    def _not_people(cls, v: str) -> str:
        # an unlabelled person would teach the detector that people are background
        if v == "pedestrian":
            raise ValueError("pedestrian assets are not supported (people come from humans_dir); "
                             "use pallet_jack or an unlabelled category")
        return v

    @field_validator("count")
    @classmethod
    def _count(cls, v):
        if not 0 <= v[0] <= v[1]:
            raise ValueError(f"[{v[0]}, {v[1]}]: expected 0 <= low <= high")
        return v


class SceneJobConfig(StrictModel):
    """What every Blender job shares: the engine, annotation rules, the scene and its people."""

    render: RenderConfig = RenderConfig()
    annotation: AnnotationConfig = AnnotationConfig()
    scene: SceneConfig = SceneConfig()
    humans_dir: str = "assets_cache/humans"
    assets: list[AssetConfig] = []

    @model_validator(mode="after")
    def _calibration_readable(self) -> SceneJobConfig:
        # parsed here so a bad file stops the job before any output; the image size it was
        # made at becomes the render resolution unless that was set (then they must agree)
        cam = self.scene.camera
        if cam.calibration is None:
            return self
        cal = cached_calibration(cam.calibration)
        if cam.mode == "site" and not len(cal.rvecs):
            raise ValueError(f"{cam.calibration}: rvec/tvec: camera.mode site needs at least one pose")
        if cal.image_size is not None and tuple(self.render.resolution) != cal.image_size:
            if "resolution" in self.render.model_fields_set:
                raise ValueError(f"{cam.calibration}: image_width/image_height {list(cal.image_size)} differ from "
                                 f"render.resolution {list(self.render.resolution)}")
            object.__setattr__(self.render, "resolution", cal.image_size)
        return self

    @model_validator(mode="after")
    def _camera_knows_the_image_height(self) -> SceneJobConfig:
        # the planner's "is it big enough to count as seen" test works in pixels of this height
        cam = self.scene.camera
        if "image_height_px" not in cam.model_fields_set:
            object.__setattr__(cam, "image_height_px", self.render.resolution[1])
        return self


class RenderJobConfig(SceneJobConfig):
    dataset: DatasetConfig = DatasetConfig()


class ClipSettings(StrictModel):
    name: str = "clip"
    seed: int = Field(0, ge=0)
    num_frames: int = Field(60, ge=2, le=100000)
    fps: float = Field(10.0, gt=0, le=120)
    camera: Literal["cctv", "robot"] = "cctv"
    walk_speed: tuple[float, float] = (1.0, 1.5)   # m/s of walking pedestrians
    push_speed: tuple[float, float] = (0.6, 1.0)   # m/s of pushed pallet jacks and their pushers
    stride_m: float = Field(1.4, gt=0)             # distance of one full walk cycle (two steps)
    robot_speed: float = Field(0.5, ge=0)          # m/s, camera=robot only
    min_labelled: int = Field(2, ge=0)             # plans with fewer labelled objects are skipped
    plan_tries: int = Field(12, ge=1, le=1000)     # candidate plans; the one whose camera sees most wins
    # scripted actors and camera that exercise safety rules (blender.plan.scenario); null: random movers
    scenario: Literal["near_miss", "zone_entry", "line_cross"] | None = None
    # walkers walk from goal to goal along the shortest way over the free floor (blender.plan.routes);
    # false: each keeps its heading and turns back at racks and walls
    routes: bool = True

    @model_validator(mode="after")
    def _ranges(self) -> ClipSettings:
        for name in ("walk_speed", "push_speed"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} [{lo}, {hi}]: expected 0 <= low <= high")
        return self


class ClipJobConfig(SceneJobConfig):
    clip: ClipSettings = ClipSettings()


# Keys that may change between runs into the same folder without changing any annotation:
# the dataset can grow (num_images), machines differ in core count (threads) and in GPUs
# (device: the same masks, pixels differing only by sampling noise).
_HASH_EXCLUDED = (("dataset", "num_images"), ("render", "threads"), ("render", "device"))


# Scene keys added after datasets were first rendered: left out of the hash while at their
# default (the value drawn before they existed), so such a folder still resumes.
_ADDED_SCENE_KEYS = (("layout", "dock_door_width"), ("layout", "dock_door_height"),
                     ("pallet_jacks", "platform_prob"), ("pallet_jacks", "fork_length"),
                     ("pallet_jacks", "load_height"), ("camera", "calibration"), ("camera", "mode"),
                     ("camera", "site_height_jitter_m"), ("camera", "site_angle_jitter_deg"))


# Keys of procedural materials (docs/materials.md). They change the images, so they count in
# the hash, except when none of them is in use (families: [] and no texture or HDRI folder):
# then the images are those of before they existed, and older folders resume.
_MATERIAL_KEYS = ("families", "wear", "dirt", "load_looks", "texture_dir", "texture_prob",
                  "hdri_dir", "hdri_prob", "hdri_strength")


# Keys of people's appearance (docs/people.md), likewise: left out while all are at their off
# values (APPEARANCE_OFF: fabrics/skin_types [], hair_styles {}, the probabilities 0).
_PEOPLE_OFF = APPEARANCE_OFF


def config_hash(resolved: dict) -> str:
    """Stable hash of everything that determines image i's content."""
    data = json.loads(json.dumps(resolved))
    for section, key in _HASH_EXCLUDED:
        data.get(section, {}).pop(key, None)
    if not data.get("scene", {}).get("camera", {}).get("calibration"):
        data.get("render", {}).pop("lens_pixels", None)  # added later; only a calibrated lens uses it
    if data.get("assets") == []:  # added later: a job without site assets hashes as before
        del data["assets"]
    materials = data.get("scene", {}).get("materials", {})
    if materials.get("families") == [] and not materials.get("texture_dir") and not materials.get("hdri_dir"):
        for key in _MATERIAL_KEYS:
            materials.pop(key, None)
    people = data.get("scene", {}).get("pedestrians", {})
    if all(people.get(k, off) == off for k, off in _PEOPLE_OFF.items()):
        for key in _PEOPLE_OFF:
            people.pop(key, None)
    defaults = SceneConfig().model_dump(mode="json")
    for section, key in _ADDED_SCENE_KEYS:
        values = data.get("scene", {}).get(section, {})
        if key in values and values[key] == defaults[section][key]:
            del values[key]
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
