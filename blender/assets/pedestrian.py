"""Pedestrians: posed human meshes from the library (pipeline.humans) dressed per plan.

Clothing is materials by body region (the OBJ's usemtl groups: skin, hair, eyes, shirt,
forearm, trousers, shoes), plus a hi-vis vest shell and a hard hat as separate objects
of the same instance. A carried carton is an unlabelled prop, not part of the person.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np

from blender.materials import Materials
from blender.meshes import MeshBuilder, add_object, rot_z
from blender.plan.scene_plan import Person
from pipeline.humans import load_human_index

_INDEX_CACHE: dict[tuple[str, float], dict[str, dict]] = {}


def human_index(humans_dir: Path) -> dict[str, dict]:
    """mesh id -> index record (cached per process; reloaded when index.json changes)."""
    path = Path(humans_dir) / "index.json"
    key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else 0.0)
    if key not in _INDEX_CACHE:
        _INDEX_CACHE[key] = {m["id"]: m for m in load_human_index(humans_dir)}
    return _INDEX_CACHE[key]


def pick_mesh(index: dict[str, dict], person: Person) -> tuple[dict, float]:
    """The library mesh of a planned person and the scale to apply to it."""
    if person.mesh_id:
        rec = index.get(person.mesh_id)
        if rec is None:
            raise KeyError(f"mesh {person['mesh_id']!r} is not in the human library")
        return rec, 1.0
    pool = [m for m in index.values() if m["pose"] == person.pose] or list(index.values())
    rec = min(pool, key=lambda m: (abs(m["stature"] - person.height), m["id"]))
    return rec, person.height / rec["stature"]


class HumanMeshes:
    """Imports each library OBJ at most once per frame; persons share meshes (object-linked materials)."""

    def __init__(self, humans_dir: Path):
        self.dir = Path(humans_dir)
        self.index = human_index(self.dir)
        self._meshes: dict[str, tuple[bpy.types.Mesh, list[str]]] = {}

    def preload(self, persons: list[Person]) -> None:
        for p in persons:
            rec, _ = pick_mesh(self.index, p)
            self.get(rec["file"])
            if p.vest:
                self.get(rec["vest_file"])

    def get(self, filename: str) -> tuple[bpy.types.Mesh, list[str]]:
        if filename not in self._meshes:
            path = self.dir / filename
            if not path.is_file():
                raise FileNotFoundError(f"{path}: human mesh missing (re-run `make humans`)")
            bpy.ops.wm.obj_import(filepath=str(path))
            ob = bpy.context.selected_objects[-1]
            me = ob.data
            me.transform(ob.matrix_basis)  # the importer's Y-up -> Z-up rotation, baked in
            regions = [m.name.split(".")[0] if m else "" for m in me.materials]
            imported = [m for m in me.materials if m]
            bpy.data.objects.remove(ob)
            for m in imported:  # region placeholders; persons get object-linked materials
                bpy.data.materials.remove(m)
            self._meshes[filename] = (me, regions)
        return self._meshes[filename]


def _dress(ob: bpy.types.Object, regions: list[str], looks: dict[str, bpy.types.Material]) -> None:
    for slot, region in zip(ob.material_slots, regions, strict=True):
        slot.link = "OBJECT"
        slot.material = looks.get(region, looks["skin"])


def _up_frame(up) -> np.ndarray:
    z = np.asarray(up, float) / np.linalg.norm(up)
    x = np.cross([0.0, 1.0, 0.0], z)
    x /= np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def hard_hat_mesh(rec: dict, materials: list) -> bpy.types.Mesh:
    r = rec["head_radius"] * 1.1
    R = _up_frame(rec["head_up"])
    up = R[:, 2]
    base = np.asarray(rec["head_center"]) + up * r * 0.2
    mb = MeshBuilder()
    mb.dome(base, r, 0, rings=4, segments=14, R=R, squash=0.8)
    mb.cylinder(base, r * 1.04, 0.01, 0, segments=14, R=R)                               # rim
    mb.box(base + R @ np.array([0.0, -r * 1.0, -0.01]), (r * 0.95, r * 0.4, 0.01), 0, R=R)  # peak over the face (-Y)
    mb.box(base + up * r * 0.72, (0.025, r * 1.5, 0.025), 0, R=R)                        # ridge
    return mb.build(f"hard_hat_{rec['id']}", materials)


def build_pedestrian(p: Person, index: int, instance_id: int, mats: Materials,
                     humans: HumanMeshes) -> tuple[list, list]:
    """-> (parts of the labelled instance, unlabelled props it carries)."""
    rec, scale = pick_mesh(humans.index, p)
    skin = mats.plain(f"skin_{index}", p.skin, roughness=0.5)
    shirt = mats.plain(f"shirt_{index}", p.shirt, roughness=0.85, specular=0.3)
    looks = {"skin": skin, "hair": mats.plain(f"hair_{index}", p.hair, roughness=0.55),
             "eyes": mats.plain("eyes", (0.05, 0.04, 0.04), roughness=0.2),
             "shirt": shirt, "forearm": shirt if p.long_sleeves else skin,
             "trousers": mats.plain(f"trousers_{index}", p.trousers, roughness=0.85, specular=0.3),
             "shoes": mats.plain(f"shoes_{index}", p.shoes, roughness=0.6)}
    rot = (0.0, 0.0, p.yaw + math.pi / 2)  # library meshes face -Y; plan yaw 0 faces +X
    loc = (p.x, p.y, p.z)
    sc = (scale, scale, scale)
    me, regions = humans.get(rec["file"])
    body = add_object(f"pedestrian_{index}", me, location=loc, rotation=rot, scale=sc, pass_index=instance_id)
    _dress(body, regions, looks)
    parts = [body]
    if p.vest:
        vme, vregions = humans.get(rec["vest_file"])
        vest = add_object(f"pedestrian_{index}_vest", vme, location=loc, rotation=rot, scale=sc,
                          pass_index=instance_id)
        _dress(vest, vregions, {
            "vest": mats.plain(f"vest_{index}", p.vest_color, roughness=0.75, emission=0.15),
            "stripe": mats.plain("vest_stripe", (0.8, 0.8, 0.8), roughness=0.3, metallic=0.7),
            "skin": skin})
        parts.append(vest)
    if p.hard_hat:
        hat = mats.plain(f"hat_{index}", p.hat_color, roughness=0.3, coat=0.5)
        parts.append(add_object(f"pedestrian_{index}_hat", hard_hat_mesh(rec, [hat]), location=loc,
                                rotation=rot, scale=sc, pass_index=instance_id))
    carried = []
    if p.carry_box and rec.get("carry_point"):
        box = p.carry_box
        cp = rot_z(rot[2]) @ (np.asarray(rec["carry_point"]) * scale) + np.asarray(loc)
        mb = MeshBuilder().box((0, 0, 0), box.size, 0)
        carton = mats.plain(f"carton_{index}", box.color, roughness=0.8)
        carried.append(add_object(f"pedestrian_{index}_carton", mb.build(f"carton_{index}", [carton]),
                                  location=cp, yaw=rot[2]))
    return parts, carried
