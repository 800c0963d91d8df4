"""The Blender view of a ScenePlan (blender.plan): a plan in, a built scene and its labelled instances out.

    instances = build_scene(plan, humans_dir)   # objects in bpy.context.scene, camera set
    ...render...
    clear_scene()                                # back to the empty baseline

Every mesh part of a labelled instance gets obj.pass_index = instance_id (1..N:
pedestrians in plan order, then pallet jacks, then the site's labelled assets); everything
else keeps 0. Render settings,
resolution and the compositor belong to blender.cycles and are not touched here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import bpy

from blender.assets.distractors import build_distractor
from blender.assets.loads import LoadMeshes
from blender.assets.pallet_jack import build_pallet_jack
from blender.assets.pedestrian import build_pedestrian, human_meshes
from blender.assets.user import build_user_asset, load_asset
from blender.materials import Materials
from blender.meshes import COLLECTION
from blender.plan.scene_plan import ScenePlan
from blender.scene.camera import build_camera
from blender.scene.lights import WORLD, build_lights
from blender.scene.racks import build_racks
from blender.scene.shell import build_floor, build_walls
from pipeline.common import CATEGORIES

CATEGORY_ID = {c["name"]: c["id"] for c in CATEGORIES}


@dataclass
class Instance:
    instance_id: int                 # == pass_index of every part, 1..N
    category_id: int                 # COCO id (pipeline.common.CATEGORIES)
    objects: list                    # bpy objects, all parts of it
    source: str = ""                 # where it is in the plan, e.g. "pedestrians[2]"
    props: list = field(default_factory=list)  # unlabelled objects it carries (load, carton)


def build_scene(plan: ScenePlan, humans_dir: Path | str | None) -> list[Instance]:
    """Build a plan into bpy.context.scene; returns the labelled instances."""
    humans = None
    if plan.pedestrians:
        if humans_dir is None:
            raise ValueError("plan has pedestrians but no human mesh library was given")
        # OBJ import is an operator that re-evaluates the whole view layer: do it while the
        # scene is still empty (~30 ms per mesh instead of ~250 ms in a built warehouse);
        # meshes imported for earlier frames are kept for the job
        humans = human_meshes(humans_dir)
        humans.preload(plan.pedestrians)
    for a in plan.assets:  # imports too, while the scene is empty (cached after the first frame)
        load_asset(a.path)
    mats = Materials()
    loads = LoadMeshes(plan, mats)
    build_floor(plan, mats)
    build_walls(plan, mats)
    build_racks(plan, mats, loads)
    build_lights(plan, mats)
    build_camera(plan)
    instances: list[Instance] = []
    if humans is not None:
        for i, p in enumerate(plan.pedestrians):
            iid = len(instances) + 1
            parts, props = build_pedestrian(p, i, iid, mats, humans)
            instances.append(Instance(iid, CATEGORY_ID["pedestrian"], parts, f"pedestrians[{i}]", props))
    for i, j in enumerate(plan.pallet_jacks):
        iid = len(instances) + 1
        parts, props = build_pallet_jack(j, i, iid, mats, loads)
        instances.append(Instance(iid, CATEGORY_ID["pallet_jack"], parts, f"pallet_jacks[{i}]", props))
    for i, a in enumerate(plan.assets):
        iid = len(instances) + 1 if a.labelled else 0
        parts = build_user_asset(a, i, iid)
        if a.labelled:
            instances.append(Instance(iid, CATEGORY_ID[a.category], parts, f"assets[{i}]"))
    for i, d in enumerate(plan.distractors):
        build_distractor(d, i, mats, loads)
    # evaluate now so matrix_world of the camera and of every part is valid for callers
    # (projection, annotation) — the render would evaluate the same depsgraph anyway
    bpy.context.view_layer.update()
    return instances


def clear_scene() -> None:
    """Remove everything build_scene made, then every orphan it left (meshes, materials,
    lights, cameras, images, node groups), so memory stays flat over many frames."""
    coll = bpy.data.collections.get(COLLECTION)
    if coll is not None:
        bpy.data.batch_remove(list(coll.objects))
        bpy.data.collections.remove(coll)
    scene = bpy.context.scene
    scene.camera = None
    world = bpy.data.worlds.get(WORLD)
    if world is not None:
        if scene.world == world:
            scene.world = None
        bpy.data.worlds.remove(world)
    for _ in range(3):  # objects -> meshes/lights -> materials -> node groups/images
        orphans = [idb for data in (bpy.data.meshes, bpy.data.materials, bpy.data.lights,
                                    bpy.data.cameras, bpy.data.images, bpy.data.node_groups,
                                    bpy.data.textures)
                   for idb in data if idb.users == 0]
        if not orphans:
            break
        bpy.data.batch_remove(orphans)
