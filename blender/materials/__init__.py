"""Materials of one frame, shared by every object that uses the same look.

`surface()` builds the procedural material a plan's `Surface` describes (one module per
family group: concrete, steel, wood, packaging, polymers; pbr for a user's image sets);
`plain()`, `textured()` and `emission()` are the simple Principled BSDFs of plans without
materials (version 1 and 2) and of the parts no family covers (lamps, chrome, floor paint).
Plan colours are sRGB; Blender's base colour is linear, so they are converted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import bpy

from blender.materials import concrete, fabric, packaging, pbr, polymers, steel, wood
from blender.materials.nodes import GROUP_PREFIX, Num, Tree, job_group, srgb_to_linear  # noqa: F401 (GROUP_PREFIX re-exported)
from blender.plan.scene_plan import Surface

__all__ = ["Materials", "slot", "srgb_to_linear"]

FAMILY_BUILDERS = {"concrete": concrete.build, "painted_steel": steel.build, "wood": wood.build,
                   "cardboard": packaging.cardboard, "shrink_wrap": packaging.shrink_wrap,
                   "rubber": polymers.rubber, "plastic": polymers.plastic,
                   **fabric.BUILDERS}   # people's clothes: fabric_woven, fabric_knit, ... (docs/people.md)


COLOR_INPUTS = ("color", "color2")
FLOAT_INPUTS = ("roughness", "wear", "dirt", "marks", "scale", "seed")


def family_group(family: str) -> bpy.types.ShaderNodeTree:
    """The node group of a family, built on first use and kept for the job (fake user): a
    frame's materials are then one group node each, not a hundred nodes made in Python."""
    group, new = job_group(family)
    if not new:
        return group
    group.interface.new_socket("BSDF", in_out="OUTPUT", socket_type="NodeSocketShader")
    for key in COLOR_INPUTS:
        group.interface.new_socket(key, in_out="INPUT", socket_type="NodeSocketColor")
    for key in FLOAT_INPUTS:
        group.interface.new_socket(key, in_out="INPUT", socket_type="NodeSocketFloat")
    inputs = group.nodes.new("NodeGroupInput")
    bsdf = group.nodes.new("ShaderNodeBsdfPrincipled")
    group.links.new(bsdf.outputs["BSDF"], group.nodes.new("NodeGroupOutput").inputs["BSDF"])
    t = Tree(group, bsdf)
    params = SimpleNamespace(**{k: inputs.outputs[k] for k in COLOR_INPUTS},
                             **{k: Num(t, inputs.outputs[k]) for k in FLOAT_INPUTS})
    FAMILY_BUILDERS[family](t, params)
    return group


def family_node(nt: bpy.types.ShaderNodeTree, s: Surface) -> bpy.types.ShaderNodeGroup:
    """A fresh material's node tree `nt` made one group node of `s`'s family with `s`'s values
    (its Principled BSDF removed); the caller links the node's BSDF output."""
    nt.nodes.remove(nt.nodes["Principled BSDF"])
    node = nt.nodes.new("ShaderNodeGroup")
    node.node_tree = family_group(s.family)
    for key in COLOR_INPUTS:
        node.inputs[key].default_value = srgb_to_linear(getattr(s, key))
    for key in FLOAT_INPUTS:
        node.inputs[key].default_value = getattr(s, key)
    return node


def slot(surfaces: Sequence[Surface | None], i: int) -> Surface | None:
    """Surface i of an object's list, None where the plan has none (older plans, families off)."""
    return surfaces[i] if i < len(surfaces) else None


