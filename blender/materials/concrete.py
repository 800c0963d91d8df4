"""Concrete floor: cloudy trowelled slab with speckle, cracks, tyre marks along the aisles (y)
and across the staging area (x), and oil stains that are darker and glossier.

The floor fills much of every frame, so this graph is kept cheap: 3D/2D textures with few
octaves, and a bump of the one-octave speckle only (a bump evaluates its height three times).
"""

from __future__ import annotations

from blender.materials.nodes import Tree
from blender.plan.scene_plan import Surface

CRACK_WIDTH = 0.02        # of a Voronoi cell edge distance: ~5 cm, still a pixel at 10 m
CRACK_CELL_M = 2.5        # cracks run between cells about this big
CRACK_WOBBLE_M = 0.8      # how far a crack strays from a straight line
TYRE_RGB = (0.07, 0.07, 0.07)
STAIN_RGB = (0.25, 0.23, 0.2)


def build(t: Tree, s: Surface) -> None:
    p = t.coord("Object")
    w = s.seed
    cloud = t.noise(p, scale=1.0 / s.scale, detail=3.0, w=w)
    color = t.mix(t.ramp(cloud, 0.3, 0.7), s.color, s.color2)
    speck = t.noise(p, scale=60.0, detail=0.0, w=w + 1)
    color = t.mix(t.ramp(speck, 0.35, 0.65, 0.0, 0.25), color, (0.2, 0.2, 0.2), "MULTIPLY")
    # cracks: edges of a 2D Voronoi grid on the floor plane, kept where a slow noise says so (wear)
    vor = t.node("ShaderNodeTexVoronoi", {"Scale": 1.0 / CRACK_CELL_M, "Randomness": 0.9},
                 feature="DISTANCE_TO_EDGE", voronoi_dimensions="2D")
    # one scalar noise pushes the cell edges sideways: jagged cracks, not straight joints
    wobble = t.math("MULTIPLY", t.math("SUBTRACT", t.noise(p, scale=1.2, detail=2.0, w=w + 9), 0.5), CRACK_WOBBLE_M)
    t.set(vor.inputs["Vector"], t.vmath("ADD", t.shift(p, w + 3), t.combine(wobble, t.math("MULTIPLY", wobble, -0.7), 0.0)))
    keep = t.ramp(t.noise(p, scale=0.3, detail=1.0, w=w + 4), 0.64 - 0.22 * s.wear, 0.68 - 0.22 * s.wear)
    crack = t.math("MULTIPLY", t.ramp(vor.outputs["Distance"], CRACK_WIDTH, 0.0), keep)
    # tyre marks: noise stretched along the driving direction, thresholded into streaks
    x, y, z = t.xyz(p)
    along_y = t.noise(t.combine(t.math("MULTIPLY", x, 6.0), t.math("MULTIPLY", y, 0.15), z), scale=1.0, detail=1.0, w=w + 5)
    along_x = t.noise(t.combine(t.math("MULTIPLY", x, 0.15), t.math("MULTIPLY", y, 6.0), z), scale=1.0, detail=1.0, w=w + 6)
    streaks = t.math("MAXIMUM", t.ramp(along_y, 0.56, 0.64), t.math("MULTIPLY", t.ramp(along_x, 0.58, 0.66), 0.6))
    tyre = t.math("MULTIPLY", streaks, t.ramp(t.noise(p, scale=0.12, detail=0.0, w=w + 7), 0.3, 0.6, 0.0, 0.7 * s.marks))
    color = t.mix(tyre, color, TYRE_RGB)
    # oil stains: large blotches (dirt)
    stain = t.ramp(t.noise(p, scale=0.35, detail=3.0, w=w + 8), 0.5, 0.66, 0.0, s.dirt)
    color = t.mix(stain, color, STAIN_RGB, "MULTIPLY")
    color = t.mix(crack, color, (0.05, 0.05, 0.05), "MULTIPLY")
    rough = t.lerp(stain, s.roughness, s.roughness * 0.5)
    rough = t.lerp(tyre, rough, t.math("MINIMUM", s.roughness * 1.2, 1.0))
    t.out(base_color=color, roughness=rough, normal=t.bump(speck, 0.08, 0.01))
