"""Pallet wood: grain bands along the boards (local x), each board (mesh island) its own
shade, knots, dark scuffs (wear) and grime (dirt)."""

from __future__ import annotations

from blender.materials.nodes import Tree
from blender.plan.scene_plan import Surface


def build(t: Tree, s: Surface) -> None:
    p = t.coord("Object")
    w = s.seed
    board = t.island_random()
    x, y, z = t.xyz(p)
    # grain lines run along x: stretch x, so the noise changes across the board, not along it
    grain_p = t.combine(t.math("MULTIPLY", x, 0.04), t.math("ADD", y, t.math("MULTIPLY", board, 7.0)), z)
    grain = t.node("ShaderNodeTexWave", {"Vector": grain_p, "Scale": 0.314 / s.scale, "Distortion": 4.0,
                                         "Detail": 2.0, "Detail Scale": 1.5},
                   wave_type="BANDS", bands_direction="Y", wave_profile="SIN").outputs["Factor"]
    color = t.mix(t.ramp(grain, 0.2, 0.9), s.color, s.color2)
    shade = t.ramp(t.white(board, w), 0.0, 1.0, 0.0, 0.35)
    color = t.mix(shade, color, (0.55, 0.5, 0.45), "MULTIPLY")
    scuff = t.ramp(t.noise(p, scale=8.0, detail=2.0, w=w + 1), 0.7 - 0.25 * s.wear, 0.8 - 0.25 * s.wear)
    grime = t.ramp(t.noise(p, scale=2.0, detail=1.0, w=w + 2), 0.45, 0.75, 0.0, 0.7 * s.dirt)
    color = t.mix(t.math("MAXIMUM", t.math("MULTIPLY", scuff, s.wear), grime), color, (0.18, 0.15, 0.12))
    t.out(base_color=color, roughness=t.lerp(grime, s.roughness, 0.95))
