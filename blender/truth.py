"""Where each labelled object of the built scene stands, from its exact geometry (needs bpy).

An object's floor position is its footprint, as the analytics define it (docs/DESIGN.md §9a):
the bottom of its mask (mean column of the lowest rows) taken to the floor through the camera.
The truth applies that same rule (pipeline.analytics.footprint) to the object's unoccluded
silhouette, rasterised from its triangles (blender.annotate.silhouette), not to a rendered
mask: comparing the two checks the masks, occlusion, the calibration and the footprint
geometry. A rule applied to a different point would measure the choice of point instead: a
jack facing the camera has two fork tips at the bottom, and the one vertex lowest in the
image lies a fork's half-spacing (0.27 m) beside the mask's bottom centre.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from blender.annotate import silhouette
from pipeline.analytics.footprint import mask_footprint


def floor_point(projection: np.ndarray, u: float, v: float) -> tuple[float, float]:
    """(x, y) on the floor z = 0 seen at pixel (u, v) through a 3x4 projection."""
    H = np.asarray(projection, dtype=np.float64)[:, [0, 1, 3]]  # the floor's homography
    p = np.linalg.solve(H, [u, v, 1.0])
    return float(p[0] / p[2]), float(p[1] / p[2])


def footprint_truth(vertices: np.ndarray, triangles: np.ndarray, projection: np.ndarray,
                    width: int, height: int) -> tuple[float, float] | None:
    """Floor (x, y) of the footprint of a mesh's unoccluded silhouette (None: not in view).
    The silhouette canvas reaches half an image past every border, so a footprint just below
    the frame is still found."""
    sil = silhouette(vertices, triangles, projection, width, height)
    fp = mask_footprint(sil.canvas)
    if fp is None:
        return None
    return floor_point(projection, fp[0] - sil.ox, fp[1] - sil.oy)


def scene_floor_truth() -> tuple[np.ndarray, dict[int, tuple[float, float]]]:
    """(camera projection 3x4, {instance_id: footprint (x, y)}) of the scene just rendered."""
    import bpy

    from blender.cycles import camera_projection, mesh_world_triangles

    scene = bpy.context.scene
    P = camera_projection(scene)
    pct = scene.render.resolution_percentage / 100
    width, height = int(scene.render.resolution_x * pct), int(scene.render.resolution_y * pct)
    parts = defaultdict(list)
    for ob in scene.objects:
        if ob.pass_index > 0:   # every mesh part of a labelled instance carries its instance id
            parts[int(ob.pass_index)].append(ob)
    out = {}
    for iid, objs in sorted(parts.items()):
        v, t = mesh_world_triangles(objs)
        if len(v):
            fp = footprint_truth(v, t, P, width, height)
            if fp is not None:
                out[iid] = fp
    return P, out
