"""Painted steel (racks, pallet jacks, forklifts, cladding): paint chipped down to bare metal
or rust where a fine noise passes the wear threshold, grime darkening low-frequency patches."""

from __future__ import annotations

from blender.materials.nodes import Tree
from blender.plan.scene_plan import Surface


def build(t: Tree, s: Surface) -> None:
    p = t.coord("Object")
    w = s.seed
    r, _, b = t.xyz(s.color2)
    rusty = t.math("GREATER_THAN", t.math("SUBTRACT", r, b), 0.05)  # the planner puts bare steel or rust under the paint
    chip_noise = t.noise(p, scale=6.0 / s.scale, detail=4.0, roughness=0.65, w=w)
    start = 0.72 - 0.15 * s.wear             # noise above it: ~1 % of the area at no wear, ~20 % at full
    chip = t.ramp(chip_noise, start, start + 0.01)
    grime = t.ramp(t.noise(p, scale=1.5 / s.scale, detail=2.0, w=w + 1), 0.4, 0.75, 0.0, 0.6 * s.dirt)
    paint = t.mix(t.ramp(t.noise(p, scale=20.0, detail=0.0, w=w + 2), 0.3, 0.7, 0.0, 0.15), s.color, (0.5, 0.5, 0.5), "MULTIPLY")
    color = t.mix(chip, paint, s.color2)
    color = t.mix(grime, color, (0.3, 0.28, 0.25), "MULTIPLY")
    rough = t.lerp(chip, s.roughness, t.lerp(rusty, 0.35, 0.75))
    rough = t.lerp(grime, rough, 0.85)
    # no bump: paint edges are sub-pixel at working distance, and a bump triples the chip noise
    t.out(base_color=color, roughness=rough, metallic=t.lerp(chip, 0.0, t.lerp(rusty, 0.9, 0.0)))
