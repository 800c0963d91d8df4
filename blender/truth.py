"""Where each labelled object of the built scene stands, from its exact geometry (needs bpy).

An object's floor position ("footprint") is what pipeline.analytics measures from a mask:
the bottom of the object in the image, on the floor. Its truth here is the ground-contact
vertex (within CONTACT_M of the object's lowest point) that the render camera sees lowest in
the image, taken in world metres; it does not depend on the mask, so comparing the two checks
the calibration and the footprint geometry.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

CONTACT_M = 0.03   # shoe soles and wheels: vertices this close to the object's lowest point


def lowest_contact_point(vertices: np.ndarray, projection: np.ndarray) -> tuple[float, float]:
    """(x, y) in world metres of the ground-contact vertex lowest in the image (largest v)."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    contact = v[v[:, 2] <= v[:, 2].min() + CONTACT_M]
    uvw = np.c_[contact, np.ones(len(contact))] @ np.asarray(projection, dtype=np.float64).T
    k = int(np.argmax(uvw[:, 1] / uvw[:, 2]))
    return float(contact[k, 0]), float(contact[k, 1])


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
            out[iid] = lowest_contact_point(v, P)
    return P, out
