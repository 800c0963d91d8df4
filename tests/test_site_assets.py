"""A site's own assets (render config `assets:`): config checks, placement in the plan, and
in Blender one instance with exact masks per labelled asset, whatever its parts."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

from blender.job_config import RenderJobConfig
from blender.plan import SceneConfig, ScenePlan, plan_scene
from blender.plan.camera import check_camera_sees
from blender.plan.site import AssetSpec
from pipeline.analytics.clip_truth import read_floor_truth
from pipeline.common import UserError, load_config

W, H = 64, 48


def two_cubes_obj(path, gap=1.0):
    """An OBJ of two disconnected unit-ish cubes (two objects), side by side along +X."""
    lines = []
    base = 0
    for k, x0 in enumerate((0.0, 0.5 + gap)):
        lines.append(f"o part{k}")
        for dx in (0, 0.5):
            for dy in (0, 0.4):
                for dz in (0, 0.6):
                    lines.append(f"v {x0 + dx} {dy} {dz}")
        # corners: index = 4*ix + 2*iy + iz (+1, +base)
        for f in ((0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)):
            lines.append("f " + " ".join(str(base + i + 1) for i in f))
        base += 8
    path.write_text("\n".join(lines) + "\n")
    return str(path)


# ---------------------------------------------------------------- config

@pytest.mark.parametrize("entry, expect", [
    ({"path": "{tmp}/nope.glb"}, "nope.glb: file not found"),
    ({"path": "{tmp}/model.stl"}, "model.stl: expected a .blend, .glb"),
    ({"path": "{tmp}/ok.obj", "category": "pedestrian"}, "pedestrian assets are not supported"),
    ({"path": "{tmp}/ok.obj", "scale": 0}, "assets.0.scale"),
    ({"path": "{tmp}/ok.obj", "count": [3, 1]}, "[3, 1]: expected 0 <= low <= high"),
    ({"path": "{tmp}/ok.obj", "placement": "ceiling"}, "assets.0.placement"),
    ({"path": "{tmp}/ok.obj", "footprint": [1, 1]}, "unknown key 'assets.0.footprint'"),
])
def test_bad_asset_entries_are_one_line_errors(tmp_path, entry, expect):
    two_cubes_obj(tmp_path / "ok.obj")
    (tmp_path / "model.stl").write_text("solid x\n")
    entry = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in entry.items()}
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({"assets": [entry]}))
    with pytest.raises(UserError) as e:
        load_config(cfg, RenderJobConfig)
    assert "\n" not in str(e.value) and expect in str(e.value) and str(cfg) in str(e.value), str(e.value)


def test_assets_default_to_an_unlabelled_distractor(tmp_path):
    cfg = RenderJobConfig.model_validate({"assets": [{"path": two_cubes_obj(tmp_path / "a.obj")}]})
    a = cfg.assets[0]
    assert (a.category, a.scale, a.count, a.placement) == ("distractor", 1.0, (1, 1), "focus")


# ---------------------------------------------------------------- plan

JACK = AssetSpec(path="site/jack.glb", category="pallet_jack", scale=1.0, size=(1.6, 0.7, 1.2),
                 count=(2, 2), placement="focus")
RACK = AssetSpec(path="site/rack.fbx", category="rack", scale=0.01, size=(2.7, 1.1, 3.0),
                 count=(1, 2), placement="wall")


def small_cfg():
    return SceneConfig.model_validate({"pedestrians": {"count": [0, 0]}, "pallet_jacks": {"count": [0, 0]},
                                       "distractors": {"count": [2, 3]},
                                       "materials": {"families": []}})  # plan version 2, not 3


def test_plans_place_site_assets_reproducibly():
    plans = [plan_scene(small_cfg(), np.random.default_rng(s), assets=[JACK, RACK]) for s in (5, 5, 6)]
    p = plans[0]
    assert p.to_dict() == plans[1].to_dict() and p.to_dict() != plans[2].to_dict()
    assert p.version == 2 and ScenePlan.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    jacks = [a for a in p.assets if a.labelled]
    assert len(jacks) == 2 and all(a.size == [1.6, 0.7, 1.2] and a.path == "site/jack.glb" for a in jacks)
    racks = [a for a in p.assets if a.category == "rack"]
    assert 1 <= len(racks) <= 2
    for r in racks:  # against a staging-area side wall, length along it
        assert min(r.x, p.layout.width - r.x) < 1.5 and abs(abs(r.yaw) - np.pi / 2) < 1e-4
    # the camera was placed to see a labelled site asset (there is nothing else labelled)
    assert p.camera.view.seen and all(k == "asset" for k, _ in p.camera.view.seen)
    assert check_camera_sees(p, image_h=480).seen == p.camera.view.seen


def test_negatives_hide_labelled_site_assets():
    cfg = small_cfg()
    for seed in range(6):
        p = plan_scene(cfg, np.random.default_rng(seed), negative=True, assets=[JACK])
        assert not p.camera.view.maybe or not any(a.labelled for a in p.assets)
        seen = check_camera_sees(p, image_h=480)
        assert not seen.seen


def test_a_scenario_clears_site_assets_off_its_lanes():
    from blender.plan.scenario import LANE_CLEAR_M, plan_scenario

    cfg = SceneConfig.model_validate({"pedestrians": {"count": [1, 2]}, "materials": {"families": []}})
    spec = AssetSpec(path="site/crate.obj", category="crate", scale=1.0, size=(0.8, 0.8, 0.8),
                     count=(25, 25), placement="scatter")
    cleared = kept = 0
    for seed in range(4):
        base = plan_scene(cfg, np.random.default_rng(seed), negative=False, assets=[spec])
        plan, _, _ = plan_scenario(base, "near_miss", cfg, np.random.default_rng(seed), None, 4 / 3)
        actors = [(a.x, a.y) for a in (*plan.pedestrians, *plan.pallet_jacks)]
        assert all(np.hypot(a.x - x, a.y - y) > LANE_CLEAR_M for a in plan.assets for x, y in actors)
        cleared += len(base.assets) - len(plan.assets)
        kept += len(plan.assets)
    assert cleared > 0 and kept > 0


# ---------------------------------------------------------------- Blender

def _camera_and_light(bpy, loc=(0.6, -4.5, 2.2), target=(0.6, 0.0, 0.3)):
    from blender.plan.geometry import aimed_camera
    from blender.scene.camera import build_camera

    build_camera(SimpleNamespace(camera=aimed_camera("cctv", loc, target, 0.0, 50.0)))
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    bpy.context.scene.collection.objects.link(sun)
    bpy.context.scene.world = bpy.data.worlds.new("w")


@pytest.mark.blender
def test_a_labelled_obj_of_two_parts_is_one_instance_with_exact_masks(tmp_path):
    bpy = pytest.importorskip("bpy")
    from blender import cycles
    from blender.annotate import annotate, silhouette
    from blender.assets.user import build_user_asset, measure_assets
    from blender.job_config import AssetConfig, RenderConfig
    from blender.plan.scene_plan import UserAsset
    from blender.scene import clear_scene

    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj = two_cubes_obj(tmp_path / "jack.obj")
    (spec,) = measure_assets([AssetConfig(path=obj, category="pallet_jack", scale=1.5)])
    # the OBJ importer turns Y-up files to Z-up: x 0..2 stays, file y (0.4) becomes height
    assert spec.size == pytest.approx((2.0 * 1.5, 0.6 * 1.5, 0.4 * 1.5))
    a = UserAsset(path=obj, category="pallet_jack", scale=1.5, size=list(spec.size), x=0.6, y=0.0, yaw=0.2)
    parts = build_user_asset(a, 0, 1)
    assert len(parts) == 2 and {p.pass_index for p in parts} == {1}
    _camera_and_light(bpy)
    bpy.context.view_layer.update()
    v, t = cycles.mesh_world_triangles(parts)
    assert v[:, 2].min() == pytest.approx(0.0, abs=1e-6)   # stands on the floor
    np.testing.assert_allclose((v[:, :2].min(0) + v[:, :2].max(0)) / 2, [0.6, 0.0], atol=1e-6)
    cfg = RenderConfig(preset="fast", resolution=(W, H), samples=1, denoise=False, threads=1)
    with cycles.Renderer(cfg) as eng:
        _, index = eng.render(bpy.context.scene, seed=2)
    assert set(np.unique(index)) == {0, 1}
    P = cycles.camera_projection(bpy.context.scene)
    sil = silhouette(v, t, P, W, H).in_frame()
    mask = index == 1
    assert (mask & sil).sum() / (mask | sil).sum() > 0.9
    import cv2

    assert cv2.connectedComponents(mask.astype(np.uint8))[0] - 1 == 2   # two pieces, one instance
    geoms = cycles.instance_geometry([SimpleNamespace(instance_id=1, category_id=2, objects=parts)])
    (ann,) = annotate(index, geoms, P)
    assert ann["category_id"] == 2 and ann["area"] == mask.sum() and ann["visibility"] > 0.9
    meshes = [p.data for p in parts]
    clear_scene()   # the next frame reuses the imported meshes: they outlive the scene
    assert all(bpy.data.meshes.get(me.name) == me for me in meshes)


@pytest.mark.blender
def test_glb_and_blend_files_import_and_bad_files_name_themselves(tmp_path):
    bpy = pytest.importorskip("bpy")
    from blender.assets.user import measure_assets
    from blender.job_config import AssetConfig

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(3, 3, 3))
    bpy.context.active_object.scale = (2.0, 1.0, 0.5)
    glb, blend = tmp_path / "box.glb", tmp_path / "box.blend"
    bpy.ops.export_scene.gltf(filepath=str(glb), export_format="GLB")
    bpy.data.libraries.write(str(blend), {bpy.context.active_object})
    bpy.ops.wm.read_factory_settings(use_empty=True)
    for path in (glb, blend):
        (spec,) = measure_assets([AssetConfig(path=str(path), scale=2.0)])
        assert spec.size == pytest.approx((4.0, 2.0, 1.0), abs=1e-4), path
    assert len(bpy.context.scene.objects) == 0   # imported objects are gone, their meshes kept
    for name, data in (("broken.glb", b"glTF\x02\x00\x00\x00garbage"), ("broken.fbx", b"not an fbx"),
                       ("broken.blend", b"BLENDER nonsense"), ("empty.obj", b"# nothing here\n")):
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(UserError) as e:
            measure_assets([AssetConfig(path=str(p))])
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(str(p)), msg


@pytest.mark.blender
def test_render_cli_with_a_site_asset_and_a_calibrated_camera(tmp_path):
    from helpers_camera import write_cal

    from blender import render

    obj = two_cubes_obj(tmp_path / "jack.obj")
    cal = write_cal(tmp_path / "cam.yaml")
    cfg = tmp_path / "site.yaml"
    cfg.write_text(yaml.safe_dump({
        "dataset": {"name": "site", "num_images": 2, "seed": 3},
        "render": {"preset": "fast", "samples": 1, "threads": 2},
        "scene": {"negative_fraction": 0.0, "pedestrians": {"count": [0, 0]}, "pallet_jacks": {"count": [0, 0]},
                  "distractors": {"count": [0, 1], "staging_loads": [0, 1]},
                  "camera": {"calibration": cal, "mode": "site"}},
        "assets": [{"path": obj, "category": "pallet_jack", "scale": 1.2}],
    }))
    out = tmp_path / "ds"
    assert render.main(["--config", str(cfg), "--out", str(out)]) == 0
    coco = json.loads((out / "annotations.json").read_text())
    assert {(im["width"], im["height"], im["camera"]) for im in coco["images"]} == {(W, H, "site")}
    assert coco["annotations"] and all(a["category_id"] == 2 for a in coco["annotations"])
    part = json.loads((out / "parts" / "000000.json").read_text())
    assert part["meta"]["plan"]["assets"] == 1
    # same config, same seed: the same annotations
    again = tmp_path / "again"
    assert render.main(["--config", str(cfg), "--out", str(again)]) == 0
    assert (again / "annotations.json").read_bytes() == (out / "annotations.json").read_bytes()


@pytest.mark.blender
def test_a_clip_keeps_site_assets_parked_with_one_track_each(tmp_path):
    """Clips take `assets:` as static objects: a labelled jack model is one parked track (its
    masks exact: the oracle's floor error on it is nil), an unlabelled model no track."""
    from blender import clip as clip_cli
    from blender.clip import clip_plan
    from blender.frames import site_assets
    from blender.job_config import ClipJobConfig
    from blender.plan import load_human_index
    from pipeline.video import main as video_main

    root = Path(__file__).resolve().parents[1]
    cfg_path = tmp_path / "clip.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "clip": {"name": "site_clip", "num_frames": 4, "fps": 5, "min_labelled": 1},
        "render": {"preset": "fast", "resolution": [96, 72], "samples": 1, "postprocess": False},
        "annotation": {"min_area": 16},
        "humans_dir": str(root / "assets_cache" / "humans"),
        "scene": {"pedestrians": {"count": [1, 1], "pose_weights": {"walk": 1.0}}, "pallet_jacks": {"count": [0, 0]},
                  "distractors": {"count": [0, 1], "staging_loads": [0, 1]}},
        "assets": [{"path": two_cubes_obj(tmp_path / "jack.obj", gap=0.3), "category": "pallet_jack"},
                   {"path": two_cubes_obj(tmp_path / "crate.obj"), "category": "crate", "placement": "scatter"}],
    }))
    out = tmp_path / "clip"
    assert clip_cli.main(["--config", str(cfg_path), "--out", str(out)]) == 0
    cfg = load_config(cfg_path, ClipJobConfig)
    plan, _, _ = clip_plan(cfg, load_human_index(cfg.humans_dir), site_assets(cfg.assets))
    jack = next(a for a in plan.assets if a.labelled)
    assert any(a.category == "crate" for a in plan.assets)
    coco = json.loads((out / "annotations.json").read_text())
    jack_tracks = {a["track_id"] for a in coco["annotations"] if a["category_id"] == 2}
    people = {a["track_id"] for a in coco["annotations"] if a["category_id"] == 1}
    assert len(jack_tracks) == 1 and not jack_tracks & people   # the crate is no track
    (tid,) = jack_tracks
    frames = {a["image_id"] for a in coco["annotations"] if a["track_id"] == tid}
    assert len(frames) == 4   # parked in view in every frame, under the same id
    rows = [r for r in read_floor_truth(out) if r["track_id"] == tid]
    assert len(rows) == 4 and len({(r["x"], r["y"]) for r in rows}) == 1   # it does not move
    # its footprint is the near edge of its box: within the box's half-diagonal of its centre
    assert np.hypot(rows[0]["x"] - jack.x, rows[0]["y"] - jack.y) <= np.hypot(*jack.size[:2]) / 2 + 0.05
    (out / "rules.yaml").write_text(yaml.safe_dump({"calibration": "calibration.yaml",
                                                    "lines": [{"name": "far", "start": [0, 0], "end": [0.5, 0]}]}))
    assert video_main(["--checkpoint", "gt", "--source", str(out), "--out", str(tmp_path / "v.mp4"),
                       "--rules", str(out / "rules.yaml"), "--quiet"]) == 0
    err = json.loads((tmp_path / "v.summary.json").read_text())["analytics"]["floor_error_m"]["per_class"]
    assert err["pallet_jack"]["median"] < 0.01, err
