"""SceneConfig + seeded numpy Generator -> the ScenePlan of one frame.

Everything random about a frame is decided here, in a fixed order of draws from the one
rng passed down, so plans can be tested, saved and rebuilt exactly; the Blender view
(blender/scene) draws no random number of its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from blender.plan.actors import place_distractors, place_labelled
from blender.plan.camera import place_camera
from blender.plan.draw import Rng, uniform
from blender.plan.geometry import Footprint
from blender.plan.layout import (
    plan_doors,
    plan_floor,
    plan_layout,
    plan_rack_colors,
    plan_stock,
    plan_stock_colors,
    plan_walls,
)
from blender.plan.lighting import plan_lights
from blender.plan.materials import plan_materials
from blender.plan.placement import FloorSpace, focus_point
from blender.plan.scene_config import SceneConfig
from blender.plan.scene_plan import Post, ScenePlan, View, plan_version
from blender.plan.site import AssetSpec, place_assets, site_lens
from pipeline.lens import cached_calibration

# Half the negative frames hold no labelled object at all; the other half look away from them.
NEGATIVE_EMPTY_PROB = 0.5
DOOR_APRON_M = (1.0, 1.6)    # centre and depth of the kept-clear floor inside each dock door
BLUR_ANGLE_DEG = (0.0, 180.0)


def plan_scene(cfg: SceneConfig, rng: Rng, *, negative: bool | None = False,
               humans: Sequence[dict] | None = None, aspect: float = 4 / 3,
               assets: Sequence[AssetSpec] = (), image_size: tuple[int, int] | None = None,
               lens_pixels: float = 0.0) -> ScenePlan:
    """One frame's plan.

    negative=True: nothing labelled is in view (none placed, or the camera looks away);
    None: draw that from cfg.negative_fraction. humans: entries of the mesh library index
    (load_human_index); without it, pedestrians carry mesh_id None and a sampled height and
    the builder picks a library mesh of the same pose, scaled to that height.
    aspect: image width / height, for the in-view check.
    assets: the site's own models (render config `assets:`, measured by the Blender view).
    image_size: (width, height) of the image; needed with cfg.camera.calibration when the
    file does not say the size it was made at.
    lens_pixels: the undistorted render's pixel budget (render.lens_pixels; 0: full density).
    """
    if negative is None:
        negative = bool(rng.random() < cfg.negative_fraction)
    layout = plan_layout(cfg.layout, rng)
    doors = plan_doors(layout, cfg.layout, rng)
    walls = plan_walls(cfg.materials, rng)
    rack_colors = plan_rack_colors(rng)
    stock = plan_stock(layout, cfg.layout, rng)
    stock_colors = plan_stock_colors(rng)
    floor_paint = plan_floor(layout, doors, cfg.materials, rng)
    lights = plan_lights(layout, doors, cfg.lights, rng)

    floor = FloorSpace(layout)
    for d in doors:
        floor.add(Footprint(d.x, DOOR_APRON_M[0], 0.0, d.width, DOOR_APRON_M[1]))
    focus = focus_point(layout, rng)
    pedestrians, jacks = [], []
    empty = bool(negative and rng.random() < NEGATIVE_EMPTY_PROB)
    if not empty:
        pedestrians, jacks = place_labelled(rng, cfg, floor, focus, humans)
    # a site's assets draw only when there are some: plans without them keep their draws
    user = place_assets(rng, assets, floor, focus, cfg.focus_radius, labelled=not empty) if assets else []
    distractors = place_distractors(rng, cfg.distractors, floor, focus, cfg.focus_radius)

    lens = None
    if cfg.camera.calibration:
        size = image_size or cached_size(cfg.camera.calibration)
        lens = site_lens(cfg.camera.calibration, tuple(size), lens_pixels)
    camera = place_camera(cfg.camera, rng, floor, focus, aspect, bool(negative), pedestrians, jacks, user, lens)
    if negative and camera.view.maybe:
        # could not look away from everything: drop the labelled objects (and the loads they carried)
        pedestrians, jacks = [], []
        user = [a for a in user if not a.labelled]
        camera.view = View()
    post = Post(noise_sigma=uniform(rng, cfg.post.noise_sigma),
                blur_px=uniform(rng, cfg.post.blur_px) if rng.random() < cfg.post.blur_prob else 0.0,
                blur_angle_deg=uniform(rng, BLUR_ANGLE_DEG))
    plan = ScenePlan(version=plan_version(user, camera.lens, None, pedestrians), negative=bool(negative), layout=layout, doors=doors,
                     walls=walls, rack_colors=rack_colors, stock=stock, stock_colors=stock_colors, floor=floor_paint,
                     lights=lights, focus=list(focus), pedestrians=pedestrians, pallet_jacks=jacks,
                     distractors=distractors, camera=camera, post=post, assets=user)
    if cfg.materials.enabled:
        # a child stream: materials on or off leave every draw above (and a clip's after) as they were
        plan.materials = plan_materials(cfg.materials, rng.spawn(1)[0], plan)
        plan.version = plan_version(user, camera.lens, plan.materials, pedestrians)
    return plan


def cached_size(path: str) -> tuple[int, int]:
    size = cached_calibration(path).image_size
    if size is None:
        raise ValueError(f"{path}: image_width/image_height: not in the file; pass the image size")
    return size
