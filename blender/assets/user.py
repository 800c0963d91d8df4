"""A site's own models (render config `assets:`): imported once per job, placed per plan.

Each file is imported once (glTF/GLB, OBJ, FBX through Blender's importers, .blend by
appending its objects), every renderable part is baked into a mesh in the asset's own frame
(modifiers applied, its transform in the hierarchy applied) and kept with a fake user, and
the imported objects are deleted. A placed copy is new objects sharing those meshes, so a
frame costs no import. All parts of a labelled copy carry one pass index: one instance.

The asset's frame: Blender's axes after import (Z up; the glTF and OBJ importers convert
Y-up files), its local +X is its front (the plan's yaw turns it); the copy stands with its
bounding box centred on the plan's (x, y) and its lowest point on the floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import bpy
import numpy as np

from blender.meshes import add_object, alive
from blender.plan.scene_plan import UserAsset
from blender.plan.site import AssetSpec
from pipeline.common import UserError

RENDERABLE = {"MESH", "CURVE", "SURFACE", "META", "FONT"}


@dataclass
class LoadedAsset:
    meshes: list                 # bpy meshes in the asset's frame (fake users: they outlive frames)
    lo: np.ndarray               # bounding box of all parts, unscaled
    hi: np.ndarray


_LIBRARY: dict[tuple, LoadedAsset] = {}


def _import(path: Path) -> list:
    """Blender objects the file brought in (linked into the scene so they can be evaluated)."""
    suffix = path.suffix.lower()
    before = set(bpy.data.objects)
    if suffix == ".blend":
        with bpy.data.libraries.load(str(path), link=False) as (src, dst):
            dst.objects = list(src.objects)
        for ob in dst.objects:
            if ob is not None and ob.name not in bpy.context.scene.collection.objects:
                bpy.context.scene.collection.objects.link(ob)
    elif suffix in (".glb", ".gltf"):
        bpy.ops.import_scene.gltf(filepath=str(path))
    elif suffix == ".obj":
        bpy.ops.wm.obj_import(filepath=str(path))
    elif suffix == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path))
    else:
        raise UserError(f"{path}: expected a .blend, .glb, .gltf, .obj or .fbx file")
    return [ob for ob in bpy.data.objects if ob not in before]


def load_asset(path: str | Path) -> LoadedAsset:
    """The baked parts of one file (cached per path and modification time)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise UserError(f"{path}: asset file not found") from None
    key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    if key in _LIBRARY and alive(_LIBRARY[key].meshes):
        return _LIBRARY[key]
    try:
        objects = _import(p)
    except (RuntimeError, OSError, ValueError, TypeError) as e:
        # the importers report a bad file as an operator error: keep its first line only
        first = next((ln.strip() for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise UserError(f"{path}: cannot import this {p.suffix.lower()} file ({first})") from None
    try:
        bpy.context.view_layer.update()
        depsgraph = bpy.context.evaluated_depsgraph_get()
        meshes = []
        for ob in objects:
            if ob.type not in RENDERABLE or ob.hide_render:
                continue
            ev = ob.evaluated_get(depsgraph)
            me = bpy.data.meshes.new_from_object(ev, preserve_all_data_layers=True, depsgraph=depsgraph)
            me.transform(ev.matrix_world)
            if len(me.vertices) == 0 or len(me.polygons) == 0:
                bpy.data.meshes.remove(me)
                continue
            me.use_fake_user = True
            meshes.append(me)
    finally:
        bpy.data.batch_remove(objects)
    if not meshes:
        raise UserError(f"{path}: holds no mesh with faces to render")
    co = np.concatenate([_coords(me) for me in meshes])
    asset = LoadedAsset(meshes, co.min(0), co.max(0))
    _LIBRARY[key] = asset
    return asset


def _coords(me) -> np.ndarray:
    co = np.empty(len(me.vertices) * 3, dtype=np.float64)
    me.vertices.foreach_get("co", co)
    return co.reshape(-1, 3)


def measure_assets(configs: Sequence) -> list[AssetSpec]:
    """`assets:` entries (blender.job_config.AssetConfig) -> specs with their scaled size."""
    specs = []
    for c in configs:
        a = load_asset(c.path)
        size = tuple(round(float(v) * c.scale, 4) for v in a.hi - a.lo)
        if min(size[:2]) <= 0:
            raise UserError(f"{c.path}: has no floor footprint (its bounding box is {list(size)} m)")
        specs.append(AssetSpec(path=c.path, category=c.category, scale=c.scale, size=size,
                               count=tuple(c.count), placement=c.placement))
    return specs


def placement_matrix(a: UserAsset, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """4x4: asset frame -> world (bounding-box centre onto (x, y), lowest point onto the floor)."""
    centre = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])
    c, s = np.cos(a.yaw), np.sin(a.yaw)
    m = np.eye(4)
    m[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) * a.scale
    m[:3, 3] = np.array([a.x, a.y, 0.0]) - m[:3, :3] @ centre
    return m


def build_user_asset(a: UserAsset, index: int, instance_id: int) -> list:
    """Objects of one placed copy; every part carries `instance_id` (0: unlabelled)."""
    from mathutils import Matrix

    lib = load_asset(a.path)
    mw = Matrix(placement_matrix(a, lib.lo, lib.hi).tolist())
    parts = []
    for k, me in enumerate(lib.meshes):
        ob = add_object(f"asset_{index}_{k}", me, pass_index=instance_id)
        ob.matrix_world = mw
        parts.append(ob)
    return parts
