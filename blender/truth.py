"""Where each labelled object of the built scene stands, from its exact geometry (needs bpy).

An object's floor position is its footprint, as the analytics define it (docs/DESIGN.md §9a):
the bottom of its mask (mean column of the lowest rows) taken to the floor through the camera.
The truth applies that same rule (pipeline.analytics.footprint) to the object's unoccluded
silhouette, rasterised from its triangles (blender.annotate.silhouette, or through a calibrated
lens blender.distort.LensWarp.silhouette), not to a rendered mask, and takes it to the floor
with the analytics' own FloorMap built from the clip's calibration.yaml: comparing the two
checks the masks, occlusion, the calibration (and lens) and the footprint geometry. A rule
applied to a different point would measure the choice of point instead: a jack facing the
camera has two fork tips at the bottom, and the one vertex lowest in the image lies a fork's
half-spacing (0.27 m) beside the mask's bottom centre.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from blender.annotate import Silhouette
from pipeline.analytics.calibration import CalibrationConfig, FloorMap
from pipeline.analytics.clip_truth import clip_calibration
from pipeline.analytics.footprint import mask_footprint

# the silhouette canvas reaches half an image past every border, so a footprint just below
# the frame is still found
SILHOUETTE_MARGIN = 0.5


def footprint_truth(sil: Silhouette, floor: FloorMap) -> tuple[float, float] | None:
    """Floor (x, y) of the footprint of an unoccluded silhouette (None: not in view, or not on
    the floor's side of the horizon)."""
    fp = mask_footprint(sil.canvas)
    if fp is None:
        return None
    x, y = floor.to_floor([[fp[0] - sil.ox, fp[1] - sil.oy]])[0]
    return None if np.isnan(x) else (float(x), float(y))


def scene_floor_truth(warp=None) -> tuple[dict, dict[int, tuple[float, float]]]:
    """(the camera's calibration.yaml content, {instance_id: footprint (x, y)}) of the scene just
    rendered; `warp`: the calibrated lens's blender.distort.LensWarp (None: a plain pinhole)."""
    import bpy

    from blender.annotate import silhouette
    from blender.cycles import camera_projection, mesh_world_triangles
    from blender.plan.calibration import undistorted_projection

    scene = bpy.context.scene
    P = camera_projection(scene)
    if warp is None:
        pct = scene.render.resolution_percentage / 100
        width, height = int(scene.render.resolution_x * pct), int(scene.render.resolution_y * pct)
        calib = clip_calibration((width, height), P, None)

        def sil(v, t):
            return silhouette(v, t, P, width, height, SILHOUETTE_MARGIN)
    else:
        lens = warp.lens
        calib = clip_calibration(lens.image_size, undistorted_projection(lens, P),
                                 {"camera_matrix": lens.camera_matrix, "dist_coeffs": lens.dist_coeffs,
                                  "distortion_model": lens.model})

        def sil(v, t):
            return warp.silhouette(v, t, P, SILHOUETTE_MARGIN)
    # the truth goes through exactly what the analytics will read from calibration.yaml
    floor = FloorMap.from_config(CalibrationConfig.model_validate(calib))
    parts = defaultdict(list)
    for ob in scene.objects:
        if ob.pass_index > 0:   # every mesh part of a labelled instance carries its instance id
            parts[int(ob.pass_index)].append(ob)
    out = {}
    for iid, objs in sorted(parts.items()):
        v, t = mesh_world_triangles(objs)
        if len(v):
            fp = footprint_truth(sil(v, t), floor)
            if fp is not None:
                out[iid] = fp
    return calib, out
