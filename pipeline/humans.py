"""Human mesh library: posed `anny` bodies written as OBJ files for the Blender side.

    python -m pipeline.humans --out assets_cache/humans --count 24 --seed 0 [--shapes standard|wide]

Each mesh i gets a body shape (body i // 2: two poses per body) and a pose (walk phases,
stand, carry, bend, crouch, push) decided only by (seed, i), so a run can be resumed or extended
(--count larger) and reproduces the same files. A walk or push mesh also gets the other phases
of its walk cycle (`hNNNNpK`, phase K / CYCLE_PHASES: same body, same pose jitter), so a walker
in a clip keeps one body from the first frame to the last; renders of still frames never pick
them. Per mesh: `<id>.obj` (faces grouped by
clothing region with `usemtl`), `<id>_vest.obj` (a hi-vis vest shell offset along the
normals, with reflective stripes) and `<id>.json`; `index.json` lists them all.
Files are written atomically and existing meshes are skipped. `--shapes wide` draws bodies from
a wider range of build, age and stature (SHAPES; docs/people.md); a library keeps the range it
was made with.

OBJ axes are Y-up (x, z, -y), so Blender's default OBJ import gives Z-up, feet at z = 0,
the person facing -Y; all coordinates in index.json are in that Blender frame.
Lives in pipeline/ because anny needs torch (blender/ never imports torch).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pipeline.common import (
    UserError,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    ensure_writable_dir,
    read_json,
    run_cli,
)

LIBRARY_VERSION = 1
REGIONS = ["skin", "hair", "eyes", "shirt", "forearm", "trousers", "shoes"]
VEST_REGIONS = ["vest", "stripe"]
# (pose, walk phase): the order meshes cycle through; every pose appears in any 12 meshes
POSE_CYCLE = [("walk", 0.0), ("stand", 0.0), ("carry", 0.0), ("walk", 0.5), ("bend", 0.0),
              ("push", 0.0), ("walk", 0.25), ("crouch", 0.0), ("stand", 1.0), ("walk", 0.75),
              ("carry", 1.0), ("push", 0.5)]
MTL = "".join(f"newmtl {n}\nKd {c}\n\n" for n, c in zip(
    REGIONS + VEST_REGIONS,
    ["0.8 0.6 0.5", "0.1 0.07 0.05", "0.05 0.05 0.05", "0.2 0.3 0.6", "0.2 0.3 0.6",
     "0.1 0.1 0.2", "0.05 0.05 0.05", "0.8 1.0 0.1", "0.8 0.8 0.8"], strict=False))

# the files of one mesh; besides them each body has one `bNNNN_cloth.npy` (cloth_file), shared
# by its poses and walk phases. A library made before that is remade whole on the next run.
MESH_FILES = (".obj", "_vest.obj", ".json")
# phases of a walk cycle (two steps) a walk or push mesh gets: at 10 fps and ~1.2 m/s a cycle
# is ~11 frames, so 8 phases change the legs every frame or two instead of every third
CYCLE_PHASES = 8
CYCLE_POSES = ("walk", "push")

SHIRT_BONES = ("spine", "clavicle", "shoulder", "upperarm", "neck01")
FOREARM_BONES = ("lowerarm",)
TROUSER_BONES = ("root", "pelvis", "upperleg", "lowerleg")
SHOE_BONES = ("foot", "toe")
VEST_BONES = ("spine", "clavicle", "pelvis", "root")


# ---------------------------------------------------------------- body and pose

# Body-shape ranges of `--shapes` (anny phenotype parameters, 0..1): the share of women, the
# ranges of age (2/3 young adult, 1 old), muscle, weight and proportions, the spread of stature
# around the adult means (x its standard deviation) and the stature limits in metres.
# `standard` is the range every library so far was made with; `wide` adds very slim and heavy,
# less and more muscular, older and shorter/taller workers.
SHAPES = {
    "standard": {"female": 0.4, "age": (0.5, 0.85), "muscle": (0.3, 0.75), "weight": (0.25, 0.8),
                 "proportions": (0.3, 0.7), "stature_sd": 1.0, "stature": (1.52, 1.93)},
    "wide": {"female": 0.45, "age": (0.45, 0.97), "muscle": (0.1, 0.95), "weight": (0.05, 1.0),
             "proportions": (0.15, 0.85), "stature_sd": 1.35, "stature": (1.45, 2.0)},
}


def sample_phenotype(rng: np.random.Generator, shapes: str = "standard") -> tuple[dict[str, float], float]:
    """Adult working-age shape and a target stature (m) drawn from adult height statistics
    (the same draws, in the same order, whatever the `shapes` range)."""
    r = SHAPES[shapes]
    female = rng.random() < r["female"]
    pheno = {
        "gender": float(rng.uniform(0.75, 1.0) if female else rng.uniform(0.0, 0.25)),
        "age": float(rng.uniform(*r["age"])),
        "muscle": float(rng.uniform(*r["muscle"])),
        "weight": float(rng.uniform(*r["weight"])),
        "height": 0.4,
        "proportions": float(rng.uniform(*r["proportions"])),
    }
    sd = r["stature_sd"]
    stature = rng.normal(1.63, 0.075 * sd) if female else rng.normal(1.76, 0.08 * sd)
    return pheno, float(np.clip(stature, *r["stature"]))


def _rot(axis: str, deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    m = np.eye(4)
    m[i, i] = m[j, j] = c
    m[i, j], m[j, i] = -s, s
    return m


def pose_angles(pose: str, phase: float, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
    """Bone -> 4x4 rotation (anny 'local-ref': world-aligned axes; about +X a negative angle
    swings a hanging limb forward, a positive one bends the spine forward). rng None: no jitter."""
    j = lambda s=4.0: 0.0 if rng is None else float(rng.normal(0, s))  # noqa: E731 - small per-mesh variation
    arm_down = 48 + j(4)
    out: dict[str, np.ndarray] = {}

    def arms(swing_l: float, swing_r: float, elbow_l: float, elbow_r: float, down: float = arm_down):
        out["upperarm01.L"] = _rot("x", swing_l) @ _rot("y", down)
        out["upperarm01.R"] = _rot("x", swing_r) @ _rot("y", -down)
        out["lowerarm01.L"] = _rot("x", elbow_l)
        out["lowerarm01.R"] = _rot("x", elbow_r)

    def legs(hip_l: float, hip_r: float, knee_l: float, knee_r: float):
        out["upperleg01.L"] = _rot("x", hip_l)
        out["upperleg01.R"] = _rot("x", hip_r)
        out["lowerleg01.L"] = _rot("x", knee_l)
        out["lowerleg01.R"] = _rot("x", knee_r)

    if pose in ("walk", "push"):
        s = math.sin(2 * math.pi * phase)
        stride = 24 + j(3)
        legs(-stride * s, stride * s, 8 + 28 * max(0.0, math.sin(2 * math.pi * phase + 1.2)),
             8 + 28 * max(0.0, -math.sin(2 * math.pi * phase + 1.2)))
        out["foot.L"] = _rot("x", 8 * s)
        out["foot.R"] = _rot("x", -8 * s)
        if pose == "walk":
            arms(18 * s + j(3), -18 * s + j(3), -15 + j(5), -15 + j(5))
        else:  # hands forward on a tiller at waist-chest height, leaning in
            out["spine05"] = _rot("x", 10 + j(2))
            arms(-55 + j(4), -55 + j(4), -35 + j(5), -35 + j(5), down=arm_down - 18)
    elif pose == "stand":
        legs(j(3), j(3), 3, 3)
        if phase < 0.5:
            arms(j(5), j(5), -10 + j(5), -10 + j(5))
        else:  # one hand up in front (scanner, phone, paperwork), the other hanging
            arms(j(4), -22 + j(4), -10 + j(4), -72 + j(6))
        out["neck01"] = _rot("z", j(10))
    elif pose == "carry":
        legs(-10 * phase + j(2), 10 * phase + j(2), 5, 5)
        arms(-15 + j(4), -15 + j(4), -38 + j(5), -38 + j(5), down=arm_down - 8)
    elif pose == "bend":
        out["spine05"] = _rot("x", 35 + j(5))
        out["spine03"] = _rot("x", 20 + j(5))
        out["neck01"] = _rot("x", -15)
        legs(-25 + j(3), -25 + j(3), 15, 15)
        arms(-60 + j(5), -60 + j(5), -10, -10, down=arm_down - 10)
    elif pose == "crouch":
        legs(-95 + j(5), -85 + j(5), 125 + j(4), 120 + j(4))
        out["foot.L"] = _rot("x", -30)
        out["foot.R"] = _rot("x", -30)
        out["spine05"] = _rot("x", 25 + j(4))
        arms(-45 + j(5), -40 + j(5), -30, -30, down=arm_down - 10)
    else:
        raise ValueError(f"unknown pose {pose!r}")
    return out


# ---------------------------------------------------------------- regions

def face_regions(model, rest_vertices: np.ndarray, faces: np.ndarray, seg: dict[str, np.ndarray],
                 long_hair: bool) -> np.ndarray:
    """Per-face index into REGIONS, from anny's UV segmentation and each face's dominant bone."""
    labels = model.bone_labels
    w = model.vertex_bone_weights.detach().cpu().numpy()
    idx = model.vertex_bone_indices.detach().cpu().numpy()
    dom_bone = idx[np.arange(len(idx)), w.argmax(1)]
    # dominant bone of a face = most common among its 3 vertices (first vertex on ties)
    fb = dom_bone[faces]
    face_bone = np.where(fb[:, 1] == fb[:, 2], fb[:, 1], fb[:, 0])
    names = np.array(labels)[face_bone]

    def starts(prefixes):
        return np.array([any(n.startswith(p) for p in prefixes) for n in names])

    region = np.full(len(faces), REGIONS.index("skin"))
    region[starts(SHIRT_BONES)] = REGIONS.index("shirt")
    region[starts(FOREARM_BONES)] = REGIONS.index("forearm")
    region[starts(TROUSER_BONES)] = REGIONS.index("trousers")
    # a straight belt line instead of the ragged bone-weight border between shirt and trousers
    cent = rest_vertices[faces].mean(1)
    torso = starts(("root", "pelvis", "spine"))
    belt = belt_height(model, rest_vertices)
    region[torso & (cent[:, 2] >= belt)] = REGIONS.index("shirt")
    region[torso & (cent[:, 2] < belt)] = REGIONS.index("trousers")
    region[starts(SHOE_BONES) | seg["foot"]] = REGIONS.index("shoes")
    region[seg["hand"]] = REGIONS.index("skin")
    head = seg["head"]
    region[head] = REGIONS.index("skin")
    region[seg["eyes"]] = REGIONS.index("eyes")
    # hair: the crown and back of the head, lower at the back for long hair
    hv = cent[head]
    eye_z = cent[seg["eyes"]][:, 2].mean() if seg["eyes"].any() else np.percentile(hv[:, 2], 70)
    cy = hv[:, 1].mean()
    back = cent[:, 1] > cy + 0.01
    crown = cent[:, 2] > eye_z + 0.035
    nape = cent[:, 2] > eye_z - (0.14 if long_hair else 0.05)
    hair = head & (crown | (back & nape)) & ~seg["eyes"]
    region[hair] = REGIONS.index("hair")
    return region


def belt_height(model, vertices: np.ndarray) -> float:
    """z of the waistband: between the skin rings of the two lowest spine bones."""
    w = model.vertex_bone_weights.detach().cpu().numpy()
    idx = model.vertex_bone_indices.detach().cpu().numpy()
    dom = idx[np.arange(len(idx)), w.argmax(1)]
    labels = list(model.bone_labels)
    z = [vertices[dom == labels.index(b), 2].mean() for b in ("spine05", "spine04")]
    return float(np.mean(z) - 0.03)


def _segmentation(model) -> dict[str, np.ndarray]:
    from anny.face_segmentation import get_face_segmentation_mask

    def mask(labels):
        return get_face_segmentation_mask(model, labels).cpu().numpy()

    return {"head": mask(["head", "mouth_cavity", "tongue"]),
            "hand": mask(["hand.L", "hand.R"]),
            "foot": mask(["foot.L", "foot.R"]),
            "eyes": mask(["eye_back.L", "eye_front.L", "eye_back.R", "eye_front.R",
                          "eye_cavity.L", "eye_cavity.R"])}


def vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    fn = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], fn)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


# ---------------------------------------------------------------- OBJ

def obj_text(v: np.ndarray, n: np.ndarray, faces: np.ndarray, face_region: np.ndarray,
             region_names: Sequence[str], mtl: str = "regions.mtl") -> tuple[str, dict[str, int]]:
    """OBJ (Y-up) with faces grouped by region; returns text and region -> face count in file order."""
    buf = io.StringIO()
    buf.write(f"# warehouse-synth human mesh\nmtllib {mtl}\n")
    yup = np.c_[v[:, 0], v[:, 2], -v[:, 1]]
    nup = np.c_[n[:, 0], n[:, 2], -n[:, 1]]
    np.savetxt(buf, yup, fmt="v %.5f %.5f %.5f")
    np.savetxt(buf, nup, fmt="vn %.4f %.4f %.4f")
    counts: dict[str, int] = {}
    for r, name in enumerate(region_names):
        sel = faces[face_region == r] + 1
        if not len(sel):
            continue
        counts[name] = int(len(sel))
        buf.write(f"usemtl {name}\n")
        np.savetxt(buf, np.repeat(sel, 2, axis=1), fmt="f %d//%d %d//%d %d//%d")
    return buf.getvalue(), counts


# ---------------------------------------------------------------- one mesh

class Library:
    def __init__(self, out: Path, seed: int, shapes: str = "standard"):
        import anny  # torch and the ~0.8 GB cache load only when meshes are actually made
        import torch

        self.torch = torch
        self.out, self.seed, self.shapes = out, seed, shapes
        self.model = anny.Anny(skinning_method="lbs")
        self.faces = self.model.get_triangular_faces().cpu().numpy()
        self.seg = _segmentation(self.model)
        self.bones = list(self.model.bone_labels)
        w = self.model.vertex_bone_weights.detach().cpu().numpy()
        idx = self.model.vertex_bone_indices.detach().cpu().numpy()
        self.dominant = idx[np.arange(len(idx)), w.argmax(1)]  # per-vertex dominant bone
        self._bodies: dict[int, tuple] = {}   # body -> Library._body

    def _run(self, pheno: dict, pose: dict[str, np.ndarray]):
        torch = self.torch
        params = {k: torch.as_tensor(m[None], dtype=self.model.dtype) for k, m in pose.items()}
        if not params:
            params = {"root": torch.eye(4, dtype=self.model.dtype)[None]}
        with torch.no_grad():
            out = self.model(pose_parameters=params, phenotype_kwargs=pheno)
        return (out["vertices"][0].cpu().numpy(), out["rest_vertices"][0].cpu().numpy(),
                out["bone_poses"][0, :, :3, 3].cpu().numpy())

    def make(self, i: int, cycle: tuple[str, float] | None = None) -> dict:
        """Mesh i, or (cycle: (id, phase) of cycle_phases(i)) one more phase of its walk cycle."""
        mesh_id = f"h{i:04d}"
        body = body_of(i)
        pose, phase = POSE_CYCLE[i % len(POSE_CYCLE)]
        base_id = mesh_id
        if cycle is not None:
            mesh_id, phase = cycle
        pheno, stature, long_hair, region = self._body(body)
        prng = np.random.default_rng([self.seed, i])   # mesh i's jitter, the same in every phase
        v, _, heads = self._run(pheno, pose_angles(pose, phase, prng))
        v = self._grounded(v, heads)
        n = vertex_normals(v, self.faces)
        text, counts = obj_text(v, n, self.faces, region, REGIONS)
        atomic_write_text(self.out / f"{mesh_id}.obj", text)
        vest_text = self._vest(v, n, region)
        atomic_write_text(self.out / f"{mesh_id}_vest.obj", vest_text)

        faces = self.faces
        head_v = v[np.unique(faces[self.seg["head"]])]
        head_c = head_v.mean(0)
        neck = self._centroid(v, "neck02")
        up = head_c - neck
        up /= np.linalg.norm(up)
        radius = float(np.percentile(np.linalg.norm((head_v - head_c)[:, :2], axis=1), 95))
        wl, wr = self._centroid(v, "wrist.L"), self._centroid(v, "wrist.R")
        hands = (wl + wr) / 2
        carry = (hands + np.array([0.0, -0.1, 0.05])).round(4).tolist() if pose == "carry" else None
        ext = v[:, :2]
        record = {
            "id": mesh_id, "file": f"{mesh_id}.obj", "vest_file": f"{mesh_id}_vest.obj",
            "cloth_file": cloth_file(body),
            "pose": pose, "phase": phase, "body": body, "phenotype": pheno, "long_hair": bool(long_hair),
            "stature": round(stature, 4), "height": round(float(v[:, 2].max()), 4),
            "head_center": head_c.round(4).tolist(), "head_up": up.round(4).tolist(),
            "head_radius": round(radius, 4), "hands_center": hands.round(4).tolist(),
            "carry_point": carry,
            "bounds_xy": [ext.min(0).round(4).tolist(), ext.max(0).round(4).tolist()],
            "regions": REGIONS, "region_face_counts": counts, "n_vertices": int(len(v)),
            "n_faces": int(len(faces)),
        }
        if cycle is not None:
            record["cycle_of"] = base_id
        atomic_write_json(self.out / f"{mesh_id}.json", record, indent=1)
        return record

    def _body(self, body: int) -> tuple[dict, float, bool, np.ndarray]:
        """(phenotype, stature, long hair, face regions) of a body: the same for its two poses and
        every walk phase, so worked out once per body, when its cloth file is written too."""
        if body not in self._bodies:
            brng = np.random.default_rng([self.seed, 1_000_000 + body])
            pheno, target = sample_phenotype(brng, self.shapes)
            # anny's `height` moves stature almost linearly: solve it from two probes
            probes = []
            for h in (0.3, 0.6):
                standing, _, _ = self._run({**pheno, "height": h}, {})
                probes.append(float(np.ptp(standing[:, 2])))
            pheno["height"] = float(np.clip(0.3 + 0.3 * (target - probes[0]) / (probes[1] - probes[0]), 0.0, 1.0))
            standing, rest, _ = self._run(pheno, {})
            stature = float(np.ptp(standing[:, 2]))
            long_hair = pheno["gender"] > 0.5 and brng.random() < 0.6
            region = face_regions(self.model, rest, self.faces, self.seg, long_hair)
            # where each vertex is on the body standing straight, arms down: the coordinates clothing
            # patterns are laid in, so a stripe follows a swinging arm or a bent knee as cloth does
            straight, _, straight_heads = self._run(pheno, pose_angles("stand", 0.0, None))
            buf = io.BytesIO()
            np.save(buf, self._grounded(straight, straight_heads).astype(np.float32))
            atomic_write_bytes(self.out / cloth_file(body), buf.getvalue())
            self._bodies[body] = (pheno, stature, long_hair, region)
        return self._bodies[body]

    def _grounded(self, v: np.ndarray, heads: np.ndarray) -> np.ndarray:
        """Feet on the floor, pelvis over the origin."""
        root = heads[self.bones.index("root")]
        return v - np.array([root[0], root[1], v[:, 2].min()])

    def _centroid(self, v: np.ndarray, bone: str) -> np.ndarray:
        """Mean of the vertices a bone dominates (a joint's ring of skin)."""
        return v[self.dominant == self.bones.index(bone)].mean(0)

    def _vest(self, v: np.ndarray, n: np.ndarray, region: np.ndarray) -> str:
        """Torso faces pushed out 2.5 cm; two horizontal reflective bands."""
        dom = np.array(self.bones)[self.dominant]
        torso_v = np.array([any(d.startswith(p) for p in VEST_BONES) for d in dom])
        faces = self.faces
        zc = v[faces].mean(1)[:, 2]
        shirt = (region == REGIONS.index("shirt")) & torso_v[faces].all(1)
        lo, hi = np.percentile(zc[shirt], 6), np.percentile(zc[shirt], 97)
        # every torso face above a level hem (pelvis faces included), nothing of the arms
        sel = torso_v[faces].all(1) & (zc >= lo) & (region != REGIONS.index("skin"))
        vf = faces[sel]
        used = np.unique(vf)
        remap = -np.ones(len(v), dtype=int)
        remap[used] = np.arange(len(used))
        vv = v[used] + n[used] * 0.025
        nn = n[used]
        ff = remap[vf]
        fz = vv[ff].mean(1)[:, 2]
        h = hi - lo
        stripe = (np.abs(fz - (lo + 0.22 * h)) < 0.03) | (np.abs(fz - (lo + 0.5 * h)) < 0.03)
        text, _ = obj_text(vv, nn, ff, stripe.astype(int), VEST_REGIONS)
        return text


# ---------------------------------------------------------------- the index

def load_index(humans_dir: str | Path) -> dict:
    """index.json of a library made by this module, checked to list at least one mesh.

    The one reader of the file (blender/ imports it: this module loads torch and anny only
    inside the functions that make meshes)."""
    path = Path(humans_dir) / "index.json"
    if not path.is_file():
        raise UserError(f"{path}: human mesh library not found; run `make humans` "
                        f"(python -m pipeline.humans --out {humans_dir} --count 24)")
    data = read_json(path, "human mesh index")
    meshes = data.get("meshes") if isinstance(data, dict) else None
    if not isinstance(meshes, list) or not meshes:
        raise UserError(f"{path}: expected a non-empty 'meshes' list")
    return data


def load_human_index(humans_dir: str | Path) -> list[dict]:
    """The library's mesh records: index.json 'meshes', then its walk-cycle phases ('cycles',
    records with `cycle_of`; absent from libraries made before them)."""
    data = load_index(humans_dir)
    return data["meshes"] + data.get("cycles", [])


def still_meshes(library: Sequence[dict]) -> list[dict]:
    """The records a still frame picks from: the library without its walk-cycle phases."""
    return [m for m in library if "cycle_of" not in m]


def body_of(i: int) -> int:
    """The body of mesh i: two poses per body, so a library extended with more meshes keeps its bodies."""
    return i // 2


def cloth_file(body: int) -> str:
    """The cloth-coordinates file of a body, shared by both its poses and every walk phase."""
    return f"b{body:04d}_cloth.npy"


def cycle_phases(i: int) -> list[tuple[str, float]]:
    """(id, phase) of the walk-cycle meshes mesh i gets besides itself (none unless it walks or pushes)."""
    pose, phase = POSE_CYCLE[i % len(POSE_CYCLE)]
    if pose not in CYCLE_POSES:
        return []
    return [(f"h{i:04d}p{k}", k / CYCLE_PHASES) for k in range(CYCLE_PHASES) if k / CYCLE_PHASES != phase]


# ---------------------------------------------------------------- CLI

def build_index(out: Path, count: int, seed: int, shapes: str = "standard") -> dict:
    meshes = [json.loads((out / f"h{i:04d}.json").read_text()) for i in range(count)]
    cycles = [json.loads((out / f"{cid}.json").read_text()) for i in range(count) for cid, _ in cycle_phases(i)]
    index = {"version": LIBRARY_VERSION, "generator": "anny", "seed": seed, "count": count,
             "axes": "Z-up after Blender OBJ import, person faces -Y, feet at z=0, metres",
             "regions": REGIONS, "vest_regions": VEST_REGIONS, "meshes": meshes, "cycles": cycles}
    if shapes != "standard":   # libraries of the standard range keep the index of before
        index["shapes"] = shapes
    return index


def generate(out: Path, count: int, seed: int, progress: bool = True, shapes: str = "standard") -> dict:
    ensure_writable_dir(out)
    index_path = out / "index.json"
    old = None
    if index_path.is_file():
        old = load_index(out)
        if old.get("seed") != seed:
            raise UserError(f"{index_path}: library was made with seed {old.get('seed')}, not {seed}; "
                            "use another --out or the same --seed")
        if old.get("shapes", "standard") != shapes:
            raise UserError(f"{index_path}: library was made with --shapes {old.get('shapes', 'standard')}, "
                            f"not {shapes}; use another --out or the same --shapes")
    wanted = [(i, None) for i in range(count)] + [(i, c) for i in range(count) for c in cycle_phases(i)]
    todo = [(i, c) for i, c in wanted if not (out / cloth_file(body_of(i))).is_file() or not all(
        (out / f"{c[0] if c else f'h{i:04d}'}{s}").is_file() for s in MESH_FILES)]
    if todo:
        atomic_write_text(out / "regions.mtl", MTL)
        lib = Library(out, seed, shapes)
        for i, c in tqdm(todo, desc="humans", unit="mesh", disable=not progress):
            lib.make(i, c)
    index = build_index(out, count, seed, shapes)
    for stale in out.glob("h*_cloth.npy"):   # per-mesh copies of the cloth file, from before it was per body
        stale.unlink()
    if index != old:   # an unchanged library keeps its index file (and its time, for make)
        atomic_write_json(index_path, index, indent=1)
    return {"made": len(todo), "skipped": len(wanted) - len(todo), "index": index}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.humans", description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("assets_cache/humans"))
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shapes", choices=sorted(SHAPES), default="standard",
                    help="body-shape range (default standard; wide: slimmer, heavier, older, shorter and taller)")
    args = ap.parse_args(argv)
    if args.count < 1:
        raise UserError(f"--count {args.count}: expected at least 1")
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    t0 = time.time()
    res = generate(args.out, args.count, args.seed, shapes=args.shapes)
    idx = res["index"]["meshes"]
    heights = [m["stature"] for m in idx]
    poses = sorted({m["pose"] for m in idx})
    print(f"humans: {len(idx)} meshes and {len(res['index']['cycles'])} walk-cycle phases in {args.out} "
          f"({res['made']} made, {res['skipped']} existing), "
          f"statures {min(heights):.2f}-{max(heights):.2f} m, poses {','.join(poses)}, "
          f"{time.time() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    run_cli(main)
