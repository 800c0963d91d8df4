"""Cycles rendering against known geometry: tiny Cycles renders of cubes (bpy; a few seconds)."""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender import cycles  # noqa: E402
from blender.annotate import annotate, silhouette  # noqa: E402
from blender.job_config import RenderConfig  # noqa: E402

pytestmark = pytest.mark.blender

W, H = 64, 48


def _cube_scene(positions, rotations=None):
    import bmesh

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    cam = bpy.data.objects.new("cam", bpy.data.cameras.new("cam"))
    scene.collection.objects.link(cam)
    scene.camera = cam
    cam.location = (0.3, -6.0, 0.5)
    cam.rotation_euler = (np.pi / 2 + 0.05, 0.0, 0.1)
    cam.data.shift_x = 0.03  # exercise lens shift in the projection
    objs = []
    for i, pos in enumerate(positions):
        me = bpy.data.meshes.new(f"cube{i}")
        bm = bmesh.new()
        bmesh.ops.create_cube(bm, size=1.0)
        bm.to_mesh(me)
        bm.free()
        ob = bpy.data.objects.new(f"cube{i}", me)
        ob.location = pos
        ob.rotation_euler = (rotations or [(0.3 * i, 0.2, 0.5 * i)] * len(positions))[i]
        ob.pass_index = i + 1
        scene.collection.objects.link(ob)
        objs.append(ob)
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    scene.collection.objects.link(sun)
    scene.world = bpy.data.worlds.new("w")
    return scene, objs


def _cfg(**kw):
    base = dict(preset="fast", resolution=(W, H), samples=2, denoise=False, threads=1)
    return RenderConfig(**{**base, **kw})


def test_index_masks_lie_where_the_objects_project():
    # cube 0 and cube 2 are in the clear; cube 1 sits behind cube 2
    scene, objs = _cube_scene([(-1.7, 0.0, 0.0), (0.0, 0.8, 0.0), (0.8, -1.0, 0.0)])
    with cycles.Renderer(_cfg()) as eng:
        rgb, index = eng.render(scene, seed=3)
    assert rgb.shape == (H, W, 3) and rgb.dtype == np.uint8 and rgb.std() > 5
    assert index.dtype == np.int32 and set(np.unique(index)) == {0, 1, 2, 3}
    P = cycles.camera_projection(scene)
    for ob in objs:
        v, t = cycles.mesh_world_triangles([ob])
        assert t.shape == (12, 3)
        sil = silhouette(v, t, P, W, H).in_frame()
        mask = index == ob.pass_index
        if ob.name == "cube1":  # occluded: what shows must lie inside its silhouette
            assert (mask & ~sil).sum() <= 0.05 * mask.sum()
            assert mask.sum() < 0.8 * sil.sum()
        else:
            iou = (mask & sil).sum() / (mask | sil).sum()
            assert iou > 0.9, (ob.name, iou)


def test_projection_matches_blenders_camera_view():
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    scene, objs = _cube_scene([(0.4, 1.0, -0.3)])
    scene.render.resolution_x, scene.render.resolution_y = W, H
    P = cycles.camera_projection(scene)
    for p in [(0.4, 1.0, -0.3), (-1.0, 2.0, 0.5), (1.2, -1.0, 0.1)]:
        h = P @ np.array([*p, 1.0])
        ndc = world_to_camera_view(scene, scene.camera, Vector(p))
        np.testing.assert_allclose(h[:2] / h[2], [ndc.x * W, (1 - ndc.y) * H], atol=1e-3)
        assert h[2] == pytest.approx(ndc.z, rel=1e-4)


def test_annotations_from_a_real_render():
    scene, objs = _cube_scene([(-1.2, 0.0, 0.0), (0.3, 0.8, 0.0), (2.2, -1.0, 0.0)])  # cube2 cut by the right border
    with cycles.Renderer(_cfg()) as eng:
        _, index = eng.render(scene, seed=1)
    from types import SimpleNamespace

    insts = [SimpleNamespace(instance_id=o.pass_index, category_id=1 + (i % 2), objects=[o]) for i, o in enumerate(objs)]
    anns = annotate(index, cycles.instance_geometry(insts), cycles.camera_projection(scene))
    by_id = {a["instance_id"]: a for a in anns}
    assert set(by_id) == {1, 2, 3}
    assert by_id[1]["visibility"] > 0.9 and not by_id[1]["truncated"]
    assert by_id[3]["truncated"] and by_id[3]["visibility"] < 0.9
    for a in anns:
        x, y, w, h = a["bbox"]
        ys, xs = np.nonzero(index == a["instance_id"])
        assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
        assert a["area"] == len(xs)


