"""Pedestrians: posed human meshes from the library (pipeline.humans) dressed per plan.

Clothing is materials by body region (the OBJ's usemtl groups: skin, hair, eyes, shirt,
forearm, trousers, shoes), plus a hi-vis vest shell and a hard hat as separate objects
of the same instance. A carried carton is an unlabelled prop, not part of the person.

Plans of version 4 dress people further (Person.outfit, docs/people.md): fabric patterns and
a print (blender/materials/fabric.py), shorts and gloves (two regions split off at import:
`shins`, the trousers below a shorts hem, and `hands`, the skin far from the head), and a
`gear` object of the same instance holding a cap, safety glasses and hair pieces (bun,
ponytail, volume), placed from the mesh's own eyes and head.
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np

from blender.materials import Materials, fabric
from blender.meshes import MeshBuilder, add_object, alive, rot_z
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


# a standing library body's head_up leans this far forward of the face's own up (neck behind the head)
HEAD_UP_LEAN_DEG = 15.5
SHORTS_HEM = 0.33             # of stature: hem height of shorts, a hand above the knee
HAND_HEAD_RADII = 3.0         # skin faces farther than this many head radii from the head are hands
EXTRA_REGIONS = ("hands", "shins")
CAP_TILT_RAD = 0.35           # a cap's dome leans back this far
VOLUME_TILT_RAD = 0.5         # a full head of hair: a dome over the crown, tilted back


def _rotate(v: np.ndarray, axis: np.ndarray, deg: float) -> np.ndarray:
    k = axis / np.linalg.norm(axis)
    a = math.radians(deg)
    return v * math.cos(a) + np.cross(k, v) * math.sin(a) + k * (k @ v) * (1 - math.cos(a))


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / max(float(np.linalg.norm(v)), 1e-9)


def mesh_anchors(rec: dict, centers: np.ndarray, regions: np.ndarray, names: list[str]) -> dict:
    """Where accessories and prints go on one library mesh (its own frame): the face frame
    (lat, fwd, up) and eye point from the eye faces, the chest and back print points and the
    torso axis from the shirt faces. Falls back to the record's head when a region is missing."""
    def faces(region):
        return centers[regions == names.index(region)] if region in names else centers[:0]

    head = np.asarray(rec["head_center"], float)
    r = float(rec.get("head_radius", 0.11))
    eyes = faces("eyes")
    lat = np.array([1.0, 0.0, 0.0])
    if len(eyes) >= 4:
        mid = eyes.mean(0)
        left, right = eyes[eyes[:, 0] > mid[0]], eyes[eyes[:, 0] <= mid[0]]
        if len(left) and len(right):
            lat = _unit(left.mean(0) - right.mean(0))
    up = _rotate(_unit(rec.get("head_up", (0, 0, 1))), lat, -HEAD_UP_LEAN_DEG)
    up = _unit(up - lat * (lat @ up))
    fwd = np.cross(lat, up)                                   # -Y for an upright library body
    if len(eyes) >= 4:
        mid = eyes.mean(0)
        front = float(((eyes - mid) @ fwd).max())
        eye = mid + fwd * front
    else:
        eye = head + fwd * r * 0.95 + up * r * 0.25
    out = {"head": head, "r": r, "lat": lat, "up": up, "fwd": fwd, "eye": eye}
    shirt = faces("shirt")
    torso = shirt[np.abs(shirt[:, 0] - head[0]) < 0.08] if len(shirt) else shirt
    if len(torso) >= 8:
        lo, hi = np.percentile(torso[:, 2], [15, 85])
        axis = _unit(torso[torso[:, 2] >= hi].mean(0) - torso[torso[:, 2] <= lo].mean(0))
        t = (torso - torso.mean(0)) @ axis
        front_dir = np.cross([1.0, 0.0, 0.0], axis)
        for place, q in (("chest", 60), ("back", 66)):
            level = np.percentile(t, q)
            band = torso[np.abs(t - level) < 0.04]
            band = band if len(band) else torso
            depth = band @ front_dir
            pick = band[depth.argmax()] if place == "chest" else band[depth.argmin()]
            out[place] = torso.mean(0) + axis * level + front_dir * float((pick - torso.mean(0)) @ front_dir)
        out["torso_up"] = axis
    else:
        out["chest"] = out["back"] = head - up * r * 3.5
        out["torso_up"] = np.array([0.0, 0.0, 1.0])
    return out


