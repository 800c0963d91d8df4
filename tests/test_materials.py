"""Procedural materials (blender/materials, blender/plan/materials.py): the material plan, the
user's texture and HDRI folders, and tiny Cycles renders of every family with exact masks."""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest
import yaml

from blender.job_config import RenderJobConfig
from blender.plan import SceneConfig, ScenePlan, plan_scene
from blender.plan.scene_config import MATERIAL_FAMILIES
from blender.plan.scene_plan import MATERIAL_PLAN_VERSION, Surface
from blender.plan.textures import hdri_files, texture_sets
from pipeline.common import UserError, load_config

SMALL = ["layout.width=[16,16]", "layout.length=[26,26]", "layout.rack_height=[4.5,4.5]",
         "pedestrians.count=[0,0]", "pallet_jacks.count=[2,2]", "pallet_jacks.pushed_prob=0",
         "pallet_jacks.loaded_prob=1", "distractors.count=[6,6]", "distractors.staging_loads=[2,2]",
         "lights.daylight_prob=1"]


def small_cfg(*extra: str) -> SceneConfig:
    return load_config(None, SceneConfig, [*SMALL, *extra])


def without_materials(plan: ScenePlan) -> ScenePlan:
    """The same plan with every material choice taken out (what families: [] plans)."""
    p = copy.deepcopy(plan)
    p.materials, p.version = None, 1
    for s in p.stock:
        s.look = 0
    for j in p.pallet_jacks:
        j.surfaces = []
        if j.load is not None:
            j.load.look = 0
    for d in p.distractors:
        d.surfaces = []
        if d.kind == "load":
            d.look = 0
    return p


def write_pbr_folder(root):
    """Two tiny sets in the ambientCG and Poly Haven layouts, plus files that are no set."""
    rng = np.random.default_rng(0)
    ac = root / "Concrete034_1K-JPG"
    ph = root / "wood_planks"
    for d in (ac, ph):
        d.mkdir(parents=True)
    img = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    normal = np.full((16, 16, 3), (255, 128, 128), np.uint8)   # BGR of a flat (0.5, 0.5, 1) normal
    cv2.imwrite(str(ac / "Concrete034_1K-JPG_Color.jpg"), img)
    cv2.imwrite(str(ac / "Concrete034_1K-JPG_Roughness.jpg"), img[:, :, 0])
    cv2.imwrite(str(ac / "Concrete034_1K-JPG_NormalGL.png"), normal)
    cv2.imwrite(str(ac / "Concrete034_1K-JPG_NormalDX.png"), normal)       # DirectX: skipped
    cv2.imwrite(str(ph / "wood_planks_diff_1k.png"), img)
    cv2.imwrite(str(ph / "wood_planks_nor_gl_1k.png"), normal)
    cv2.imwrite(str(root / "preview.png"), img)                           # no map suffix: ignored
    return root


def write_hdri(path):
    sky = np.ones((8, 16, 3), np.float32) * np.array([1.5, 1.2, 0.9], np.float32)
    sky[4:] = 0.2
    assert cv2.imwrite(str(path), sky)
    return path


# ---------------------------------------------------------------- plan

def test_same_seed_same_material_plan_and_nothing_else_moves():
    cfg = small_cfg()
    a, b = plan_scene(cfg, np.random.default_rng(7)), plan_scene(cfg, np.random.default_rng(7))
    assert a.to_dict() == b.to_dict()
    assert a.version == MATERIAL_PLAN_VERSION and a.materials is not None
    assert plan_scene(cfg, np.random.default_rng(8)).to_dict()["materials"] != a.to_dict()["materials"]
    # materials come from a child stream: switched off, every other draw is as it was
    off = plan_scene(small_cfg("materials.families=[]"), np.random.default_rng(7))
    assert off.version == 1 and "materials" not in off.to_dict()
    assert without_materials(a).to_dict() == off.to_dict()
    # the JSON form reads back, per-object choices included
    back = ScenePlan.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back.to_dict() == a.to_dict()
    assert {s.family for s in a.materials.racks} == {"painted_steel"}
    assert a.materials.floor.family == "concrete"
    assert all(len(j.surfaces) == 2 for j in a.pallet_jacks)


def test_families_switch_surfaces_off_one_by_one():
    plan = plan_scene(small_cfg("materials.families=[concrete, rubber]"), np.random.default_rng(3))
    m = plan.materials
    assert m.floor.family == "concrete" and m.racks == [None, None] and m.walls == [None, None]
    assert all(j.surfaces[0] is None and j.surfaces[1].family == "rubber" for j in plan.pallet_jacks)
    assert all(s is None for look in m.loads for s in look)