class Materials:
    """Per-frame cache: the same (name, colour, params) key returns the same material."""

    def __init__(self):
        self._cache: dict[tuple, bpy.types.Material] = {}

    def surface(self, name: str, s: Surface | None) -> bpy.types.Material | None:
        """The material of plan surface `s` (a user PBR set if it names one), None for None,
        so callers write `mats.surface(name, s) or mats.plain(...)`."""
        if s is None:
            return None
        key = ("surface", name, repr(s))
        if key in self._cache:
            return self._cache[key]
        mat = bpy.data.materials.new(name)
        nt = mat.node_tree
        if s.texture is not None:  # images differ per set: a graph of its own
            pbr.build(Tree(nt, nt.nodes["Principled BSDF"]), s)
        else:
            node = family_node(nt, s)
            nt.links.new(node.outputs["BSDF"], nt.nodes["Material Output"].inputs["Surface"])
        mat.diffuse_color = srgb_to_linear(s.color)
        self._cache[key] = mat
        return mat

    def plain(self, name: str, rgb: Sequence[float], roughness: float = 0.6, metallic: float = 0.0,
              coat: float = 0.0, emission: float = 0.0, specular: float = 0.5) -> bpy.types.Material:
        key = ("plain", name, tuple(round(c, 4) for c in rgb), roughness, metallic, coat, emission, specular)
        if key in self._cache:
            return self._cache[key]
        mat = bpy.data.materials.new(name)
        bsdf = mat.node_tree.nodes["Principled BSDF"]
        color = srgb_to_linear(rgb)
        bsdf.inputs["Base Color"].default_value = color
        bsdf.inputs["Roughness"].default_value = roughness
        bsdf.inputs["Metallic"].default_value = metallic
        bsdf.inputs["Specular IOR Level"].default_value = specular
        if coat:
            bsdf.inputs["Coat Weight"].default_value = coat
        if emission:
            bsdf.inputs["Emission Color"].default_value = color
            bsdf.inputs["Emission Strength"].default_value = emission
        mat.diffuse_color = color  # solid-view colour, handy when debugging
        self._cache[key] = mat
        return mat

    def textured(self, name: str, rgb: Sequence[float], rgb2: Sequence[float], scale: float,
                 roughness: float = 0.7, detail: float = 4.0, stains: float = 0.0,
                 stain_scale: float = 0.08) -> bpy.types.Material:
        """Two colours mixed by noise (object-space metres) and optional dark blotches."""
        key = ("tex", name, tuple(rgb), tuple(rgb2), scale, roughness, stains)
        if key in self._cache:
            return self._cache[key]
        mat = bpy.data.materials.new(name)
        nt = mat.node_tree
        bsdf = nt.nodes["Principled BSDF"]
        coord = nt.nodes.new("ShaderNodeTexCoord")
        noise = nt.nodes.new("ShaderNodeTexNoise")
        noise.inputs["Scale"].default_value = scale
        noise.inputs["Detail"].default_value = detail
        nt.links.new(coord.outputs["Object"], noise.inputs["Vector"])
        mix = nt.nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.inputs["A"].default_value = srgb_to_linear(rgb)
        mix.inputs["B"].default_value = srgb_to_linear(rgb2)
        nt.links.new(noise.outputs["Fac"], mix.inputs["Factor"])
        color_out = mix.outputs["Result"]
        if stains > 0:
            blot = nt.nodes.new("ShaderNodeTexNoise")
            blot.inputs["Scale"].default_value = stain_scale
            blot.inputs["Detail"].default_value = 6.0
            nt.links.new(coord.outputs["Object"], blot.inputs["Vector"])
            ramp = nt.nodes.new("ShaderNodeMapRange")
            ramp.inputs["From Min"].default_value = 0.5
            ramp.inputs["From Max"].default_value = 0.68
            ramp.inputs["To Min"].default_value = 0.0
            ramp.inputs["To Max"].default_value = stains
            nt.links.new(blot.outputs["Fac"], ramp.inputs["Value"])
            dark = nt.nodes.new("ShaderNodeMix")
            dark.data_type = "RGBA"
            dark.blend_type = "MULTIPLY"
            dark.inputs["B"].default_value = (0.25, 0.23, 0.2, 1.0)
            nt.links.new(ramp.outputs["Result"], dark.inputs["Factor"])
            nt.links.new(color_out, dark.inputs["A"])
            color_out = dark.outputs["Result"]
            # stains are oil: a little glossier
            rough = nt.nodes.new("ShaderNodeMapRange")
            rough.inputs["To Min"].default_value = roughness
            rough.inputs["To Max"].default_value = roughness * 0.6
            nt.links.new(ramp.outputs["Result"], rough.inputs["Value"])
            nt.links.new(rough.outputs["Result"], bsdf.inputs["Roughness"])
        else:
            bsdf.inputs["Roughness"].default_value = roughness
        nt.links.new(color_out, bsdf.inputs["Base Color"])
        mat.diffuse_color = srgb_to_linear(rgb)
        self._cache[key] = mat
        return mat

    def emission(self, name: str, rgb: Sequence[float], strength: float) -> bpy.types.Material:
        key = ("emit", name, tuple(round(c, 4) for c in rgb), strength)
        if key in self._cache:
            return self._cache[key]
        mat = bpy.data.materials.new(name)
        nt = mat.node_tree
        for n in list(nt.nodes):
            if n.type != "OUTPUT_MATERIAL":
                nt.nodes.remove(n)
        em = nt.nodes.new("ShaderNodeEmission")
        em.inputs["Color"].default_value = srgb_to_linear(rgb)
        em.inputs["Strength"].default_value = strength
        nt.links.new(em.outputs["Emission"], nt.nodes["Material Output"].inputs["Surface"])
        self._cache[key] = mat
        return mat
