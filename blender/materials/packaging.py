"""Cardboard cartons (tape over the top, printed labels with a barcode on the x-facing sides)
and stretch/shrink wrap (glossy film over the cartons beneath, wrinkled in bands).

Cartons read the "face01" UV layer of blender/meshes.py: every face of a box runs 0..1, v up
on the sides, so tape and labels land in the same place on every carton whatever its size;
which cartons get a label, and where, comes from the carton's island random and the plan's
seed. `marks` is the share of cartons that carry tape and a label.
"""

from __future__ import annotations

from blender.materials.nodes import Tree
from blender.plan.scene_plan import Surface

TAPE_RGB = (0.72, 0.55, 0.32)
INK = (0.05, 0.05, 0.05)
TAPE_HALF_W = 0.07           # of the carton's width
BARCODE_BARS = 48


def cardboard(t: Tree, s: Surface) -> None:
    p = t.coord("Object")
    w = s.seed
    uv = t.uv("face01")
    u, v, _ = t.xyz(uv)
    _, _, nz = t.xyz(t.coord("Normal"))
    nx, _, _ = t.xyz(t.coord("Normal"))
    carton = t.island_random()
    lucky = t.white(carton, w)                              # per carton: tape / label or not
    has_marks = t.math("LESS_THAN", lucky, s.marks)
    tint = t.ramp(t.white(carton, w + 1), 0.0, 1.0, 0.0, 0.25)
    fibre = t.noise(p, scale=4.0 / s.scale, detail=1.0, w=w + 2)
    color = t.mix(t.ramp(fibre, 0.3, 0.7, 0.0, 0.15), s.color, (0.3, 0.25, 0.2), "MULTIPLY")
    color = t.mix(tint, color, (0.8, 0.75, 0.7), "MULTIPLY")
    # tape: along x over the top (|v - 0.5| small), then down the x-facing sides near the top
    top = t.math("GREATER_THAN", nz, 0.5)
    side_x = t.math("GREATER_THAN", t.math("ABSOLUTE", nx), 0.5)
    centre_v = t.math("LESS_THAN", t.math("ABSOLUTE", t.math("SUBTRACT", v, 0.5)), TAPE_HALF_W)
    centre_u = t.math("LESS_THAN", t.math("ABSOLUTE", t.math("SUBTRACT", u, 0.5)), TAPE_HALF_W)
    tape = t.math("MAXIMUM", t.math("MULTIPLY", top, centre_v),
                  t.math("MULTIPLY", side_x, t.math("MULTIPLY", centre_u, t.math("GREATER_THAN", v, 0.82))))
    tape = t.math("MULTIPLY", tape, has_marks)
    # label: a paper rectangle left of the tape on x-facing sides, its height jittered per carton
    lv0 = t.math("ADD", 0.3, t.math("MULTIPLY", tint, 0.8))
    in_u = t.math("MULTIPLY", t.math("GREATER_THAN", u, 0.1), t.math("LESS_THAN", u, 0.4))
    in_v = t.math("MULTIPLY", t.math("GREATER_THAN", v, lv0), t.math("LESS_THAN", v, t.math("ADD", lv0, 0.28)))
    label = t.math("MULTIPLY", t.math("MULTIPLY", in_u, in_v), t.math("MULTIPLY", side_x, has_marks))
    # on the label: a barcode in its lower third (bars of random width), print lines above it
    lv = t.math("DIVIDE", t.math("SUBTRACT", v, lv0), 0.28)          # 0..1 up the label
    lu = t.math("DIVIDE", t.math("SUBTRACT", u, 0.1), 0.3)           # 0..1 across it
    bar_i = t.math("FLOOR", t.math("MULTIPLY", lu, BARCODE_BARS))
    bars = t.math("GREATER_THAN", t.white(t.math("ADD", bar_i, t.math("MULTIPLY", carton, 97.0)), w + 3), 0.5)
    in_code = t.math("MULTIPLY", t.math("LESS_THAN", lv, 0.35), t.math("GREATER_THAN", lv, 0.08))
    in_code = t.math("MULTIPLY", in_code, t.math("MULTIPLY", t.math("GREATER_THAN", lu, 0.08), t.math("LESS_THAN", lu, 0.92)))
    lines = t.math("GREATER_THAN", t.math("FRACT", t.math("MULTIPLY", lv, 7.0)), 0.6)
    in_text = t.math("MULTIPLY", t.math("GREATER_THAN", lv, 0.5), t.math("LESS_THAN", lu, t.math("ADD", 0.4, tint)))
    ink = t.math("MAXIMUM", t.math("MULTIPLY", bars, in_code), t.math("MULTIPLY", lines, in_text))
    paper = t.mix(ink, s.color2, INK)
    color = t.mix(tape, color, TAPE_RGB)
    color = t.mix(label, color, paper)
    scuff = t.ramp(t.noise(p, scale=6.0, detail=2.0, w=w + 4), 0.72 - 0.2 * s.wear, 0.8 - 0.2 * s.wear, 0.0, s.wear)
    grime = t.ramp(t.noise(p, scale=1.5, detail=1.0, w=w + 5), 0.45, 0.8, 0.0, 0.5 * s.dirt)
    color = t.mix(t.math("MAXIMUM", scuff, grime), color, (0.3, 0.24, 0.18), "MULTIPLY")
    rough = t.lerp(t.math("MAXIMUM", tape, label), s.roughness, 0.35)
    t.out(base_color=color, roughness=rough)


def shrink_wrap(t: Tree, s: Surface) -> None:
    p = t.coord("Object")
    w = s.seed
    x, y, z = t.xyz(p)
    # film goes round the load: wrinkles are horizontal bands, broken up along the wrap
    bands_p = t.combine(t.math("MULTIPLY", x, 0.3), t.math("MULTIPLY", y, 0.3), t.math("MULTIPLY", z, 6.0))
    wrinkle = t.noise(bands_p, scale=1.0 / s.scale, detail=2.0, roughness=0.6, w=w)
    layers = t.ramp(t.noise(bands_p, scale=0.5 / s.scale, detail=1.0, w=w + 1), 0.3, 0.7)
    # see-through film: the cartons beneath (color2) under a milky layer (color), thicker where it overlaps
    color = t.mix(t.math("ADD", 0.35, t.math("MULTIPLY", layers, 0.4)), s.color2, s.color)
    dust = t.ramp(t.noise(p, scale=2.0, detail=1.0, w=w + 2), 0.45, 0.8, 0.0, 0.5 * s.dirt)
    color = t.mix(dust, color, (0.5, 0.48, 0.45))
    # the wrinkles show in the film's gloss: one bump, shared by the base and the coat
    wrinkled = t.bump(wrinkle, 0.15 + 0.35 * s.wear, 0.01)
    t.out(base_color=color, roughness=t.lerp(dust, s.roughness, 0.6), coat=1.0, coat_roughness=0.05,
          normal=wrinkled, coat_normal=wrinkled)