def extra_regions(rec: dict, centers: np.ndarray, regions: np.ndarray, names: list[str]) -> np.ndarray:
    """Per-face region indices with `hands` and `shins` (indices len(names), len(names) + 1) split
    off the skin and the trousers; faces of neither keep their region."""
    out = regions.copy()
    stature = float(rec.get("stature", rec.get("height", 1.75)))
    if "skin" in names:
        skin = regions == names.index("skin")
        far = np.linalg.norm(centers - np.asarray(rec["head_center"], float), axis=1) > (
            HAND_HEAD_RADII * float(rec.get("head_radius", 0.11)))
        out[skin & far] = len(names)
    if "trousers" in names:
        legs = regions == names.index("trousers")
        y, z = centers[:, 1], centers[:, 2]
        if rec.get("pose") == "crouch":   # thighs run forward (-Y), shins down from the knees
            bare = (y < -0.125 * stature) | ((z < 0.2 * stature) & (y < -0.05 * stature))
        else:
            bare = z < SHORTS_HEM * stature
        out[legs & bare] = len(names) + 1
    return out


_LIBRARIES: dict[tuple[str, float], HumanMeshes] = {}


def human_meshes(humans_dir: Path | str) -> HumanMeshes:
    """The process's mesh cache of one library (renewed when its index.json changes). OBJ
    import was the costliest step of a frame's build (~0.25 s of ~0.55): imported bodies
    now outlive the frame (fake user, so clear_scene leaves them) and the library's meshes
    are each imported once per job."""
    path = Path(humans_dir) / "index.json"
    key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else 0.0)
    if key not in _LIBRARIES:
        _LIBRARIES[key] = HumanMeshes(Path(humans_dir))
    return _LIBRARIES[key]


class HumanMeshes:
    """Imports each library OBJ at most once (again only if Blender freed it); persons share
    meshes (object-linked materials), so a mesh is never changed after import."""

    def __init__(self, humans_dir: Path):
        self.dir = Path(humans_dir)
        self.index = human_index(self.dir)
        self._meshes: dict[str, tuple[bpy.types.Mesh, list[str]]] = {}
        self.anchors: dict[str, dict] = {}

    def preload(self, persons: list[Person]) -> None:
        for p in persons:
            rec, _ = pick_mesh(self.index, p)
            self.get(rec["file"], rec)
            if p.vest:
                self.get(rec["vest_file"])

    def get(self, filename: str, rec: dict | None = None) -> tuple[bpy.types.Mesh, list[str]]:
        """The mesh of `filename` and its region per material slot; a body (given its `rec`) also
        gets the `hands` and `shins` slots and its anchors (self.anchors[filename])."""
        if filename not in self._meshes or not alive([self._meshes[filename][0]]):
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
            if rec is not None:
                n = len(me.polygons)
                centers = np.empty(n * 3)
                me.polygons.foreach_get("center", centers)
                centers = centers.reshape(n, 3)
                index = np.empty(n, dtype=np.int32)
                me.polygons.foreach_get("material_index", index)
                self.anchors[filename] = mesh_anchors(rec, centers, index, regions)
                split = extra_regions(rec, centers, index, regions)
                for _ in EXTRA_REGIONS:
                    me.materials.append(None)
                me.polygons.foreach_set("material_index", split.astype(np.int32))
                regions = regions + list(EXTRA_REGIONS)
                set_cloth_coordinates(me, self.dir / rec["cloth_file"] if rec.get("cloth_file") else None)
            me.use_fake_user = True
            self._meshes[filename] = (me, regions)
        return self._meshes[filename]


