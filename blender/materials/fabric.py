"""Clothing fabrics (one family per pattern: woven, knit, denim, check, stripe, camo) and a
printed logo or text patch on the chest or back of a shirt.

Patterns run in the body's cloth coordinates (the mesh's `cloth` attribute: where each vertex
sits on the body standing straight, metres, feet at z = 0, facing -Y; set by
blender.assets.pedestrian), so they move with the person, follow a swinging arm or a bent knee
as cloth does and keep their size whatever the camera. The print stays in Object coordinates
(the torso barely moves between poses). `color` is the cloth,
`color2` the second yarn (heather, faded denim threads, the check or stripe colour, the camo
blotches); `marks` is the pattern's contrast, `scale` its pitch in metres, `wear` fading,
`dirt` grime, `seed` shifts the noise. A garment with a print is the fabric's BSDF and the
print's mixed by the print's mask (`garment`); the print is a node group of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import bpy

from blender.materials.nodes import Num, Tree, job_group, srgb_to_linear

GRIME = (0.25, 0.22, 0.18)
FADE = (0.92, 0.92, 0.9)
PRINT_GROUP = "print"
# print shapes, in blender.plan.actors.PRINT_SHAPES order (the group's `shape` input is the index)
SHAPES = ("disc", "ring", "text", "chevron", "block", "band")
CLOTH_ATTRIBUTE = "cloth"


def _cloth(t: Tree):
    """Cloth coordinates (see the module docstring)."""
    return t.node("ShaderNodeAttribute", attribute_type="GEOMETRY", attribute_name=CLOTH_ATTRIBUTE).outputs["Vector"]


def _across(t: Tree):
    """(across, up): a coordinate round the body (x on front and back, y on the sides) and z."""
    x, y, z = t.xyz(_cloth(t))
    return t.math("ADD", x, y), z


def _finish(t: Tree, s, color, height=None, bump: float = 0.0) -> None:
    """Fading (wear) and grime (dirt) over the pattern's colour; cloth sheen; an optional weave bump."""
    p = _cloth(t)
    fade = t.ramp(t.noise(p, scale=2.0, detail=1.0, w=s.seed + 7), 0.4, 0.8, 0.0, 0.35 * s.wear)
    color = t.mix(fade, color, FADE)
    grime = t.ramp(t.noise(p, scale=3.0, detail=1.0, w=s.seed + 8), 0.5, 0.85, 0.0, 0.6 * s.dirt)
    color = t.mix(grime, color, GRIME, "MULTIPLY")
    extra = {"normal": t.bump(height, bump, 0.002)} if height is not None and bump else {}
    t.out(base_color=color, roughness=s.roughness, specular=0.3, sheen_weight=0.4, **extra)


def _periodic(t: Tree, v, pitch: Num, duty):
    """1 on the first `duty` share of every `pitch` of v, else 0 (stripes)."""
    return t.math("LESS_THAN", t.math("FRACT", t.math("DIVIDE", v, pitch.socket)), duty)


def woven(t: Tree, s) -> None:
    a, z = _across(t)
    k = 2 * math.pi
    warp = t.math("SINE", t.math("MULTIPLY", t.math("DIVIDE", a, s.scale.socket), k))
    weft = t.math("SINE", t.math("MULTIPLY", t.math("DIVIDE", z, s.scale.socket), k))
    weave = t.math("MULTIPLY", warp, weft)                                   # -1..1, a plain weave
    heather = t.noise(_cloth(t), scale=60.0, detail=1.0, w=s.seed)
    fac = t.math("MULTIPLY", t.math("ADD", t.math("MULTIPLY", weave, 0.25), heather), s.marks * 0.6)
    _finish(t, s, t.mix(fac, s.color, s.color2), weave, 0.15)


def knit(t: Tree, s) -> None:
    a, _ = _across(t)
    rib = t.math("ABSOLUTE", t.math("SINE", t.math("MULTIPLY", t.math("DIVIDE", a, s.scale.socket), math.pi)))
    heather = t.ramp(t.noise(_cloth(t), scale=90.0, detail=1.0, w=s.seed), 0.35, 0.75)
    fac = t.math("MULTIPLY", t.math("ADD", t.math("MULTIPLY", rib, 0.3), t.math("MULTIPLY", heather, 0.7)), s.marks)
    _finish(t, s, t.mix(fac, s.color, s.color2), rib, 0.25)


