"""Human mesh library generator (anny). Slow the first time: anny builds a ~0.8 GB cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.common import UserError
from pipeline.humans import (
    CYCLE_PHASES,
    POSE_CYCLE,
    REGIONS,
    generate,
    load_human_index,
    main,
    still_meshes,
)

pytest.importorskip("anny")
pytestmark = pytest.mark.slow


def _obj_vertices(path):
    rows = [ln.split()[1:] for ln in path.read_text().splitlines() if ln.startswith("v ")]
    v = np.array(rows, float)
    return np.c_[v[:, 0], -v[:, 2], v[:, 1]]  # file is Y-up (x, z, -y): back to Z-up


def test_library_is_complete_resumable_and_seeded(tmp_path, capsys):
    out = tmp_path / "humans"
    res = generate(out, count=2, seed=3, progress=False)
    assert res["made"] == 2 + CYCLE_PHASES - 1     # h0000 walks: the other 7 phases of its cycle
    index = json.loads((out / "index.json").read_text())
    assert [m["id"] for m in index["meshes"]] == ["h0000", "h0001"]
    for m, (pose, _) in zip(index["meshes"], POSE_CYCLE, strict=False):
        assert m["pose"] == pose
        assert 1.5 <= m["stature"] <= 1.95
        assert sum(m["region_face_counts"].values()) == m["n_faces"] > 20000
        assert set(m["region_face_counts"]) == set(REGIONS)
        v = _obj_vertices(out / m["file"])
        assert len(v) == m["n_vertices"]
        assert v[:, 2].min() == pytest.approx(0.0, abs=1e-4)       # feet on the floor
        assert v[:, 2].max() == pytest.approx(m["height"], abs=1e-3)
        assert abs(v[:, 0].mean()) < 0.1 and abs(v[:, 1].mean()) < 0.15
        # the head is on top, the face looks to -Y (nose ahead of the head centre)
        head = np.asarray(m["head_center"])
        assert head[2] > 0.8 * m["height"]
        near_head = v[np.linalg.norm(v - head, axis=1) < 0.15]
        assert near_head[:, 1].min() < head[1] - 0.05
        vest = _obj_vertices(out / m["vest_file"])
        assert 0.8 < vest[:, 2].min() / m["height"] * 1.75 and vest[:, 2].max() < head[2]
    # h0000's walk cycle: one body (same shape, same jitter), the legs at 8 phases
    cycles = index["cycles"]
    assert [m["id"] for m in cycles] == [f"h0000p{k}" for k in range(1, CYCLE_PHASES)]
    base = index["meshes"][0]
    assert [m["phase"] for m in cycles] == [k / CYCLE_PHASES for k in range(1, CYCLE_PHASES)]
    for m in cycles:
        assert (m["cycle_of"], m["body"], m["pose"]) == ("h0000", 0, "walk")
        assert m["phenotype"] == base["phenotype"] and m["stature"] == base["stature"]
        assert m["n_vertices"] == base["n_vertices"] and m["region_face_counts"] == base["region_face_counts"]
    v0, v4 = _obj_vertices(out / "h0000.obj"), _obj_vertices(out / "h0000p4.obj")
    moved = np.linalg.norm(v4 - v0, axis=1)
    feet = v0[:, 2] < 0.15
    assert np.median(moved[feet]) > 0.1              # half a cycle later the feet have swapped
    head = np.linalg.norm(v0 - np.asarray(base["head_center"]), axis=1) < 0.1
    assert np.median(moved[head]) < 0.03             # the head rides along
    lib = load_human_index(out)
    assert len(lib) == 2 + CYCLE_PHASES - 1 and [m["id"] for m in still_meshes(lib)] == ["h0000", "h0001"]
    # resume: nothing is remade, files untouched
    stamp = (out / "h0000.obj").stat().st_mtime_ns
    assert generate(out, count=2, seed=3, progress=False)["made"] == 0
    assert (out / "h0000.obj").stat().st_mtime_ns == stamp
    # extending keeps the first meshes and adds the next pose of the cycle
    assert generate(out, count=3, seed=3, progress=False)["made"] == 1
    assert json.loads((out / "index.json").read_text())["meshes"][2]["pose"] == POSE_CYCLE[2][0]
    with pytest.raises(UserError, match="seed 3"):
        generate(out, count=3, seed=4, progress=False)
    assert main(["--out", str(out), "--count", "3", "--seed", "3"]) == 0
    assert "3 meshes and 7 walk-cycle phases" in capsys.readouterr().out


@pytest.mark.blender
def test_blender_imports_the_library_upright_with_region_slots(tmp_path):
    bpy = pytest.importorskip("bpy")
    from blender.assets.pedestrian import HumanMeshes

    out = tmp_path / "humans"
    generate(out, count=1, seed=0, progress=False)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    lib = HumanMeshes(out)
    rec = lib.index["h0000"]
    me, regions = lib.get(rec["file"])
    assert regions == list(rec["region_face_counts"])          # slot order = file order
    counts = np.bincount([p.material_index for p in me.polygons], minlength=len(regions))
    assert counts.tolist() == list(rec["region_face_counts"].values())
    co = np.array([v.co[:] for v in me.vertices])
    assert co[:, 2].min() == pytest.approx(0.0, abs=1e-3)        # Z-up, feet on the floor
    assert co[:, 2].max() == pytest.approx(rec["height"], abs=1e-3)
    vest, vregions = lib.get(rec["vest_file"])
    assert set(vregions) == {"vest", "stripe"} and len(vest.polygons) > 500
    assert lib.get(rec["file"])[0] is me                          # imported once
    assert not [m for m in bpy.data.materials if m.name.split(".")[0] in REGIONS]


@pytest.mark.blender
def test_library_meshes_outlive_the_frame_and_come_back_after_a_reset(tmp_path):
    bpy = pytest.importorskip("bpy")
    from blender.assets.pedestrian import human_meshes
    from blender.scene import clear_scene

    out = tmp_path / "humans"
    generate(out, count=1, seed=0, progress=False)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    lib = human_meshes(out)
    assert human_meshes(out) is lib                               # one cache per library
    rec = lib.index["h0000"]
    me, regions = lib.get(rec["file"], rec)
    n_faces = len(me.polygons)
    clear_scene()                                                 # the end of a frame
    assert lib.get(rec["file"], rec)[0] is me and bpy.data.meshes.get(me.name) == me
    bpy.ops.wm.read_factory_settings(use_empty=True)              # Blender freed it: imported again
    me2, regions2 = lib.get(rec["file"], rec)
    assert len(me2.polygons) == n_faces and regions2 == regions and bpy.data.meshes.get(me2.name) == me2


@pytest.mark.blender
def test_cloth_coordinates_are_the_body_standing_straight_in_every_walk_phase(tmp_path):
    """Fabric patterns are laid in the `cloth` attribute (blender/materials/fabric.py): per
    vertex, in the OBJ's vertex order, the same body standing straight whatever the phase, so a
    pattern stays on the cloth as the legs swing. A cloth file of the wrong shape is refused."""
    bpy = pytest.importorskip("bpy")
    from blender.assets.pedestrian import HumanMeshes
    from blender.materials.fabric import CLOTH_ATTRIBUTE

    out = tmp_path / "humans"
    generate(out, count=1, seed=0, progress=False)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    lib = HumanMeshes(out)
    cloth = {}
    for mid in ("h0000", "h0000p4"):
        rec = lib.index[mid]
        me, _ = lib.get(rec["file"], rec)
        co = np.array([v.co[:] for v in me.vertices])
        assert np.abs(co - _obj_vertices(out / rec["file"])).max() < 1e-4     # the importer keeps vertex order
        cloth[mid] = np.array([d.vector[:] for d in me.attributes[CLOTH_ATTRIBUTE].data])
        assert np.allclose(cloth[mid], np.load(out / rec["cloth_file"]), atol=1e-6)
        if mid == "h0000p4":
            feet = cloth[mid][:, 2] < 0.15
            assert np.median(np.linalg.norm(co - cloth[mid], axis=1)[feet]) > 0.05   # posed feet are elsewhere
    assert np.array_equal(cloth["h0000"], cloth["h0000p4"])
    # one file per body, shared by its poses and phases
    assert lib.index["h0000p4"]["cloth_file"] == lib.index["h0000"]["cloth_file"] == "b0000_cloth.npy"
    (out / "h0000_cloth.npy").write_bytes((out / "b0000_cloth.npy").read_bytes())   # the per-mesh layout of before
    assert generate(out, count=1, seed=0, progress=False)["made"] == 0
    assert sorted(p.name for p in out.glob("*_cloth.npy")) == ["b0000_cloth.npy"]
    np.save(out / "b0000_cloth.npy", np.zeros((10, 3), np.float32))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    with pytest.raises(ValueError, match=r"b0000_cloth.npy: expected cloth coordinates of shape \(\d+, 3\)"):
        HumanMeshes(out).get("h0000p4.obj", lib.index["h0000p4"])


def test_load_index_is_the_one_reader(tmp_path):
    from pipeline.humans import load_human_index, load_index

    with pytest.raises(UserError, match="human mesh library not found; run `make humans`"):
        load_index(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"seed": 3, "meshes": []}))
    with pytest.raises(UserError, match="non-empty 'meshes'"):
        load_index(tmp_path)
    (tmp_path / "index.json").write_text(json.dumps({"seed": 3, "meshes": [{"id": "h0000"}]}))
    assert load_index(tmp_path)["seed"] == 3 and load_human_index(tmp_path) == [{"id": "h0000"}]