def set_cloth_coordinates(me: bpy.types.Mesh, path: Path | None) -> None:
    """The mesh's `cloth` attribute (fabric.CLOTH_ATTRIBUTE): each vertex where it sits on the body
    standing straight (the library's `bNNNN_cloth.npy`), so fabric patterns stay on the cloth as
    limbs move; a library made before those files: the vertex's own place (patterns projected)."""
    n = len(me.vertices)
    if path is None:
        co = np.empty(n * 3, dtype=np.float32)
        me.vertices.foreach_get("co", co)
    else:
        try:
            co = np.load(path).astype(np.float32)
        except (OSError, ValueError) as e:
            raise FileNotFoundError(f"{path}: unreadable cloth coordinates ({e}); re-run `make humans`") from e
        if co.shape != (n, 3):
            raise ValueError(f"{path}: expected cloth coordinates of shape ({n}, 3), got {co.shape}; re-run `make humans`")
        co = co.ravel()
    me.attributes.new(fabric.CLOTH_ATTRIBUTE, "FLOAT_VECTOR", "POINT").data.foreach_set("vector", co)


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


def _gear_frame(a: dict) -> np.ndarray:
    """Columns: the head's lateral, backward and up axes (MeshBuilder's R; -Y is the face's forward)."""
    return np.stack([a["lat"], -a["fwd"], a["up"]], axis=1)


def _sphere(mb: MeshBuilder, center, radius: float, mat: int, R: np.ndarray, down: float = 1.0) -> None:
    """Two domes: a closed blob, its lower half stretched by `down` (a ponytail hangs)."""
    mb.dome(center, radius, mat, rings=3, segments=10, R=R)
    flip = R @ np.diag([1.0, -1.0, -1.0])
    mb.dome(center, radius, mat, rings=3, segments=10, R=flip, squash=down)


def gear_mesh(name: str, a: dict, outfit, hard_hat: bool, materials: list) -> bpy.types.Mesh | None:
    """Cap, safety glasses and hair pieces of one person, one mesh in the library mesh's frame.
    Material slots: 0 hair, 1 cap, 2 glasses frame, 3 lenses."""
    mb = MeshBuilder()
    R = _gear_frame(a)
    head, r, up, fwd, lat = a["head"], a["r"], a["up"], a["fwd"], a["lat"]
    covered = hard_hat or outfit.cap is not None
    # the skull's centre: behind and above the head's mean point (the face pulls that forward);
    # measured on library heads: hair reaches 1.36 r behind the head centre and 1.27 r above it
    cranium = head + up * r * 0.3 - fwd * r * 0.2
    if outfit.hair_style == "bun":
        _sphere(mb, head - fwd * r * 1.45 + up * r * 0.5, 0.042, 0, R)
    elif outfit.hair_style == "ponytail":
        _sphere(mb, head - fwd * r * 1.4 - up * r * 0.1, 0.033, 0, R, down=2.8)
    elif outfit.hair_style == "volume" and not covered:
        back = np.stack([lat, -fwd, up], axis=1)
        c, s = math.cos(VOLUME_TILT_RAD), math.sin(VOLUME_TILT_RAD)
        tilt = np.array([[1, 0, 0], [0, c, s], [0, -s, c]])                # its axis leans back: hairline up front
        mb.dome(cranium, r * 1.22, 0, rings=4, segments=14, R=back @ tilt)
    if outfit.cap is not None and not hard_hat:
        # a shallow dome leaning back (its front edge on the forehead, the back one low on the
        # head) and a peak from the front edge, over the eyes
        c, s = math.cos(CAP_TILT_RAD), math.sin(CAP_TILT_RAD)
        tilted = R @ np.array([[1, 0, 0], [0, c, s], [0, -s, c]])
        mb.dome(cranium, r * 1.2, 1, rings=4, segments=14, R=tilted, squash=0.9)
        edge = cranium + (fwd * c + up * s) * r * 1.2
        mb.box(edge + fwd * r * 0.45 - up * r * 0.04, (r * 1.35, r * 0.95, 0.008), 1, R=R)
    if outfit.glasses is not None:
        eye = a["eye"] + fwd * 0.012
        mb.box(eye, (0.15, 0.006, 0.042), 3, R=R)                          # one wrap-around lens
        mb.box(eye + up * 0.022, (0.152, 0.01, 0.008), 2, R=R)             # brow bar
        for side in (-1.0, 1.0):                                           # temples back to the ears
            mb.box(eye + lat * side * 0.077 - fwd * 0.055 + up * 0.012, (0.006, 0.11, 0.008), 2, R=R)
    if not mb.verts:
        return None
    return mb.build(name, materials)


