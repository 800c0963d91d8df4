"""The camera of a plan (pose and field of view already decided by blender.randomize)."""

from __future__ import annotations

import bpy

from blender.geometry import add_object


def build_camera(plan: dict) -> bpy.types.Object:
    cam = plan["camera"]
    data = bpy.data.cameras.new("camera")
    data.sensor_fit = "HORIZONTAL"  # the plan's field of view is horizontal, as in the in-view check
    data.sensor_width = cam["sensor_width_mm"]
    data.lens = cam["focal_mm"]
    data.clip_start, data.clip_end = 0.05, 300.0
    ob = add_object("camera", data, location=cam["location"], rotation=cam["rotation_euler"])
    bpy.context.scene.camera = ob
    return ob