def denim(t: Tree, s) -> None:
    a, z = _across(t)
    twill = _periodic(t, t.math("ADD", a, z), s.scale, 0.5)                 # diagonal threads
    fac = t.math("MULTIPLY", twill, s.marks * 0.3)
    # faded where denim rubs: broad light patches (wear widens them)
    worn = t.ramp(t.noise(_cloth(t), scale=4.0, detail=2.0, w=s.seed), 0.55 - 0.2 * s.wear, 0.75, 0.0, 0.6)
    fac = t.math("MAXIMUM", fac, worn)
    _finish(t, s, t.mix(fac, s.color, s.color2), twill, 0.1)


def check(t: Tree, s) -> None:
    a, z = _across(t)
    duty = s.marks * 0.35 + 0.1
    band_a = _periodic(t, a, s.scale, duty.socket)
    band_z = _periodic(t, z, s.scale, duty.socket)
    over = t.math("MULTIPLY", t.math("ADD", band_a, band_z), 0.5)            # 0, 0.5 where one band, 1 where both
    line = t.math("MAXIMUM", _periodic(t, t.math("ADD", a, s.scale * 0.5), s.scale, 0.06),
                  _periodic(t, t.math("ADD", z, s.scale * 0.5), s.scale, 0.06))
    color = t.mix(over, s.color, s.color2)
    color = t.mix(t.math("MULTIPLY", line, 0.6), color, (0.05, 0.05, 0.05))
    _finish(t, s, color)


def stripe(t: Tree, s) -> None:
    _, z = _across(t)
    band = _periodic(t, z, s.scale, (s.marks * 0.4 + 0.15).socket)
    _finish(t, s, t.mix(band, s.color, s.color2))


def camo(t: Tree, s) -> None:
    p = _cloth(t)
    blot = t.math("GREATER_THAN", t.noise(p, scale=(1.0 / s.scale).socket, detail=2.0, roughness=0.6, w=s.seed), 0.52)
    dark = t.math("GREATER_THAN", t.noise(p, scale=(1.3 / s.scale).socket, detail=2.0, roughness=0.6,
                                          w=s.seed + 3), 0.6)
    color = t.mix(blot, s.color, s.color2)
    color = t.mix(t.math("MULTIPLY", dark, s.marks), color, (0.1, 0.1, 0.08))
    _finish(t, s, color)


BUILDERS = {"fabric_woven": woven, "fabric_knit": knit, "fabric_denim": denim, "fabric_check": check,
            "fabric_stripe": stripe, "fabric_camo": camo}


# ---------------------------------------------------------------- print

