"""Rubber (tyres, bumpers, handles) and moulded plastic (crates, cones, bins, barriers):
scuffs and scratches (wear) in the lighter colour2, dust (dirt) that dulls the gloss."""

from __future__ import annotations

from blender.materials.nodes import Tree
from blender.plan.scene_plan import Surface

DUST = (0.45, 0.42, 0.38)


def rubber(t: Tree, s: Surface) -> None:
    p = t.coord("Object")
    w = s.seed
    fine = t.noise(p, scale=1.0 / s.scale * 10.0, detail=0.0, w=w)
    scuff = t.ramp(t.noise(p, scale=4.0 / s.scale, detail=2.0, w=w + 1), 0.75 - 0.2 * s.wear, 0.85 - 0.2 * s.wear,
                   0.0, 0.6 * s.wear)
    color = t.mix(scuff, s.color, (0.2, 0.2, 0.2))
    dust = t.ramp(t.noise(p, scale=2.0, detail=1.0, w=w + 2), 0.4, 0.8, 0.0, 0.5 * s.dirt)
    color = t.mix(dust, color, DUST)
    t.out(base_color=color, roughness=t.lerp(scuff, s.roughness, 0.6),
          normal=t.bump(fine, 0.2, 0.002), specular=0.3)


def plastic(t: Tree, s: Surface) -> None:
    p = t.coord("Object")
    w = s.seed
    x, y, z = t.xyz(p)
    # scratches: thin streaks of a noise stretched along a random direction
    streak_p = t.combine(t.math("MULTIPLY", t.math("ADD", x, z), 0.08), t.math("SUBTRACT", y, z), z)
    streak = t.ramp(t.noise(streak_p, scale=30.0, detail=1.0, w=w), 0.68, 0.72)
    keep = t.ramp(t.noise(p, scale=1.0 / s.scale, detail=1.0, w=w + 1), 0.7 - 0.4 * s.wear, 0.75 - 0.4 * s.wear)
    scratch = t.math("MULTIPLY", streak, keep)
    color = t.mix(t.math("MULTIPLY", scratch, 0.5), s.color, (0.9, 0.9, 0.9))
    dust = t.ramp(t.noise(p, scale=2.5, detail=1.0, w=w + 2), 0.4, 0.8, 0.0, 0.5 * s.dirt)
    color = t.mix(dust, color, DUST)
    rough = t.lerp(t.math("MAXIMUM", scratch, dust), s.roughness, 0.8)
    t.out(base_color=color, roughness=rough, specular=0.5)
