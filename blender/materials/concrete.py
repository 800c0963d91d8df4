"""Concrete floor: cloudy trowelled slab with speckle, hairline cracks, tyre marks along the
aisles (y) and across the staging area (x), and oil stains that are darker and glossier."""

from __future__ import annotations

from blender.materials.nodes import Tree
from blender.plan.scene_plan import Surface

CRACK_WIDTH = 0.02        # of a Voronoi cell edge distance: ~2 cm, still a pixel at 10 m
CRACK_CELL_M = 2.5        # cracks run between cells about this big
TYRE_RGB = (0.07, 0.07, 0.07)
STAIN_RGB = (0.25, 0.23, 0.2)


def build(t: Tree, s: Surface) -> None:
    p = t.coord("Object")
    w = s.seed
    cloud = t.noise(p, scale=1.0 / s.scale, detail=4.0, w=w)
    color = t.mix(t.ramp(cloud, 0.3, 0.7), s.color, s.color2)
    speck = t.noise(p, scale=60.0, detail=1.0, w=w + 1)
    color = t.mix(t.ramp(speck, 0.35, 0.65, 0.0, 0.25), color, (0.2, 0.2, 0.2), "MULTIPLY")
    # cracks: edges of a warped Voronoi grid, kept only where a slow noise says so (wear)
    jiggle = t.node("ShaderNodeTexNoise", {"Vector": p, "Scale": 0.8, "W": w + 2}, noise_dimensions="4D")
    warp = t.vmath("ADD", p, t.vmath("SCALE", t.vmath("SUBTRACT", jiggle.outputs["Color"], (0.5, 0.5, 0.5)), 0.8))
    vor = t.node("ShaderNodeTexVoronoi", {"Vector": warp, "Scale": 1.0 / CRACK_CELL_M, "W": w + 3},
                 feature="DISTANCE_TO_EDGE", voronoi_dimensions="4D").outputs["Distance"]
    keep = t.ramp(t.noise(p, scale=0.3, w=w + 4), 1.0 - 0.5 * s.wear, 1.05 - 0.5 * s.wear)
    crack = t.math("MULTIPLY", t.ramp(vor, CRACK_WIDTH, 0.0), keep)
    # tyre marks: noise stretched along the driving direction, thresholded into streaks
    x, y, z = t.xyz(p)
    along_y = t.noise(t.combine(t.math("MULTIPLY", x, 6.0), t.math("MULTIPLY", y, 0.15), z), scale=1.0, detail=2.0, w=w + 5)
    along_x = t.noise(t.combine(t.math("MULTIPLY", x, 0.15), t.math("MULTIPLY", y, 6.0), z), scale=1.0, detail=2.0, w=w + 6)
    streaks = t.math("MAXIMUM", t.ramp(along_y, 0.62, 0.7), t.math("MULTIPLY", t.ramp(along_x, 0.64, 0.7), 0.6))
    tyre = t.math("MULTIPLY", streaks, t.ramp(t.noise(p, scale=0.12, w=w + 7), 0.35, 0.7, 0.0, 0.6 * s.marks))
    color = t.mix(tyre, color, TYRE_RGB)
    # oil stains: large blotches (dirt)
    stain = t.ramp(t.noise(p, scale=0.35, detail=6.0, w=w + 8), 0.5, 0.68, 0.0, s.dirt)
    color = t.mix(stain, color, STAIN_RGB, "MULTIPLY")
    color = t.mix(crack, color, (0.05, 0.05, 0.05), "MULTIPLY")
    rough = t.lerp(stain, s.roughness, s.roughness * 0.5)
    rough = t.lerp(tyre, rough, min(1.0, s.roughness * 1.2))
    height = t.math("SUBTRACT", t.math("MULTIPLY", speck, 0.3), crack)
    t.out(base_color=color, roughness=rough, normal=t.bump(height, 0.25, 0.01))