def build_pedestrian(p: Person, index: int, instance_id: int, mats: Materials,
                     humans: HumanMeshes) -> tuple[list, list]:
    """-> (parts of the labelled instance, unlabelled props it carries)."""
    rec, scale = pick_mesh(humans.index, p)
    me, regions = humans.get(rec["file"], rec)
    anchors = humans.anchors.get(rec["file"])
    o = p.outfit
    skin = mats.plain(f"skin_{index}", p.skin, roughness=0.5)
    if o is not None and o.shirt is not None:
        place = o.print.place if o.print is not None else "chest"
        shirt = fabric.garment(f"shirt_{index}", o.shirt, o.print if anchors else None,
                               anchors[place] if anchors else None, anchors["torso_up"] if anchors else (0, 0, 1))
    else:
        shirt = mats.plain(f"shirt_{index}", p.shirt, roughness=0.85, specular=0.3)
    if o is not None and o.trousers is not None:
        trousers = fabric.garment(f"trousers_{index}", o.trousers)
    else:
        trousers = mats.plain(f"trousers_{index}", p.trousers, roughness=0.85, specular=0.3)
    hair = mats.plain(f"hair_{index}", p.hair, roughness=0.55)
    if o is not None and o.hair_style == "shaved":
        hair = mats.plain(f"stubble_{index}", [c * 0.8 for c in p.skin], roughness=0.6)
    looks = {"skin": skin, "hair": hair,
             "eyes": mats.plain("eyes", (0.05, 0.04, 0.04), roughness=0.2),
             "shirt": shirt, "forearm": shirt if p.long_sleeves else skin,
             "trousers": trousers, "shins": skin if (o is not None and o.shorts) else trousers,
             "hands": skin if (o is None or o.gloves is None) else mats.plain(
                 f"gloves_{index}", o.gloves, roughness=0.8, specular=0.3),
             "shoes": mats.plain(f"shoes_{index}", p.shoes, roughness=0.6)}
    rot = (0.0, 0.0, p.yaw + math.pi / 2)  # library meshes face -Y; plan yaw 0 faces +X
    loc = (p.x, p.y, p.z)
    sc = (scale, scale, scale)
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
    if o is not None and anchors is not None:
        gear_mats = [hair,
                     mats.plain(f"cap_{index}", o.cap or (0.5, 0.5, 0.5), roughness=0.8, specular=0.3),
                     mats.plain("glasses_frame", (0.04, 0.04, 0.045), roughness=0.35),
                     mats.plain(f"lens_{index}", o.glasses or (0.5, 0.5, 0.5), roughness=0.05, coat=1.0)]
        gme = gear_mesh(f"gear_{index}", anchors, o, p.hard_hat, gear_mats)
        if gme is not None:   # the same pass index: cap, glasses and hair are part of the person's mask
            parts.append(add_object(f"pedestrian_{index}_gear", gme, location=loc, rotation=rot, scale=sc,
                                    pass_index=instance_id))
    carried = []
    if p.carry_box and rec.get("carry_point"):
        box = p.carry_box
        cp = rot_z(rot[2]) @ (np.asarray(rec["carry_point"]) * scale) + np.asarray(loc)
        mb = MeshBuilder().box((0, 0, 0), box.size, 0)
        carton = mats.plain(f"carton_{index}", box.color, roughness=0.8)
        carried.append(add_object(f"pedestrian_{index}_carton", mb.build(f"carton_{index}", [carton]),
                                  location=cp, yaw=rot[2]))
    return parts, carried