def test_texture_folder_sets_are_found_by_their_suffixes(tmp_path):
    sets = texture_sets(str(write_pbr_folder(tmp_path / "tex")))
    by_name = {s.name: s for s in sets}
    assert sorted(by_name) == ["Concrete034_1K-JPG", "wood_planks"]
    c = by_name["Concrete034_1K-JPG"]
    assert c.color.endswith("_Color.jpg") and c.roughness.endswith("_Roughness.jpg")
    assert c.normal.endswith("_NormalGL.png")
    w = by_name["wood_planks"]
    assert w.roughness is None and w.normal.endswith("_nor_gl_1k.png")
    # surfaces pick a set whose name fits their family when one does
    plan = plan_scene(small_cfg(f"materials.texture_dir={tmp_path / 'tex'}", "materials.texture_prob=1"),
                      np.random.default_rng(1))
    assert plan.materials.floor.texture.name == "Concrete034_1K-JPG"
    pallets = [look[0] for look in plan.materials.loads]
    assert all(s.texture.name == "wood_planks" for s in pallets)


@pytest.mark.parametrize("key, make, expect", [
    ("texture_dir", lambda p: p / "missing", "missing: folder not found"),
    ("texture_dir", lambda p: p, "no PBR texture set found (expected files named <set>_Color"),
    ("texture_dir", lambda p: (p / "x_Color.png").write_bytes(b"not a png") and p, "x_Color.png: not a readable .png file"),
    ("hdri_dir", lambda p: p / "missing", "missing: folder not found"),
    ("hdri_dir", lambda p: p, "no .hdr or .exr environment map found"),
    ("hdri_dir", lambda p: (p / "sky.hdr").write_bytes(b"P6 not radiance") and p, "sky.hdr: not a readable .hdr file"),
    ("hdri_dir", lambda p: (p / "sky.png").write_bytes(b"x") and p / "sky.png", "sky.png: expected a .hdr or .exr"),
    ("families", lambda p: ["concrete", "marble"], "unknown family 'marble'"),
])
def test_bad_material_folders_and_files_are_one_line_errors(tmp_path, key, make, expect):
    d = tmp_path / "in"
    d.mkdir()
    value = make(d)
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({"scene": {"materials": {key: value if isinstance(value, list) else str(value)}}}))
    with pytest.raises(UserError) as e:
        load_config(cfg, RenderJobConfig)
    msg = str(e.value)
    assert "\n" not in msg and expect in msg and f"scene.materials.{key}" in msg, msg


def test_hdri_folder_and_single_file(tmp_path):
    d = tmp_path / "hdri"
    d.mkdir()
    a, b = write_hdri(d / "dock_a.hdr"), write_hdri(d / "dock_b.hdr")
    assert hdri_files(str(d)) == (str(a), str(b))
    assert hdri_files(str(a)) == (str(a),)
    plan = plan_scene(small_cfg(f"materials.hdri_dir={d}"), np.random.default_rng(2))
    h = plan.materials.hdri
    assert h.path in (str(a), str(b)) and 0 <= h.rotation_deg <= 360 and 0.3 <= h.strength <= 1.5


# ---------------------------------------------------------------- Blender

def _render(bpy, plan, size=(80, 60), samples=1):
    from blender import cycles
    from blender.job_config import RenderConfig
    from blender.scene import build_scene, clear_scene

    clear_scene()
    instances = build_scene(plan, None)
    cfg = RenderConfig(preset="fast", resolution=size, samples=samples, denoise=False, threads=2)
    with cycles.Renderer(cfg) as eng:
        rgb, index = eng.render(bpy.context.scene, seed=1)
    return instances, rgb, index


