"""A user's PBR set (colour, roughness, normal maps) on any mesh: images tiled by the metric
"UVMap" layer of blender/meshes.py (`Surface.scale` metres per tile, shifted by the seed),
and environment maps for the world. Images keep a fake user, so each file is read once per
job instead of once per frame (clear_scene drops only what nothing uses)."""

from __future__ import annotations

import bpy

from blender.materials.nodes import Tree
from blender.plan.scene_plan import Surface
from pipeline.common import UserError


def load_image(path: str, color: bool) -> bpy.types.Image:
    """An image file in Blender, read once; unreadable is a UserError naming the file."""
    try:
        img = bpy.data.images.load(path, check_existing=True)
    except RuntimeError:
        raise UserError(f"{path}: Blender cannot read this image") from None
    if not img.has_data and tuple(img.size) == (0, 0):
        img.reload()
    if tuple(img.size) == (0, 0):
        bpy.data.images.remove(img)
        raise UserError(f"{path}: Blender cannot read this image (no pixels)")
    img.colorspace_settings.name = "sRGB" if color else "Non-Color"
    img.use_fake_user = True
    return img


def build(t: Tree, s: Surface) -> None:
    tex = s.texture
    shift = (s.seed * 0.618) % 1.0, (s.seed * 0.382) % 1.0, 0.0
    vec = t.vmath("ADD", t.vmath("SCALE", t.uv("UVMap"), 1.0 / s.scale), shift)

    def image(path: str, color: bool):
        return t.node("ShaderNodeTexImage", {"Vector": vec}, image=load_image(path, color),
                      interpolation="Linear")

    t.out(base_color=image(tex.color, True).outputs["Color"])
    if tex.roughness:
        t.out(roughness=image(tex.roughness, False).outputs["Color"])
    else:
        t.out(roughness=s.roughness)
    if tex.normal:
        nm = t.node("ShaderNodeNormalMap", {"Color": image(tex.normal, False).outputs["Color"], "Strength": 1.0},
                    space="TANGENT", uv_map="UVMap")
        t.out(normal=nm.outputs["Normal"])
