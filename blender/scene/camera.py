"""The camera of a plan (pose and field of view already decided by blender.plan.camera)."""

from __future__ import annotations

import bpy

from blender.meshes import add_object
from blender.plan.scene_plan import ScenePlan


def build_camera(plan: ScenePlan) -> bpy.types.Object:
    cam = plan.camera
    data = bpy.data.cameras.new("camera")
    data.sensor_fit = "HORIZONTAL"  # the plan's field of view is horizontal, as in the in-view check
    data.sensor_width = cam.sensor_width_mm
    data.lens = cam.focal_mm
    data.clip_start, data.clip_end = 0.05, 300.0
    ob = add_object("camera", data, location=cam.location, rotation=cam.rotation_euler)
    bpy.context.scene.camera = ob
    return ob
