"""Low-poly geometry: numpy accumulates boxes/cylinders, one bpy call turns them into a mesh.

Building many parts into one mesh (material per face) keeps object counts and build time
low; linked duplicates of one mesh share memory and Cycles instances them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import bpy
import numpy as np

COLLECTION = "warehouse_synth"

_BOX_FACES = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5],
                       [2, 3, 7, 6], [3, 0, 4, 7]])
_BOX_CORNERS = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1],
                         [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], dtype=float) / 2


def rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def rot_y(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


class MeshBuilder:
    """Collects quads/tris of simple solids; `build()` makes one bpy mesh."""

    def __init__(self):
        self.verts: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []   # (F, 4) with -1 padding for triangles
        self.mats: list[np.ndarray] = []
        self.n = 0

    def _add(self, v: np.ndarray, f: np.ndarray, mat: int) -> None:
        f = np.where(f >= 0, f + self.n, -1)
        self.verts.append(v)
        self.faces.append(f)
        self.mats.append(np.full(len(f), mat, dtype=np.int32))
        self.n += len(v)

    def box(self, center, size, mat: int = 0, R: np.ndarray | None = None) -> MeshBuilder:
        v = _BOX_CORNERS * np.asarray(size, float)
        if R is not None:
            v = v @ np.asarray(R).T
        self._add(v + np.asarray(center, float), _BOX_FACES.copy(), mat)
        return self

    def box_span(self, lo, hi, mat: int = 0) -> MeshBuilder:
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        return self.box((lo + hi) / 2, hi - lo, mat)

    def cylinder(self, center, radius: float, depth: float, mat: int = 0, axis: str = "z",
                 segments: int = 12, radius_top: float | None = None, cap: bool = True,
                 R: np.ndarray | None = None) -> MeshBuilder:
        rt = radius if radius_top is None else radius_top
        a = np.linspace(0, 2 * math.pi, segments, endpoint=False)
        ring = np.c_[np.cos(a), np.sin(a)]
        bottom = np.c_[ring * radius, np.full(segments, -depth / 2)]
        top = np.c_[ring * rt, np.full(segments, depth / 2)]
        v = np.concatenate([bottom, top])
        if axis == "x":
            v = v[:, [2, 1, 0]]
        elif axis == "y":
            v = v[:, [0, 2, 1]]
        if R is not None:
            v = v @ np.asarray(R).T
        i = np.arange(segments)
        j = (i + 1) % segments
        sides = np.c_[i, j, j + segments, i + segments]
        faces = [sides]
        if cap:
            faces.append(_fan(np.arange(segments)[::-1]))
            if rt > 1e-6:
                faces.append(_fan(np.arange(segments) + segments))
        self._add(v + np.asarray(center, float), np.concatenate(faces), mat)
        return self

    def dome(self, center, radius: float, mat: int = 0, rings: int = 4, segments: int = 12,
             R: np.ndarray | None = None, squash: float = 1.0) -> MeshBuilder:
        """Upper hemisphere (open at the bottom) — hard-hat shells."""
        verts, faces = [], []
        for r in range(rings + 1):
            el = (math.pi / 2) * r / rings
            for s in range(segments):
                az = 2 * math.pi * s / segments
                verts.append([radius * math.cos(el) * math.cos(az), radius * math.cos(el) * math.sin(az),
                              squash * radius * math.sin(el)])
        for r in range(rings):
            for s in range(segments):
                a, b = r * segments + s, r * segments + (s + 1) % segments
                faces.append([a, b, b + segments, a + segments])
        v = np.array(verts)
        if R is not None:
            v = v @ np.asarray(R).T
        self._add(v + np.asarray(center, float), np.array(faces), mat)
        return self

    def build(self, name: str, materials: Sequence) -> bpy.types.Mesh:
        verts = np.concatenate(self.verts).astype(np.float32)
        faces = np.concatenate(self.faces)
        mats = np.concatenate(self.mats)
        sizes = (faces >= 0).sum(1)
        loops = faces[faces >= 0].astype(np.int32)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32)
        me = bpy.data.meshes.new(name)
        me.vertices.add(len(verts))
        me.vertices.foreach_set("co", verts.ravel())
        me.loops.add(len(loops))
        me.loops.foreach_set("vertex_index", loops)
        me.polygons.add(len(faces))
        me.polygons.foreach_set("loop_start", starts)
        metric, unit = _face_uvs(verts.astype(np.float64), faces, loops, starts)
        for uv_name, uv in (("UVMap", metric), ("face01", unit)):
            me.uv_layers.new(name=uv_name).data.foreach_set("uv", uv.astype(np.float32).ravel())
        for m in materials:
            me.materials.append(m)
        me.polygons.foreach_set("material_index", np.clip(mats, 0, max(0, len(materials) - 1)))
        me.update(calc_edges=True)
        me.validate(clean_customdata=False)
        return me


def _face_uvs(verts: np.ndarray, faces: np.ndarray, loops: np.ndarray,
              starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two UV layers per loop, for materials (blender/materials): "UVMap" in metres in each
    face's own plane (first edge = u; tiles a user's PBR set at its true size, with tangents
    for its normal map) and "face01", the same stretched to 0..1 over each face (a carton's
    tape and label sit at the same place whatever its size). On box sides v points up."""
    v0, v1, v2 = verts[faces[:, 0]], verts[faces[:, 1]], verts[faces[:, 2]]
    e1 = v1 - v0
    e1 /= np.maximum(np.linalg.norm(e1, axis=1, keepdims=True), 1e-12)
    n = np.cross(v1 - v0, v2 - v0)
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    e2 = np.cross(n, e1)
    face_of_loop = np.repeat(np.arange(len(faces)), (faces >= 0).sum(1))
    pts = verts[loops]
    metric = np.c_[(pts * e1[face_of_loop]).sum(1), (pts * e2[face_of_loop]).sum(1)]
    lo = np.minimum.reduceat(metric, starts, axis=0)
    hi = np.maximum.reduceat(metric, starts, axis=0)
    unit = (metric - lo[face_of_loop]) / np.maximum(hi - lo, 1e-9)[face_of_loop]
    return metric, unit


def _fan(idx: np.ndarray) -> np.ndarray:
    """Triangles fanning a ring (padded to 4 columns with -1)."""
    tris = np.c_[np.full(len(idx) - 2, idx[0]), idx[1:-1], idx[2:]]
    return np.c_[tris, np.full(len(tris), -1)]


def alive(meshes) -> bool:
    """False once Blender freed any of these meshes (a factory reset or a file load between
    jobs): process-level mesh caches check this before handing out what they hold."""
    try:
        return all(bpy.data.meshes.get(m.name) == m for m in meshes)
    except ReferenceError:
        return False


def collection() -> bpy.types.Collection:
    coll = bpy.data.collections.get(COLLECTION)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION)
    if coll.name not in bpy.context.scene.collection.children:
        bpy.context.scene.collection.children.link(coll)
    return coll


def add_object(name: str, data, location=(0, 0, 0), yaw: float = 0.0, rotation=None,
               scale=None, pass_index: int = 0) -> bpy.types.Object:
    ob = bpy.data.objects.new(name, data)
    ob.location = tuple(float(v) for v in location)
    ob.rotation_euler = tuple(float(v) for v in rotation) if rotation is not None else (0.0, 0.0, float(yaw))
    if scale is not None:
        ob.scale = tuple(float(v) for v in scale)
    ob.pass_index = pass_index
    collection().objects.link(ob)
    return ob