@pytest.mark.blender
@pytest.mark.parametrize("family", MATERIAL_FAMILIES)
def test_each_family_builds_and_renders_at_tiny_size(family):
    bpy = pytest.importorskip("bpy")
    from blender import cycles
    from blender.job_config import RenderConfig
    from blender.materials import Materials
    from blender.meshes import MeshBuilder, add_object
    from blender.scene import clear_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    surface = Surface(family=family, color=[0.7, 0.5, 0.3], color2=[0.95, 0.95, 0.9], roughness=0.5,
                      wear=0.8, dirt=0.5, marks=1.0, scale={"wood": 0.008}.get(family, 0.5), seed=12.5)
    mats = Materials()
    mat = mats.surface(f"test_{family}", surface)
    (group,) = [n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeGroup"]
    assert len(group.node_tree.nodes) > 8    # a real graph, not the default BSDF
    other = mats.surface(f"test_{family}_2", Surface(**{**surface.__dict__, "seed": 3.0}))
    assert other is not mat and other.node_tree.nodes["Group"].node_tree == group.node_tree  # built once
    mb = MeshBuilder()
    for i in range(3):  # a little stack of boxes: cartons get their labels per box
        mb.box((i * 0.42 - 0.42, 0.0, 0.2), (0.4, 0.4, 0.4))
    ob = add_object("sample", mb.build("sample", [mat]), pass_index=1)
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam
    cam.location = (1.2, -1.6, 1.3)
    cam.rotation_euler = (1.0, 0.0, 0.6)
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    bpy.context.scene.collection.objects.link(sun)
    bpy.context.scene.world = bpy.data.worlds.new("w")
    with cycles.Renderer(RenderConfig(preset="fast", resolution=(48, 36), samples=2, denoise=False, threads=2)) as eng:
        rgb, index = eng.render(bpy.context.scene, seed=0)
    assert ob.pass_index == 1 and (index == 1).sum() > 100
    assert rgb[index == 1].std() > 1.0        # shaded and patterned, not a flat fill
    clear_scene()


@pytest.mark.blender
def test_masks_stay_exact_with_the_new_materials():
    bpy = pytest.importorskip("bpy")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    plan = plan_scene(small_cfg(), np.random.default_rng(5), negative=False)
    assert plan.version == MATERIAL_PLAN_VERSION
    _, rgb_plain, idx_plain = _render(bpy, without_materials(plan))
    instances, rgb, idx = _render(bpy, plan)
    ids = {i.instance_id for i in instances}
    assert ids and ids & set(np.unique(idx).tolist())   # something labelled is in view
    np.testing.assert_array_equal(idx, idx_plain)
    assert not np.array_equal(rgb, rgb_plain)
    used = {m.name.split(".")[0] for m in bpy.data.materials if m.users}
    assert {"concrete", "rack_frame", "jack_paint_0", "jack_rubber_0"} <= used


@pytest.mark.blender
def test_user_pbr_sets_and_hdri_are_used(tmp_path):
    bpy = pytest.importorskip("bpy")
    from blender.scene.lights import WORLD

    bpy.ops.wm.read_factory_settings(use_empty=True)
    tex = write_pbr_folder(tmp_path / "tex")
    (tmp_path / "hdri").mkdir()
    sky = write_hdri(tmp_path / "hdri" / "dock.hdr")
    plan = plan_scene(small_cfg(f"materials.texture_dir={tex}", "materials.texture_prob=1",
                                f"materials.hdri_dir={sky.parent}"), np.random.default_rng(4), negative=False)
    _, _, idx_plain = _render(bpy, without_materials(plan), size=(64, 48))
    _, rgb, idx = _render(bpy, plan, size=(64, 48))
    np.testing.assert_array_equal(idx, idx_plain)
    loaded = {bpy.path.abspath(i.filepath) for i in bpy.data.images}
    assert str(sky) in loaded
    assert {s for t in texture_sets(str(tex)) for s in (t.color, t.roughness, t.normal) if s} <= loaded
    world = bpy.data.worlds[WORLD]
    env = [n for n in world.node_tree.nodes if n.bl_idname == "ShaderNodeTexEnvironment"]
    assert len(env) == 1 and env[0].image.filepath == str(sky)
    assert rgb.std() > 1.0


def test_clip_scenario_jacks_are_painted_like_the_rest():
    from blender.plan.scenario import plan_scenario

    cfg = small_cfg()
    base = plan_scene(cfg, np.random.default_rng(2), negative=False)
    plan, _, _ = plan_scenario(base, "near_miss", cfg, np.random.default_rng(3), None, 4 / 3)
    assert plan.pallet_jacks and all(j.surfaces[0].family == "painted_steel" for j in plan.pallet_jacks)
    again, _, _ = plan_scenario(base, "near_miss", cfg, np.random.default_rng(3), None, 4 / 3)
    assert again.to_dict() == plan.to_dict()


def test_folders_without_materials_keep_their_config_hash():
    from blender.job_config import _MATERIAL_KEYS, config_hash
    from pipeline.common import config_to_dict

    off = config_to_dict(RenderJobConfig.model_validate({"scene": {"materials": {"families": []}}}))
    before = copy.deepcopy(off)  # a config from before the material keys existed
    for key in _MATERIAL_KEYS:
        del before["scene"]["materials"][key]
    assert config_hash(off) == config_hash(before)
    on = config_to_dict(RenderJobConfig())
    assert config_hash(on) != config_hash(off)   # new images, a new dataset identity
    one = copy.deepcopy(off)
    one["scene"]["materials"]["families"] = ["concrete"]
    assert config_hash(one) != config_hash(off)