def test_fast_gi_changes_light_not_masks():
    # the fast preset approximates light after the first bounce with ambient occlusion
    assert RenderConfig(preset="fast").ao_bounces == 1 and RenderConfig(preset="quality").ao_bounces == 0
    scene, _ = _cube_scene([(-1.2, 0.0, 0.0), (0.3, 0.8, 0.0)])
    scene.world.color = (0.8, 0.8, 0.8)
    out = {}
    for ao in (0, 1):
        with cycles.Renderer(_cfg(ao_bounces=ao, max_bounces=3, diffuse_bounces=3)) as eng:
            out[ao] = eng.render(scene, seed=2)
        assert scene.cycles.use_fast_gi is bool(ao) and scene.cycles.ao_bounces_render == ao
    np.testing.assert_array_equal(out[0][1], out[1][1])
    assert np.abs(out[0][0].astype(int) - out[1][0].astype(int)).max() > 0


def _tiny_config(tmp_path):
    import yaml

    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump({
        "dataset": {"name": "tiny", "num_images": 3, "seed": 11},
        "render": {"preset": "fast", "resolution": [80, 60], "samples": 1, "threads": 2},
        # no people: the human mesh library is a separate, slow-to-build asset
        "scene": {"pedestrians": {"count": [0, 0]}, "pallet_jacks": {"pushed_prob": 0.0, "count": [2, 3]}},
    }))
    return p


def test_real_render_cli_is_deterministic_across_shards_and_resume(tmp_path):
    import json

    from blender import render

    cfg = _tiny_config(tmp_path)
    single, sharded = tmp_path / "single", tmp_path / "sharded"
    assert render.main(["--config", str(cfg), "--out", str(single)]) == 0
    coco = json.loads((single / "annotations.json").read_text())
    assert len(coco["images"]) == 3 and coco["images"][0]["width"] == 80
    jacks = [a for a in coco["annotations"] if a["category_id"] == 2]
    assert jacks, "pallet jacks were planned in view but none was annotated"
    for a in coco["annotations"]:
        assert 0 < a["visibility"] <= 1 and a["area"] > 0
    part = json.loads((single / "parts" / "000000.json").read_text())
    assert part["meta"]["plan"]["camera"] and set(part["meta"]["seconds"]) == {"build", "render", "annotate"}

    assert render.main(["--config", str(cfg), "--out", str(sharded), "--shard", "2/2"]) == 0
    assert render.main(["--config", str(cfg), "--out", str(sharded), "--shard", "1/2"]) == 0
    assert (sharded / "annotations.json").read_bytes() == (single / "annotations.json").read_bytes()

    # a lost image is re-rendered to the same annotations
    (sharded / "parts" / "000001.json").unlink()
    (sharded / "annotations.json").unlink()
    assert render.main(["--config", str(cfg), "--out", str(sharded)]) == 0
    assert (sharded / "annotations.json").read_bytes() == (single / "annotations.json").read_bytes()

    # --jobs 2: two local processes (one Cycles thread each), then the merge: the same dataset
    jobs = tmp_path / "jobs"
    assert render.main(["--config", str(cfg), "--out", str(jobs), "--jobs", "2"]) == 0
    assert (jobs / "annotations.json").read_bytes() == (single / "annotations.json").read_bytes()
    assert {json.loads(p.read_text())["meta"]["shard"] for p in (jobs / "parts").glob("*.json")} == {"1/2", "2/2"}
    assert json.loads((jobs / "manifest.json").read_text())["complete"] is True


def test_real_clip_keeps_track_ids_while_the_camera_moves(tmp_path):
    import yaml

    from blender import clip

    cfg = tmp_path / "clip.yaml"
    cfg.write_text(yaml.safe_dump({
        "clip": {"name": "t", "num_frames": 3, "fps": 2, "camera": "robot", "robot_speed": 3.0, "min_labelled": 2},
        "render": {"preset": "fast", "resolution": [80, 60], "samples": 1, "threads": 2},
        "scene": {"pedestrians": {"count": [0, 0]}, "pallet_jacks": {"pushed_prob": 0.0, "count": [2, 3]}},
    }))
    out = tmp_path / "clip"
    assert clip.main(["--config", str(cfg), "--out", str(out)]) == 0
    rows = [line.split(",") for line in (out / "gt" / "gt.txt").read_text().splitlines()]
    assert rows and {r[0] for r in rows} <= {"1", "2", "3"}
    by_track: dict[str, list] = {}
    for r in rows:
        assert r[7] == "2" and 0 < float(r[8]) <= 1  # pallet jacks only, visibility in (0, 1]
        by_track.setdefault(r[1], []).append(r)
    # some jack is seen in several frames under one id, and the camera motion moves its box
    longest = max(by_track.values(), key=len)
    assert len(longest) >= 2
    assert len({tuple(r[2:6]) for r in longest}) >= 2
    assert "seqLength=3" in (out / "seqinfo.ini").read_text()


def test_missing_human_library_is_a_user_error_and_claims_nothing(tmp_path):
    import yaml

    from blender import render
    from pipeline.common import UserError

    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({"dataset": {"num_images": 1}, "humans_dir": str(tmp_path / "no_humans")}))
    with pytest.raises(UserError, match="human mesh library not found"):
        render.main(["--config", str(cfg), "--out", str(tmp_path / "ds")])
    assert not (tmp_path / "ds" / "manifest.json").exists()
