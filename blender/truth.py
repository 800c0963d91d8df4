"""Where each labelled object of the built scene stands, from its exact geometry (needs bpy).

An object's floor position is its footprint, as the analytics define it (docs/DESIGN.md §9a):
the point where the camera ray through the object's lowest point in the image meets the
floor. For a person that is the sole of the foot nearest the camera; for a pallet jack a fork
tip or wheel a few centimetres up, so the point lies a little beyond the metal, where a mask's
bottom puts it too. The truth takes that point from the mesh, not from a mask, so comparing
the two checks the masks, the calibration and the footprint geometry. (The contact vertex
under the jack, the earlier truth, is up to 0.27 m from the fork tip the camera sees lowest.)
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np


def camera_centre(projection: np.ndarray) -> np.ndarray:
    """World position of the camera of a 3x4 projection P = [M | p]: -M^-1 p."""
    P = np.asarray(projection, dtype=np.float64)
    return -np.linalg.solve(P[:, :3], P[:, 3])


def footprint_point(vertices: np.ndarray, projection: np.ndarray) -> tuple[float, float]:
    """(x, y) in world metres where the ray through the vertex lowest in the image (largest v,
    in front of the camera) meets the floor z = 0."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    uvw = np.c_[v, np.ones(len(v))] @ np.asarray(projection, dtype=np.float64).T
    front = uvw[:, 2] > 1e-9
    if front.any():
        v, uvw = v[front], uvw[front]
    x = v[int(np.argmax(uvw[:, 1] / uvw[:, 2]))]
    c = camera_centre(projection)
    if x[2] <= 0 or c[2] <= x[2]:  # on the floor already, or no floor crossing beyond it
        return float(x[0]), float(x[1])
    t = c[2] / (c[2] - x[2])
    p = c + t * (x - c)
    return float(p[0]), float(p[1])


def scene_floor_truth() -> tuple[np.ndarray, dict[int, tuple[float, float]]]:
    """(camera projection 3x4, {instance_id: footprint (x, y)}) of the scene just rendered."""
    import bpy

    from blender.cycles import camera_projection, mesh_world_triangles

    scene = bpy.context.scene
    P = camera_projection(scene)
    parts = defaultdict(list)
    for ob in scene.objects:
        if ob.pass_index > 0:   # every mesh part of a labelled instance carries its instance id
            parts[int(ob.pass_index)].append(ob)
    out = {}
    for iid, objs in sorted(parts.items()):
        v, _ = mesh_world_triangles(objs)
        if len(v):
            out[iid] = footprint_point(v, P)
    return P, out
