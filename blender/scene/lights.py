"""Ceiling fixtures (area lights + visible housings), daylight through the dock doors, world."""

from __future__ import annotations

import math

import bpy
import numpy as np

from blender.materials import Materials, srgb_to_linear
from blender.materials.pbr import load_image
from blender.meshes import MeshBuilder, add_object
from blender.plan.geometry import look_at_matrix, matrix_to_euler_xyz
from blender.plan.scene_plan import ScenePlan

WORLD = "warehouse_world"


def build_lights(plan: ScenePlan, mats: Materials) -> list:
    li = plan.lights
    color = li.color
    housing = mats.plain("fixture_housing", (0.7, 0.7, 0.72), roughness=0.4, metallic=0.5)
    lit = mats.emission("fixture_lit", color, 12.0)
    dark = mats.plain("fixture_off", (0.85, 0.85, 0.85), roughness=0.3)
    linear = li.kind == "linear"
    meshes = {}
    for on in (True, False):
        mb = MeshBuilder()
        if linear:
            mb.box((0, 0, 0.05), (1.3, 0.22, 0.08), 0).box((0, 0, 0.0), (1.2, 0.16, 0.02), 1)
        else:
            mb.cylinder((0, 0, 0.12), 0.28, 0.25, 0, radius_top=0.12, segments=16)
            mb.cylinder((0, 0, -0.01), 0.26, 0.02, 1, segments=16)
        meshes[on] = mb.build(f"fixture_{'on' if on else 'off'}", [housing, lit if on else dark])
    # suspension cable: one unit-height mesh, stretched per fixture up to the roof
    cable = MeshBuilder().box((0, 0, 0.5), (0.012, 0.012, 1.0)).build("fixture_cable", [housing])
    objs = []
    for k, f in enumerate(li.fixtures):
        objs.append(add_object(f"fixture_{k}", meshes[f.on], location=(f.x, f.y, f.z),
                               yaw=math.pi / 2 if linear else 0.0))
        top = f.z + 0.09
        objs.append(add_object(f"fixture_cable_{k}", cable, location=(f.x, f.y, top),
                               scale=(1.0, 1.0, max(0.01, plan.layout.height - top))))
        if not f.on:
            continue
        lamp = bpy.data.lights.new(f"fixture_light_{k}", "AREA")
        lamp.energy = f.power
        lamp.color = color
        if linear:
            lamp.shape, lamp.size, lamp.size_y = "RECTANGLE", 1.2, 0.16
        else:
            lamp.shape, lamp.size = "DISK", 0.5
        objs.append(add_object(f"fixture_light_{k}", lamp, location=(f.x, f.y, f.z - 0.03),
                               yaw=math.pi / 2 if linear else 0.0))
    day = li.daylight
    if day is not None:
        el, az = math.radians(day.elevation_deg), math.radians(day.azimuth_deg)
        to_sun = np.array([math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), math.sin(el)])
        sun = bpy.data.lights.new("sun", "SUN")
        sun.energy = day.strength
        sun.angle = math.radians(1.0)
        sun.color = (1.0, 0.96, 0.9)
        R = look_at_matrix(to_sun, np.zeros(3))
        objs.append(add_object("sun", sun, location=tuple(to_sun * 10), rotation=matrix_to_euler_xyz(R)))
    _world(plan)
    return objs


def _world(plan: ScenePlan) -> None:
    li = plan.lights
    world = bpy.data.worlds.get(WORLD) or bpy.data.worlds.new(WORLD)
    nt = world.node_tree
    if nt is None:  # older Blender: worlds start without nodes
        world.use_nodes = True
        nt = world.node_tree
    bg = nt.nodes.get("Background")
    day = li.daylight
    sky = (0.55, 0.68, 0.85) if day else (0.35, 0.38, 0.42)
    bg.inputs["Color"].default_value = srgb_to_linear(sky)
    bg.inputs["Strength"].default_value = day.sky_strength if day else li.world_strength
    hdri = plan.materials.hdri if plan.materials else None
    if hdri is not None:  # the environment map lights the hall through the doors instead of a flat sky
        env = nt.nodes.new("ShaderNodeTexEnvironment")
        env.image = load_image(hdri.path, color=False)
        env.image.colorspace_settings.name = "Linear Rec.709"
        turn = nt.nodes.new("ShaderNodeMapping")
        turn.inputs["Rotation"].default_value = (0.0, 0.0, math.radians(hdri.rotation_deg))
        coord = nt.nodes.new("ShaderNodeTexCoord")
        nt.links.new(coord.outputs["Generated"], turn.inputs["Vector"])
        nt.links.new(turn.outputs["Vector"], env.inputs["Vector"])
        nt.links.new(env.outputs["Color"], bg.inputs["Color"])
        bg.inputs["Strength"].default_value = hdri.strength
    bpy.context.scene.world = world
