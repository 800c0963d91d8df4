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
from blender.plan.placement import FloorSpace, focus_point
from blender.plan.scene_config import SceneConfig
from blender.plan.scene_plan import PLAN_VERSION, Post, ScenePlan, View

# Half the negative frames hold no labelled object at all; the other half look away from them.
NEGATIVE_EMPTY_PROB = 0.5
DOOR_APRON_M = (1.0, 1.6)    # centre and depth of the kept-clear floor inside each dock door
BLUR_ANGLE_DEG = (0.0, 180.0)


def plan_scene(cfg: SceneConfig, rng: Rng, *, negative: bool | None = False,
               humans: Sequence[dict] | None = None, aspect: float = 4 / 3) -> ScenePlan:
    """One frame's plan.

    negative=True: nothing labelled is in view (none placed, or the camera looks away);
    None: draw that from cfg.negative_fraction. humans: entries of the mesh library index
    (load_human_index); without it, pedestrians carry mesh_id None and a sampled height and
    the builder picks a library mesh of the same pose, scaled to that height.
    aspect: image width / height, for the in-view check.
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
    if not (negative and rng.random() < NEGATIVE_EMPTY_PROB):
        pedestrians, jacks = place_labelled(rng, cfg, floor, focus, humans)
    distractors = place_distractors(rng, cfg.distractors, floor, focus, cfg.focus_radius)

    camera = place_camera(cfg.camera, rng, floor, focus, aspect, bool(negative), pedestrians, jacks)
    if negative and camera.view.maybe:
        # could not look away from everything: drop the labelled objects (and the loads they carried)
        pedestrians, jacks = [], []
        camera.view = View()
    post = Post(noise_sigma=uniform(rng, cfg.post.noise_sigma),
                blur_px=uniform(rng, cfg.post.blur_px) if rng.random() < cfg.post.blur_prob else 0.0,
                blur_angle_deg=uniform(rng, BLUR_ANGLE_DEG))
    return ScenePlan(version=PLAN_VERSION, negative=bool(negative), layout=layout, doors=doors, walls=walls,
                     rack_colors=rack_colors, stock=stock, stock_colors=stock_colors, floor=floor_paint,
                     lights=lights, focus=list(focus), pedestrians=pedestrians, pallet_jacks=jacks,
                     distractors=distractors, camera=camera, post=post)
