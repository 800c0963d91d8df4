"""Scene planner (pure numpy): determinism, ranges, negatives, camera check, placement."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from blender.plan import PLAN_VERSION, SceneConfig, ScenePlan, plan_scene
from blender.plan.camera import check_camera_sees, labelled_boxes
from blender.plan.geometry import (
    Footprint,
    aimed_camera,
    footprints_overlap,
    jack_extent,
    look_at_matrix,
    matrix_to_euler_xyz,
    project,
)
from blender.plan.lighting import kelvin_to_rgb
from blender.plan.scene_config import APPEARANCE_OFF
from blender.plan.scene_plan import RackRow, View
from pipeline.common import UserError, load_config

# A library as pipeline.humans writes it, reduced to what the planner reads.
HUMANS = [{"id": f"h{i:04d}", "pose": pose, "height": h, "stature": 1.75}
          for i, (pose, h) in enumerate([("walk", 1.72), ("stand", 1.80), ("carry", 1.66),
                                         ("bend", 1.35), ("crouch", 1.10), ("push", 1.62),
                                         ("walk", 1.58), ("stand", 1.90)])]


# procedural materials (plan version 3, tests/test_materials.py) and people's appearance (version 4,
# tests/test_people.py) off: the plans of version 1
PLAIN = SceneConfig(materials={"families": []}, pedestrians=APPEARANCE_OFF)


def _plan(seed, cfg=None, **kw):
    return plan_scene(cfg or PLAIN, np.random.default_rng(seed), humans=HUMANS, **kw)


@pytest.fixture(scope="module")
def plans():
    return [_plan(s) for s in range(12)]


def test_same_seed_same_plan_and_json_round_trip():
    a, b = _plan(7), _plan(7)
    assert json.dumps(a.to_dict()) == json.dumps(b.to_dict())
    back = ScenePlan.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back == a  # JSON-serializable, nothing lost, typed again
    assert isinstance(back.layout.racks[0], RackRow) and back.version == PLAN_VERSION
    kinds = {type(d).__name__ for p in (a, _plan(8), _plan(9)) for d in p.distractors}
    assert len(kinds) >= 3  # the distractor kinds come back as their own classes


def test_plan_json_keeps_the_version_1_layout():
    d = _plan(3, negative=True).to_dict()
    assert list(d) == ["version", "negative", "layout", "doors", "walls", "rack_colors", "stock",
                       "stock_colors", "floor", "lights", "focus", "pedestrians", "pallet_jacks",
                       "distractors", "camera", "post"]
    assert d["version"] == 1
    forklift = next(x for s in range(20) for x in _plan(s).to_dict()["distractors"] if x["kind"] == "forklift")
    assert list(forklift) == ["kind", "color", "length", "width", "mast_height", "fork_height", "footprint",
                              "x", "y", "yaw"]
    person = next(x for s in range(5) for x in _plan(s).to_dict()["pedestrians"])
    assert list(person)[:3] == ["mesh_id", "pose", "height"] and list(person)[-3:] == ["x", "y", "yaw"]


def test_plan_from_dict_refuses_other_versions_and_names_bad_fields():
    d = _plan(4).to_dict()
    # version 2 adds site assets and a calibrated lens (tests/test_site_camera.py), 3 materials, 4 people
    with pytest.raises(ValueError, match=r"version 5: this code reads versions \[1, 2, 3, 4\]"):
        ScenePlan.from_dict({**d, "version": 5})
    with pytest.raises(ValueError, match="version None"):
        ScenePlan.from_dict({k: v for k, v in d.items() if k != "version"})
    bad = json.loads(json.dumps(d))
    bad["layout"]["racks"][0]["colour"] = 1
    with pytest.raises(ValueError, match=r"plan\.layout\.racks\[0\]\.colour: unknown field"):
        ScenePlan.from_dict(bad)
    bad = json.loads(json.dumps(d))
    del bad["camera"]["fov_deg"]
    with pytest.raises(ValueError, match=r"plan\.camera\.fov_deg: missing"):
        ScenePlan.from_dict(bad)
    bad = json.loads(json.dumps(d))
    bad["distractors"] = [{**bad["distractors"][0], "kind": "tractor"}]
    with pytest.raises(ValueError, match=r"plan\.distractors\[0\]\.kind: unknown kind 'tractor'"):
        ScenePlan.from_dict(bad)


def test_different_seeds_differ(plans):
    dumps = {json.dumps(p.to_dict()) for p in plans}
    assert len(dumps) == len(plans)
    assert len({round(p.layout.width, 6) for p in plans}) == len(plans)
    assert len({p.camera.kind for p in plans}) == 2


def test_sampled_values_stay_in_configured_ranges():
    cfg = load_config(None, SceneConfig, [
        "layout.width=[20,22]", "layout.length=[30,31]", "layout.height=[9,9.5]",
        "lights.color_temp_k=[4000,4100]", "lights.fixture_power_w=[500,600]",
        "camera.cctv_height=[3,4]", "camera.robot_height=[0.8,1.0]",
        "camera.cctv_fov_deg=[60,61]", "camera.robot_fov_deg=[70,71]",
        "pedestrians.count=[3,4]", "pallet_jacks.count=[1,2]", "pallet_jacks.handle_angle_deg=[10,30]",
        "distractors.count=[2,3]", "post.noise_sigma=[0.01,0.02]", "post.blur_px=[1,2]",
        "layout.rack_height=[5,6]",
    ])
    for seed in range(10):
        p = _plan(seed, cfg)
        lay = p.layout
        assert 20 <= lay.width <= 22 and 30 <= lay.length <= 31 and 9 <= lay.height <= 9.5
        assert all(5 <= r.height <= 6 for r in lay.racks)
        assert 4000 <= p.lights.color_temp_k <= 4100
        # per-fixture power jitters +-15% around the drawn level
        assert all(500 * 0.85 <= f.power <= 600 * 1.15 for f in p.lights.fixtures)
        cam = p.camera
        lo, hi = (3, 4) if cam.kind == "cctv" else (0.8, 1.0)
        assert lo <= cam.location[2] <= hi
        flo, fhi = (60, 61) if cam.kind == "cctv" else (70, 71)
        assert flo <= cam.fov_deg <= fhi
        assert math.isclose(cam.focal_mm, 18 / math.tan(math.radians(cam.fov_deg) / 2))
        # pushers are added on top of the free pedestrians
        free = [q for q in p.pedestrians if q.pushing is None]
        assert len(free) <= 4 and 1 <= len(p.pallet_jacks) <= 2
        assert all(10 <= j.handle_angle_deg <= 30 for j in p.pallet_jacks)
        assert 0.01 <= p.post.noise_sigma <= 0.02
        assert p.post.blur_px == 0.0 or 1 <= p.post.blur_px <= 2
        for q in p.pedestrians:
            assert q.mesh_id in {h["id"] for h in HUMANS}
            assert all(0 <= c <= 1 for key in ("skin", "shirt", "trousers", "vest_color") for c in getattr(q, key))
        for j in p.pallet_jacks:
            assert j.kind in ("manual", "electric")
            assert j.fork_height == 0.085 or 0.17 <= j.fork_height <= 0.2


def test_without_library_heights_come_from_the_config():
    cfg = load_config(None, SceneConfig, ["pedestrians.height=[1.6,1.7]", "pedestrians.count=[4,4]"])
    p = plan_scene(cfg, np.random.default_rng(3))
    assert p.pedestrians
    assert all(q.mesh_id is None and 1.6 <= q.height <= 1.7 for q in p.pedestrians)


def test_negative_share_follows_the_config():
    cfg = load_config(None, SceneConfig, ["negative_fraction=0.3"])
    flags = [_plan(s, cfg, negative=None).negative for s in range(40)]
    assert 5 <= sum(flags) <= 20   # Binomial(40, 0.3): mean 12
    none = [_plan(s, load_config(None, SceneConfig, ["negative_fraction=0"]), negative=None).negative
            for s in range(5)]
    assert not any(none)


def test_negative_plans_show_nothing_labelled():
    for seed in range(8):
        p = _plan(seed, negative=True)
        assert p.negative
        view = check_camera_sees(p)
        assert view.seen == [] and view.maybe == []


def test_positive_plans_see_a_labelled_object(plans):
    for p in plans:
        assert not p.negative
        assert p.pedestrians or p.pallet_jacks
        view = check_camera_sees(p)
        assert view.seen, f"camera sees nothing labelled: {p.camera.location}"
        assert view.seen == p.camera.view.seen


def test_camera_stays_inside_the_hall_under_the_roof(plans):
    for p in plans:
        x, y, z = p.camera.location
        lay = p.layout
        assert 0 < x < lay.width and 0 < y < lay.length and 0 < z < lay.height - 0.5


def test_no_footprint_overlaps(plans):
    for p in plans:
        fps = []
        for q in p.pedestrians:
            if q.pushing is None:
                fps.append(Footprint(q.x, q.y, q.yaw, 0.45, 0.45))
        for j in p.pallet_jacks:
            x0, x1 = jack_extent(j)
            fps.append(Footprint(j.x, j.y, j.yaw, x1 - x0, j.width))
        for d in p.distractors:
            fps.append(Footprint(d.x, d.y, d.yaw, d.footprint[0], d.footprint[1]))
        racks = [Footprint((r.x0 + r.x1) / 2, (r.y0 + r.y1) / 2, 0.0, r.x1 - r.x0, r.y1 - r.y0)
                 for r in p.layout.racks]
        for i, a in enumerate(fps):
            assert not any(footprints_overlap(a, r) for r in racks), a
            assert not any(footprints_overlap(a, b) for b in fps[i + 1:]), a


def test_pushers_stand_behind_their_jack_facing_it():
    found = 0
    for seed in range(30):
        p = _plan(seed)
        for k, j in enumerate(p.pallet_jacks):
            if j.pushed_by is None:
                continue
            q = p.pedestrians[j.pushed_by]
            assert q.pushing == k and math.isclose(q.yaw, j.yaw, abs_tol=1e-4)
            # behind: along the jack's -X, within reach of the tiller
            dx, dy = q.x - j.x, q.y - j.y
            along = dx * math.cos(j.yaw) + dy * math.sin(j.yaw)
            assert along < 0 and abs(-dx * math.sin(j.yaw) + dy * math.cos(j.yaw)) < 1e-3
            found += 1
    assert found >= 3


def test_objects_in_aisles_turn_along_them():
    aligned = total = 0
    for seed in range(15):
        p = _plan(seed)
        lay = p.layout
        for j in p.pallet_jacks:
            in_aisle = any(a.x0 < j.x < a.x1 for a in lay.aisles[1:]) and \
                lay.rack_y[0] + 1 < j.y < lay.rack_y[1] - 1 and \
                not (lay.cross_aisle and lay.cross_aisle.y0 - 1 < j.y < lay.cross_aisle.y1 + 1)
            if in_aisle:
                total += 1
                aligned += abs(math.sin(j.yaw)) > 0.95
    assert total >= 3 and aligned / total >= 0.7


def test_footprint_overlap_geometry():
    a = Footprint(0.0, 0.0, 0.0, 2.0, 1.0)
    assert footprints_overlap(a, replace(a, x=1.9))
    assert not footprints_overlap(a, replace(a, x=2.1))
    # turned 90 degrees the second box is 1 m long in x: touches only past 1.5 m
    assert not footprints_overlap(a, replace(a, x=1.55, yaw=math.pi / 2))
    assert footprints_overlap(a, replace(a, x=1.45, yaw=math.pi / 2))
    assert footprints_overlap(a, replace(a, x=2.1), margin=0.1)
    # a diamond next to the corner: the SAT axes of the rotated box separate them
    assert not footprints_overlap(a, Footprint(1.9, 1.4, math.pi / 4, 1.0, 1.0))


def test_camera_math_projects_the_look_at_point_to_the_centre():
    loc, tgt = [2.0, -3.0, 4.0], [5.0, 6.0, 0.5]
    R = look_at_matrix(loc, tgt, roll_rad=0.2)
    assert np.allclose(R.T @ R, np.eye(3), atol=1e-9) and math.isclose(np.linalg.det(R), 1.0)
    cam = aimed_camera("cctv", loc, tgt, 0.2, 70.0)
    assert cam.matrix == R.tolist() and math.isclose(cam.roll_deg, math.degrees(0.2))
    assert math.isclose(cam.focal_mm, 18 / math.tan(math.radians(35)))
    uv, depth = project(cam, np.array([tgt, loc]) + [[0, 0, 0], [0, 0, 1e-3]], aspect=4 / 3)
    assert np.allclose(uv[0], [0.5, 0.5]) and depth[0] > 0
    # Euler XYZ reproduces the matrix (Blender composes R = Rz @ Ry @ Rx)
    a, b, c = matrix_to_euler_xyz(R)
    Rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    Ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    Rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    assert np.allclose(Rz @ Ry @ Rx, R, atol=1e-9)
    assert np.allclose(cam.rotation_euler, [a, b, c])
    # a point 35 degrees right of the axis (half the horizontal FOV) lands on the right edge
    right = np.asarray(loc) + (R @ np.array([math.tan(math.radians(35)), 0, -1.0])) * 5
    uv, _ = project(cam, right[None], aspect=4 / 3)
    assert np.allclose(uv[0], [1.0, 0.5], atol=1e-9)


def test_check_camera_sees_respects_frame_and_racks():
    p = _plan(0)
    p.pedestrians = [replace(p.pedestrians[0], x=10.0, y=5.0, z=0.0, yaw=0.0, height=1.7)]
    p.pallet_jacks = []
    p.layout.racks = [replace(p.layout.racks[0], x0=9.0, x1=11.0, y0=8.0, y1=9.0, height=6.0)]
    p.camera = aimed_camera("cctv", [10.0, 1.0, 1.0], [10.0, 5.0, 0.85], 0.0, 60.0)
    assert check_camera_sees(p).seen == [["pedestrian", 0]]
    # behind a rack
    p.camera = aimed_camera("cctv", [10.0, 12.0, 1.0], [10.0, 5.0, 0.85], 0.0, 60.0)
    view = check_camera_sees(p)
    assert view.seen == [] and view.maybe == [["pedestrian", 0]]
    # looking away
    p.camera = aimed_camera("cctv", [10.0, 1.0, 1.0], [10.0, -5.0, 0.85], 0.0, 60.0)
    assert check_camera_sees(p) == View()
    assert len(labelled_boxes(p.pedestrians, p.pallet_jacks)) == 1


def test_kelvin_colours_run_from_warm_to_cool():
    warm, d65, cool = kelvin_to_rgb(3000), kelvin_to_rgb(6600), kelvin_to_rgb(9000)
    assert warm[0] == 1.0 and warm[2] < 0.7
    assert min(d65) > 0.95
    assert cool[2] == 1.0 and cool[0] < 1.0


def test_config_errors_name_the_field():
    with pytest.raises(UserError, match=r"layout\.width.*low end is above"):
        load_config(None, SceneConfig, ["layout.width=[40,20]"])
    with pytest.raises(UserError, match="unknown pose 'dance'"):
        load_config(None, SceneConfig, ["pedestrians.pose_weights={dance: 1}"])
    with pytest.raises(UserError, match="did you mean 'pallet_jacks'"):
        load_config(None, SceneConfig, ["pallet_jack.count=[1,2]"])
    with pytest.raises(UserError, match="colors"):
        load_config(None, SceneConfig, ["pallet_jacks.colors=[purple]"])
    with pytest.raises(UserError, match=r"pallet_jacks\.fork_length.*low end is above"):
        load_config(None, SceneConfig, ["pallet_jacks.fork_length=[1.3,1.1]"])


def test_fork_length_comes_from_the_config():
    cfg = load_config(None, SceneConfig, ["pallet_jacks.fork_length=[1.5,1.6]", "pallet_jacks.count=[3,3]"])
    jacks = [j for s in range(4) for j in _plan(s, cfg).pallet_jacks]
    assert jacks and all(1.5 <= j.fork_length <= 1.6 for j in jacks)
    assert all(1.0 <= j.fork_length <= 1.2 for s in range(4) for j in _plan(s).pallet_jacks)