def print_group() -> bpy.types.ShaderNodeTree:
    """Group `warehouse_synth_print`: a 0/1 mask of the print (Fac) from where it sits.

    Inputs: anchor (its centre, object space), up (the torso's axis), side (+1 chest: faces
    -Y; -1 back), size (width, m), shape (index into SHAPES), seed. Built once per job."""
    group, new = job_group(PRINT_GROUP)
    if not new:
        return group
    group.interface.new_socket("Fac", in_out="OUTPUT", socket_type="NodeSocketFloat")
    for key in ("anchor", "up"):
        group.interface.new_socket(key, in_out="INPUT", socket_type="NodeSocketVector")
    for key in ("side", "size", "shape", "seed"):
        group.interface.new_socket(key, in_out="INPUT", socket_type="NodeSocketFloat")
    gi = group.nodes.new("NodeGroupInput")
    out = group.nodes.new("NodeGroupOutput")
    t = Tree(group, None)
    i = gi.outputs
    d = t.vmath("SUBTRACT", t.coord("Object"), i["anchor"])
    lat = (1.0, 0.0, 0.0)
    front = t.vmath("CROSS_PRODUCT", lat, i["up"])                           # -Y for an upright torso
    side = i["side"]
    u = t.math("DIVIDE", t.vmath("DOT_PRODUCT", d, lat), i["size"])           # -0.5..0.5 across the print
    v = t.math("DIVIDE", t.vmath("DOT_PRODUCT", d, i["up"]), i["size"])
    depth = t.vmath("DOT_PRODUCT", d, front)
    facing = t.math("GREATER_THAN", t.math("MULTIPLY", t.vmath("DOT_PRODUCT", t.coord("Normal"), front), side), 0.35)
    near = t.math("LESS_THAN", t.math("ABSOLUTE", depth), 0.1)
    au, av = t.math("ABSOLUTE", u), t.math("ABSOLUTE", v)
    r = t.math("SQRT", t.math("ADD", t.math("MULTIPLY", u, u), t.math("MULTIPLY", v, v)))

    def inside(x, lo, hi):
        return t.math("MULTIPLY", t.math("GREATER_THAN", x, lo), t.math("LESS_THAN", x, hi))

    # text: two rows of letter-sized blocks, each block hatched by thin strokes
    cell = t.math("FLOOR", t.math("MULTIPLY", u, 10.0))
    row = t.math("GREATER_THAN", v, 0.0)
    letter = t.math("GREATER_THAN", t.white(t.math("ADD", cell, t.math("MULTIPLY", row, 37.0)), i["seed"]), 0.2)
    gap = t.math("LESS_THAN", t.math("FRACT", t.math("MULTIPLY", u, 10.0)), 0.72)
    strokes = t.math("GREATER_THAN", t.white(t.math("FLOOR", t.math("MULTIPLY", u, 40.0)),
                                             t.math("ADD", i["seed"], t.math("FLOOR", t.math("MULTIPLY", v, 14.0)))), 0.35)
    text = t.math("MULTIPLY", t.math("MULTIPLY", letter, gap), strokes)
    text = t.math("MULTIPLY", text, t.math("MULTIPLY", inside(av, 0.02, 0.16), t.math("LESS_THAN", au, 0.5)))
    shapes = [
        t.math("LESS_THAN", r, 0.4),                                                      # disc
        inside(r, 0.27, 0.4),                                                             # ring
        text,                                                                             # text
        t.math("MULTIPLY", t.math("LESS_THAN", t.math("ABSOLUTE", t.math("SUBTRACT", v, t.math(
            "SUBTRACT", t.math("MULTIPLY", au, 0.6), 0.15))), 0.08), t.math("LESS_THAN", au, 0.45)),  # chevron
        t.math("MULTIPLY", t.math("MULTIPLY", t.math("LESS_THAN", au, 0.5), t.math("LESS_THAN", av, 0.22)),
               t.math("SUBTRACT", 1.0, text)),                                             # block, text cut out
        t.math("MULTIPLY", t.math("LESS_THAN", au, 0.5), t.math("MAXIMUM", t.math("LESS_THAN", av, 0.06),
                                                                inside(av, 0.1, 0.14))),   # band
    ]
    mask = 0.0
    for k, m in enumerate(shapes):
        pick = t.math("LESS_THAN", t.math("ABSOLUTE", t.math("SUBTRACT", i["shape"], float(k))), 0.5)
        mask = t.math("ADD", mask, t.math("MULTIPLY", pick, m))
    mask = t.math("MULTIPLY", mask, t.math("MULTIPLY", facing, near))
    group.links.new(mask, out.inputs["Fac"])
    return group


def garment(name: str, s, printed=None, anchor: Sequence[float] | None = None,
            up: Sequence[float] = (0.0, 0.0, 1.0)) -> bpy.types.Material:
    """A material of fabric Surface `s`, with plan Print `printed` at `anchor` (the body mesh's
    chest or back point, object space) when given."""
    from blender.materials import family_node

    mat = bpy.data.materials.new(name)
    nt = mat.node_tree
    shader = family_node(nt, s).outputs["BSDF"]
    if printed is not None and anchor is not None:
        mask = nt.nodes.new("ShaderNodeGroup")
        mask.node_tree = print_group()
        mask.inputs["anchor"].default_value = tuple(anchor)
        mask.inputs["up"].default_value = tuple(up)
        mask.inputs["side"].default_value = 1.0 if printed.place == "chest" else -1.0
        mask.inputs["size"].default_value = printed.size
        mask.inputs["shape"].default_value = float(SHAPES.index(printed.shape))
        mask.inputs["seed"].default_value = printed.seed
        ink = nt.nodes.new("ShaderNodeBsdfPrincipled")
        ink.inputs["Base Color"].default_value = srgb_to_linear(printed.color)
        ink.inputs["Roughness"].default_value = 0.5            # plastisol print: a little glossier than cloth
        mix = nt.nodes.new("ShaderNodeMixShader")
        nt.links.new(mask.outputs["Fac"], mix.inputs["Fac"])
        nt.links.new(shader, mix.inputs[1])
        nt.links.new(ink.outputs["BSDF"], mix.inputs[2])
        shader = mix.outputs["Shader"]
    nt.links.new(shader, nt.nodes["Material Output"].inputs["Surface"])
    mat.diffuse_color = srgb_to_linear(s.color)
    return mat
