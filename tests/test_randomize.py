"""Scene planner (pure numpy): determinism, ranges, negatives, camera check, placement."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from blender.randomize import (
    SceneConfig,
    check_camera_sees,
    footprints_overlap,
    jack_extent,
    kelvin_to_rgb,
    labelled_boxes,
    look_at_matrix,
    matrix_to_euler_xyz,
    plan_scene,
    project,
)
from pipeline.common import UserError, load_config

# A library as pipeline.humans writes it, reduced to what the planner reads.
HUMANS = [{"id": f"h{i:04d}", "pose": pose, "height": h, "stature": 1.75}
          for i, (pose, h) in enumerate([("walk", 1.72), ("stand", 1.80), ("carry", 1.66),
                                         ("bend", 1.35), ("crouch", 1.10), ("push", 1.62),
                                         ("walk", 1.58), ("stand", 1.90)])]


def _plan(seed, cfg=None, **kw):
    return plan_scene(cfg or SceneConfig(), np.random.default_rng(seed), humans=HUMANS, **kw)


@pytest.fixture(scope="module")
def plans():
    return [_plan(s) for s in range(12)]


def test_same_seed_same_plan_and_json_round_trip():
    a, b = _plan(7), _plan(7)
    assert json.dumps(a) == json.dumps(b)
    assert json.loads(json.dumps(a)) == a  # JSON-serializable, nothing lost


def test_different_seeds_differ(plans):
    dumps = {json.dumps(p) for p in plans}
    assert len(dumps) == len(plans)
    assert len({round(p["layout"]["width"], 6) for p in plans}) == len(plans)
    assert len({p["camera"]["kind"] for p in plans}) == 2


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
        lay = p["layout"]
        assert 20 <= lay["width"] <= 22 and 30 <= lay["length"] <= 31 and 9 <= lay["height"] <= 9.5
        assert all(5 <= r["height"] <= 6 for r in lay["racks"])
        assert 4000 <= p["lights"]["color_temp_k"] <= 4100
        # per-fixture power jitters +-15% around the drawn level
        assert all(500 * 0.85 <= f["power"] <= 600 * 1.15 for f in p["lights"]["fixtures"])
        cam = p["camera"]
        lo, hi = (3, 4) if cam["kind"] == "cctv" else (0.8, 1.0)
        assert lo <= cam["location"][2] <= hi
        flo, fhi = (60, 61) if cam["kind"] == "cctv" else (70, 71)
        assert flo <= cam["fov_deg"] <= fhi
        assert math.isclose(cam["focal_mm"], 18 / math.tan(math.radians(cam["fov_deg"]) / 2))
        # pushers are added on top of the free pedestrians
        free = [q for q in p["pedestrians"] if q["pushing"] is None]
        assert len(free) <= 4 and 1 <= len(p["pallet_jacks"]) <= 2
        assert all(10 <= j["handle_angle_deg"] <= 30 for j in p["pallet_jacks"])
        assert 0.01 <= p["post"]["noise_sigma"] <= 0.02
        assert p["post"]["blur_px"] == 0.0 or 1 <= p["post"]["blur_px"] <= 2
        for q in p["pedestrians"]:
            assert q["mesh_id"] in {h["id"] for h in HUMANS}
            assert all(0 <= c <= 1 for key in ("skin", "shirt", "trousers", "vest_color") for c in q[key])
        for j in p["pallet_jacks"]:
            assert j["kind"] in ("manual", "electric")
            assert j["fork_height"] == 0.085 or 0.17 <= j["fork_height"] <= 0.2


def test_without_library_heights_come_from_the_config():
    cfg = load_config(None, SceneConfig, ["pedestrians.height=[1.6,1.7]", "pedestrians.count=[4,4]"])
    p = plan_scene(cfg, np.random.default_rng(3))
    assert p["pedestrians"]
    assert all(q["mesh_id"] is None and 1.6 <= q["height"] <= 1.7 for q in p["pedestrians"])


def test_negative_share_follows_the_config():
    cfg = load_config(None, SceneConfig, ["negative_fraction=0.3"])
    flags = [_plan(s, cfg, negative=None)["negative"] for s in range(40)]
    assert 5 <= sum(flags) <= 20   # Binomial(40, 0.3): mean 12
    none = [_plan(s, load_config(None, SceneConfig, ["negative_fraction=0"]), negative=None)["negative"]
            for s in range(5)]
    assert not any(none)


def test_negative_plans_show_nothing_labelled():
    for seed in range(8):
        p = _plan(seed, negative=True)
        assert p["negative"]
        view = check_camera_sees(p)
        assert view["seen"] == [] and view["maybe"] == []


def test_positive_plans_see_a_labelled_object(plans):
    for p in plans:
        assert not p["negative"]
        assert p["pedestrians"] or p["pallet_jacks"]
        view = check_camera_sees(p)
        assert view["seen"], f"camera sees nothing labelled: {p['camera']['location']}"
        assert view["seen"] == p["camera"]["view"]["seen"]


def test_camera_stays_inside_the_hall_under_the_roof(plans):
    for p in plans:
        x, y, z = p["camera"]["location"]
        lay = p["layout"]
        assert 0 < x < lay["width"] and 0 < y < lay["length"] and 0 < z < lay["height"] - 0.5


def test_no_footprint_overlaps(plans):
    for p in plans:
        fps = []
        for q in p["pedestrians"]:
            if q["pushing"] is None:
                fps.append({"x": q["x"], "y": q["y"], "yaw": q["yaw"], "length": 0.45, "width": 0.45})
        for j in p["pallet_jacks"]:
            x0, x1 = jack_extent(j)
            fps.append({"x": j["x"], "y": j["y"], "yaw": j["yaw"], "length": x1 - x0, "width": j["width"]})
        for d in p["distractors"]:
            fps.append({"x": d["x"], "y": d["y"], "yaw": d["yaw"], "length": d["footprint"][0],
                        "width": d["footprint"][1]})
        racks = [{"x": (r["x0"] + r["x1"]) / 2, "y": (r["y0"] + r["y1"]) / 2, "yaw": 0.0,
                  "length": r["x1"] - r["x0"], "width": r["y1"] - r["y0"]} for r in p["layout"]["racks"]]
        for i, a in enumerate(fps):
            assert not any(footprints_overlap(a, r) for r in racks), a
            assert not any(footprints_overlap(a, b) for b in fps[i + 1:]), a


def test_pushers_stand_behind_their_jack_facing_it():
    found = 0
    for seed in range(30):
        p = _plan(seed)
        for k, j in enumerate(p["pallet_jacks"]):
            if j["pushed_by"] is None:
                continue
            q = p["pedestrians"][j["pushed_by"]]
            assert q["pushing"] == k and math.isclose(q["yaw"], j["yaw"], abs_tol=1e-4)
            # behind: along the jack's -X, within reach of the tiller
            dx, dy = q["x"] - j["x"], q["y"] - j["y"]
            along = dx * math.cos(j["yaw"]) + dy * math.sin(j["yaw"])
            assert along < 0 and abs(-dx * math.sin(j["yaw"]) + dy * math.cos(j["yaw"])) < 1e-3
            found += 1
    assert found >= 3


def test_objects_in_aisles_turn_along_them():
    aligned = total = 0
    for seed in range(15):
        p = _plan(seed)
        lay = p["layout"]
        for j in p["pallet_jacks"]:
            in_aisle = any(a["x0"] < j["x"] < a["x1"] for a in lay["aisles"][1:]) and \
                lay["rack_y"][0] + 1 < j["y"] < lay["rack_y"][1] - 1 and \
                not (lay["cross_aisle"] and lay["cross_aisle"]["y0"] - 1 < j["y"] < lay["cross_aisle"]["y1"] + 1)
            if in_aisle:
                total += 1
                aligned += abs(math.sin(j["yaw"])) > 0.95
    assert total >= 3 and aligned / total >= 0.7


def test_footprint_overlap_geometry():
    a = {"x": 0.0, "y": 0.0, "yaw": 0.0, "length": 2.0, "width": 1.0}
    assert footprints_overlap(a, {**a, "x": 1.9})
    assert not footprints_overlap(a, {**a, "x": 2.1})
    # turned 90 degrees the second box is 1 m long in x: touches only past 1.5 m
    assert not footprints_overlap(a, {**a, "x": 1.55, "yaw": math.pi / 2})
    assert footprints_overlap(a, {**a, "x": 1.45, "yaw": math.pi / 2})
    assert footprints_overlap(a, {**a, "x": 2.1}, margin=0.1)
    # a diamond next to the corner: the SAT axes of the rotated box separate them
    assert not footprints_overlap(a, {"x": 1.9, "y": 1.4, "yaw": math.pi / 4, "length": 1.0, "width": 1.0})


def test_camera_math_projects_the_look_at_point_to_the_centre():
    loc, tgt = [2.0, -3.0, 4.0], [5.0, 6.0, 0.5]
    R = look_at_matrix(loc, tgt, roll_rad=0.2)
    assert np.allclose(R.T @ R, np.eye(3), atol=1e-9) and math.isclose(np.linalg.det(R), 1.0)
    cam = {"matrix": R.tolist(), "location": loc, "fov_deg": 70.0}
    uv, depth = project(cam, np.array([tgt, loc]) + [[0, 0, 0], [0, 0, 1e-3]], aspect=4 / 3)
    assert np.allclose(uv[0], [0.5, 0.5]) and depth[0] > 0
    # Euler XYZ reproduces the matrix (Blender composes R = Rz @ Ry @ Rx)
    a, b, c = matrix_to_euler_xyz(R)
    Rx = np.array([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]])
    Ry = np.array([[math.cos(b), 0, math.sin(b)], [0, 1, 0], [-math.sin(b), 0, math.cos(b)]])
    Rz = np.array([[math.cos(c), -math.sin(c), 0], [math.sin(c), math.cos(c), 0], [0, 0, 1]])
    assert np.allclose(Rz @ Ry @ Rx, R, atol=1e-9)
    # a point 35 degrees right of the axis (half the horizontal FOV) lands on the right edge
    right = np.asarray(loc) + (R @ np.array([math.tan(math.radians(35)), 0, -1.0])) * 5
    uv, _ = project(cam, right[None], aspect=4 / 3)
    assert np.allclose(uv[0], [1.0, 0.5], atol=1e-9)


def test_check_camera_sees_respects_frame_and_racks():
    p = _plan(0)
    p["pedestrians"], p["pallet_jacks"] = [dict(_plan(0)["pedestrians"][0])], []
    q = p["pedestrians"][0]
    q.update(x=10.0, y=5.0, z=0.0, yaw=0.0, height=1.7)
    p["layout"]["racks"] = [{"x0": 9.0, "x1": 11.0, "y0": 8.0, "y1": 9.0, "height": 6.0}]
    p["camera"].update(location=[10.0, 1.0, 1.0], fov_deg=60.0,
                       matrix=look_at_matrix([10.0, 1.0, 1.0], [10.0, 5.0, 0.85]).tolist())
    assert check_camera_sees(p)["seen"] == [["pedestrian", 0]]
    # behind a rack
    p["camera"].update(location=[10.0, 12.0, 1.0], matrix=look_at_matrix([10.0, 12.0, 1.0], [10.0, 5.0, 0.85]).tolist())
    view = check_camera_sees(p)
    assert view["seen"] == [] and view["maybe"] == [["pedestrian", 0]]
    # looking away
    p["camera"].update(location=[10.0, 1.0, 1.0], matrix=look_at_matrix([10.0, 1.0, 1.0], [10.0, -5.0, 0.85]).tolist())
    assert check_camera_sees(p) == {"seen": [], "maybe": []}
    assert len(labelled_boxes(p)) == 1


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
