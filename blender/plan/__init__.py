"""The scene planner (numpy + pydantic, no bpy): SceneConfig + seeded rng -> ScenePlan.

    plan = plan_scene(SceneConfig(), np.random.default_rng(seed))

scene_config   the config schema: every randomization range
scene_plan     the typed, versioned plan the Blender view (blender/scene) builds
planner        plan_scene: the order in which the parts below are drawn
layout, lighting, placement, actors, camera   the parts of a frame
motion         a plan over time, for clips
geometry       footprints, pallet-jack dimensions, camera math (shared with the view)
"""

from blender.plan.planner import plan_scene
from blender.plan.scene_config import SceneConfig
from blender.plan.scene_plan import PLAN_VERSION, ScenePlan
from pipeline.humans import (
    load_human_index,  # the one reader of the library index (torch-free at import)
)

__all__ = ["PLAN_VERSION", "SceneConfig", "ScenePlan", "load_human_index", "plan_scene"]
