"""blender.clip: motion of a plan over time, MOT files, resumable CLI (frames faked, no bpy)."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import yaml

from blender import clip, writer
from blender.clip import mot_lines, seqinfo
from blender.job_config import ClipSettings
from blender.plan import SceneConfig, ScenePlan, plan_scene
from blender.plan.motion import frame_plan, phase_cycle, plan_motion
from pipeline.common import UserError, load_config


def tiny_plan() -> ScenePlan:
    """A 20 x 30 m hall with one rack row, a walker, a stander and a pushed jack."""
    cfg = load_config(None, SceneConfig, ["pedestrians.count=[1,1]", "pallet_jacks.count=[1,1]"])
    base = plan_scene(cfg, np.random.default_rng(0))
    person, jack = base.pedestrians[-1], base.pallet_jacks[0]
    return replace(
        base,
        layout=replace(base.layout, width=20.0, length=30.0,
                       racks=[replace(base.layout.racks[0], x0=8.0, x1=10.0, y0=5.0, y1=25.0)]),
        pedestrians=[
            replace(person, pose="walk", x=2.0, y=10.0, yaw=0.0, mesh_id="w0", pushing=None),  # walks +x towards the rack
            replace(person, pose="stand", x=15.0, y=3.0, yaw=1.0, mesh_id="s0", pushing=None),
            replace(person, pose="push", x=14.0, y=14.0, yaw=math.pi / 2, mesh_id="p0", pushing=0),
        ],
        pallet_jacks=[replace(jack, x=14.0, y=15.0, yaw=math.pi / 2, pushed_by=2)],
        camera=replace(base.camera, location=[1.0, 1.0, 5.0], matrix=np.eye(3).tolist()),
    )


LIBRARY = [
    {"id": "w0", "pose": "walk", "phase": 0.0, "body": 0, "stature": 1.75},
    {"id": "w1", "pose": "walk", "phase": 0.5, "body": 0, "stature": 1.75},
    {"id": "w2", "pose": "walk", "phase": 0.25, "body": 1, "stature": 1.60},
    {"id": "s0", "pose": "stand", "phase": 0.0, "body": 0, "stature": 1.75},
    {"id": "p0", "pose": "push", "phase": 0.0, "body": 2, "stature": 1.8},
    {"id": "p1", "pose": "push", "phase": 0.5, "body": 3, "stature": 1.7},
]


def test_phase_cycle_prefers_own_body_then_closest_stature():
    assert [m["id"] for m in phase_cycle(LIBRARY, "w0", "walk")] == ["w0", "w1"]
    assert [m["id"] for m in phase_cycle(LIBRARY, "p0", "push")] == ["p0", "p1"]
    assert phase_cycle(LIBRARY, "missing", "walk") == []


def test_walkers_advance_turn_at_racks_and_pushers_follow_their_jack():
    plan = tiny_plan()
    cfg = ClipSettings(walk_speed=(1.0, 1.0), push_speed=(0.5, 0.5), stride_m=1.4)
    motion = plan_motion(plan, cfg, np.random.default_rng(0), LIBRARY)
    assert [m.speed for m in motion.pedestrians] == [1.0, 0.0, 0.0]
    assert motion.pallet_jacks[0].speed == 0.5

    f10 = frame_plan(plan, motion, 10, fps=10, stride_m=1.4)  # 1 s later
    assert f10.pedestrians[0].x == pytest.approx(3.0)
    assert f10.pedestrians[1] == plan.pedestrians[1]  # the stander stays
    assert f10.pallet_jacks[0].y == pytest.approx(15.5)
    assert f10.pedestrians[2].y == pytest.approx(14.5)  # pusher keeps 1 m behind
    assert plan.pedestrians[0].x == 2.0  # the base plan is not modified
    # 0.7 m walked = half a stride: the other phase of the same body
    f7 = frame_plan(plan, motion, 7, fps=10, stride_m=1.4)
    assert f7.pedestrians[0].mesh_id == "w1"

    # after 8 s the walker has reached the rack (x0 = 8 minus clearance) and turned back
    f80 = frame_plan(plan, motion, 80, fps=10, stride_m=1.4)
    p = f80.pedestrians[0]
    assert p.x < 8.0 - 0.4
    assert math.cos(p.yaw) == pytest.approx(-1.0)
    # same inputs, same frame: deterministic
    assert frame_plan(plan, motion, 80, fps=10, stride_m=1.4) == f80


def test_mot_lines_and_seqinfo():
    coco = {"images": [{"id": 1, "frame_index": 0}, {"id": 2, "frame_index": 1}],
            "annotations": [
                {"image_id": 2, "track_id": 3, "bbox": [5, 6, 7, 8], "iscrowd": 0, "category_id": 2, "visibility": 0.5},
                {"image_id": 1, "track_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 1, "category_id": 2, "visibility": 0.1},
                {"image_id": 1, "track_id": 1, "bbox": [9, 9, 9, 9], "iscrowd": 0, "category_id": 1, "visibility": 1.0}]}
    assert mot_lines(coco) == ["1,1,9,9,9,9,1,1,1.0000", "1,3,1,2,3,4,0,2,0.1000", "2,3,5,6,7,8,1,2,0.5000"]
    ini = seqinfo("c", 10.0, 2, 64, 48)
    assert "frameRate=10\n" in ini and "seqLength=2\n" in ini and "imWidth=64\n" in ini and "imDir=images" in ini


def fake_clip_factory(calls):
    def factory(cfg):
        def frame(k):
            calls.append(k)
            rgb = np.full((24, 32, 3), k, np.uint8)
            anns = [{"category_id": 1, "segmentation": {"size": [24, 32], "counts": "0"}, "area": 4,
                     "bbox": [k, 2, 2, 2], "iscrowd": 0, "visibility": 1.0, "truncated": False,
                     "instance_id": 1, "track_id": 1}]
            return rgb, {"frame_index": k}, anns, {}
        return frame, lambda: None
    return factory


def test_clip_cli_writes_mot_files_and_resumes(tmp_path):
    cfg = tmp_path / "clip.yaml"
    cfg.write_text(yaml.safe_dump({"clip": {"name": "c", "num_frames": 4, "fps": 5},
                                   "render": {"resolution": [32, 24]}}))
    out = tmp_path / "c"
    calls: list[int] = []
    assert clip.main(["--config", str(cfg), "--out", str(out)], frame_factory=fake_clip_factory(calls)) == 0
    assert calls == [0, 1, 2, 3]
    coco = json.loads((out / "annotations.json").read_text())
    assert [im["frame_index"] for im in coco["images"]] == [0, 1, 2, 3]
    assert {a["track_id"] for a in coco["annotations"]} == {1}
    gt = (out / "gt" / "gt.txt").read_text().splitlines()
    assert gt[0] == "1,1,0,2,2,2,1,1,1.0000" and len(gt) == 4
    assert "seqLength=4" in (out / "seqinfo.ini").read_text()
    before = (out / "gt" / "gt.txt").read_bytes()
    writer.part_path(out, 2).unlink()
    calls.clear()
    assert clip.main(["--config", str(cfg), "--out", str(out)], frame_factory=fake_clip_factory(calls)) == 0
    assert calls == [2] and (out / "gt" / "gt.txt").read_bytes() == before
    with pytest.raises(UserError, match="different config"):
        clip.main(["--config", str(cfg), "--out", str(out), "clip.fps=10"], frame_factory=fake_clip_factory(calls))
    with pytest.raises(UserError, match="walk_speed"):
        clip.main(["--config", str(cfg), "--out", str(tmp_path / "d"), "clip.walk_speed=[2,1]"])


def test_frame_plans_stay_typed_plans_that_round_trip_through_json():
    plan = tiny_plan()
    motion = plan_motion(plan, ClipSettings(), np.random.default_rng(1), LIBRARY, plan_attempt=3)
    assert motion.plan_attempt == 3
    f5 = frame_plan(plan, motion, 5, fps=10, stride_m=1.4)
    assert ScenePlan.from_dict(json.loads(json.dumps(f5.to_dict()))) == f5
    assert f5.pedestrians[0].x != plan.pedestrians[0].x
