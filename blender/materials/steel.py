"""Painted steel (racks, pallet jacks, forklifts, cladding): paint chipped down to bare metal
or rust where a fine noise passes the wear threshold, grime darkening low-frequency patches."""

from __future__ import annotations

from blender.materials.nodes import Tree
from blender.plan.scene_plan import Surface


def build(t: Tree, s: Surface) -> None:
    p = t.coord("Object")
    w = s.seed
    rusty = s.color2[0] > s.color2[2] + 0.1   # the planner puts bare steel or rust under the paint
    chip_noise = t.noise(p, scale=6.0 / s.scale, detail=8.0, roughness=0.65, w=w)
    start = 1.0 - 0.45 * s.wear              # no wear: nothing passes; full wear: ~1/4 of the area
    chip = t.ramp(chip_noise, start, start + 0.01)
    grime = t.ramp(t.noise(p, scale=1.5 / s.scale, detail=3.0, w=w + 1), 0.4, 0.75, 0.0, 0.6 * s.dirt)
    paint = t.mix(t.ramp(t.noise(p, scale=20.0, w=w + 2), 0.3, 0.7, 0.0, 0.15), s.color, (0.5, 0.5, 0.5), "MULTIPLY")
    color = t.mix(chip, paint, s.color2)
    color = t.mix(grime, color, (0.3, 0.28, 0.25), "MULTIPLY")
    bare_rough = 0.75 if rusty else 0.35
    rough = t.lerp(chip, s.roughness, bare_rough)
    rough = t.lerp(grime, rough, 0.85)
    t.out(base_color=color, roughness=rough, metallic=t.lerp(chip, 0.0, 0.0 if rusty else 0.9),
          normal=t.bump(t.math("SUBTRACT", 1.0, chip), 0.15, 0.002))
