"""blender.clip: motion of a plan over time, MOT files, resumable CLI (frames faked, no bpy)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from blender import clip, writer
from blender.clip import clip_plan, mot_lines, seqinfo
from blender.job_config import ClipJobConfig, ClipSettings
from blender.plan import SceneConfig, ScenePlan, plan_scene
from blender.plan.actors import PERSON_FOOT
from blender.plan.geometry import Footprint, footprints_overlap, jack_extent
from blender.plan.motion import MoverStates, frame_plan, phase_cycle, plan_motion
from blender.plan.scene_plan import Cone, PalletStack, UserAsset
from blender.plan.site import AssetSpec
from pipeline.common import UserError, load_config

ROOT = Path(__file__).resolve().parents[1]


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


# walkers keep their heading (no routes): what the tests of stepping around and turning back watch
STRAIGHT = ClipSettings(walk_speed=(1.0, 1.0), push_speed=(0.5, 0.5), stride_m=1.4, routes=False)

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
    cfg = STRAIGHT
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


def test_a_walker_on_a_route_walks_round_the_rack_to_its_goal():
    """clip.routes: the walker at x 2 with its goal behind the rack row (x 8..10, y 5..25) walks
    round the row's end to it, never through the row or its clearance, every frame clear, then
    takes up its next goal; without a route it walks into the row's face and turns back. A clip
    continued from the last frame's poses (MoverStates) gives the same plans as replaying."""
    plan = tiny_plan()
    motion = plan_motion(plan, STRAIGHT, np.random.default_rng(0), LIBRARY)
    assert motion.pedestrians[0].goals == []
    straight = [f.pedestrians[0] for f in _frames(plan, motion, 300)]
    motion.pedestrians[0].goals = [(15.0, 10.0), (2.0, 10.0)]
    assert _collisions(plan, motion, 120, fps=10) == []
    states = MoverStates()
    frames = [frame_plan(plan, motion, k, fps=10, stride_m=1.4, states=states) for k in range(400)]
    walker = [f.pedestrians[0] for f in frames]
    far = math.hypot(15.0 - 2.0, 0.0)
    assert min(math.hypot(p.x - 15.0, p.y - 10.0) for p in straight) > far / 2   # no route: never gets there
    reached = next(k for k, p in enumerate(walker) if math.hypot(p.x - 15.0, p.y - 10.0) < 0.6)
    assert reached < 200                                    # ~16 m round the row at 1 m/s
    for p in walker:                                        # never over the row or its clearance
        assert not (8.0 - 0.45 < p.x < 10.0 + 0.45 and 5.0 - 0.45 < p.y < 25.0 + 0.45), (p.x, p.y)
    assert min(math.hypot(p.x - 2.0, p.y - 10.0) for p in walker[reached:]) < 2.0   # on to the next goal
    assert [frame_plan(plan, motion, k, fps=10, stride_m=1.4) for k in (0, 150, 399)] == [frames[0], frames[150], frames[399]]


def test_a_walker_on_a_route_waits_where_movers_block_every_way_then_takes_its_next_goal():
    """Hemmed in by other movers on every side, a walker on a route neither moves nor turns
    round: it waits, and after ROUTE_PATIENCE_STEPS blocked steps takes up its next goal."""
    from blender.plan.motion import _Mover, _person_body, _step, floor_routes, static_footprints
    from blender.plan.routes import ROUTE_PATIENCE_STEPS

    plan = tiny_plan()
    me = replace(plan.pedestrians[0], x=4.0, y=12.0, yaw=0.0)
    routes = floor_routes(plan.layout, static_footprints(plan, plan_motion(plan, STRAIGHT, np.random.default_rng(0), LIBRARY)))
    m = _Mover(_person_body(me), me.x, me.y, me.yaw, 1.0, me.yaw, steers=True, goals=[(15.0, 12.0), (3.0, 27.0)])
    ring = [_person_fp(replace(me, x=me.x + 0.7 * math.cos(a), y=me.y + 0.7 * math.sin(a), yaw=a))
            for a in np.linspace(0, 2 * math.pi, 12, endpoint=False)]
    for k in range(1, ROUTE_PATIENCE_STEPS):
        _step(m, plan.layout, [], ring, 0.1, routes)
        assert (m.x, m.y, m.goal, m.waited) == (4.0, 12.0, 0, k)
        assert math.cos(m.yaw) == pytest.approx(1.0)             # no turning back and forth
    _step(m, plan.layout, [], ring, 0.1, routes)
    assert (m.goal, m.waited) == (1, 0)
    _step(m, plan.layout, [], [], 0.1, routes)                    # the way clears: it walks again
    assert (m.x, m.y) != (4.0, 12.0) and m.waited == 0


def test_route_goals_are_seeded_reachable_and_far_apart():
    from blender.plan.motion import floor_routes, static_footprints
    from blender.plan.routes import GOAL_MIN_DIST_M, GOALS_PER_WALKER

    plan = tiny_plan()
    cfg = ClipSettings(walk_speed=(1.0, 1.0))
    motion = plan_motion(plan, cfg, np.random.default_rng(5), LIBRARY)
    assert motion == plan_motion(plan, cfg, np.random.default_rng(5), LIBRARY)
    assert motion != plan_motion(plan, cfg, np.random.default_rng(6), LIBRARY)
    goals = motion.pedestrians[0].goals
    assert len(goals) == GOALS_PER_WALKER and all(not m.goals for m in motion.pedestrians[1:])   # walkers only
    routes = floor_routes(plan.layout, static_footprints(plan, motion))
    start = plan.pedestrians[0]
    prev = (start.x, start.y)
    for g in goals:
        assert routes.free[routes.cell(*g)] and math.dist(g, prev) >= GOAL_MIN_DIST_M
        assert np.isfinite(routes.field(routes.cell(*g))[0][routes.cell(start.x, start.y)])   # a way there
        prev = g
    # the same speeds (and everything else drawn before the goals) with routes off
    assert [m.speed for m in plan_motion(plan, cfg.model_copy(update={"routes": False}), np.random.default_rng(5), LIBRARY).pedestrians] \
        == [m.speed for m in motion.pedestrians]


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


# ---------------------------------------------------------------- movers and static things

def _person_fp(p) -> Footprint:
    return Footprint(p.x, p.y, p.yaw, *PERSON_FOOT[p.pose])


def _jack_fp(j) -> Footprint:
    x_min, x_max = jack_extent(j)
    return Footprint(j.x, j.y, j.yaw, x_max - x_min, j.width)


def _movers_and_static(plan: ScenePlan, motion) -> tuple[list[int], list[int], list[Footprint]]:
    """(walker indices, moving jack indices, footprints of everything that stays put)."""
    walkers = [i for i, m in enumerate(motion.pedestrians) if m.speed > 0]
    rolling = [i for i, m in enumerate(motion.pallet_jacks) if m.speed > 0]
    pushers = {plan.pallet_jacks[i].pushed_by for i in rolling}
    static = [Footprint(a.x, a.y, a.yaw, a.size[0], a.size[1]) for a in plan.assets]
    static += [Footprint(d.x, d.y, d.yaw, *d.footprint) for d in plan.distractors]
    static += [_person_fp(p) for i, p in enumerate(plan.pedestrians) if i not in walkers and i not in pushers]
    static += [_jack_fp(j) for i, j in enumerate(plan.pallet_jacks) if i not in rolling]
    return walkers, rolling, static


def _mover_footprints(f: ScenePlan, walkers: list[int], rolling: list[int]) -> list[tuple[str, int, Footprint]]:
    """(kind, index, footprint) of the movers in frame plan `f`; a pusher goes by its jack's index."""
    movers = [("pedestrian", i, _person_fp(f.pedestrians[i])) for i in walkers]
    for i in rolling:
        movers.append(("pallet_jack", i, _jack_fp(f.pallet_jacks[i])))
        if f.pallet_jacks[i].pushed_by is not None:
            movers.append(("pusher", i, _person_fp(f.pedestrians[f.pallet_jacks[i].pushed_by])))
    return movers


def _collisions(plan: ScenePlan, motion, frames: int, fps: float) -> list[tuple[int, str, int]]:
    """(frame, kind, index) of every mover whose footprint overlaps a static thing's, or another
    mover's (kind "kind/other kind"), in a frame. A pusher and its own jack are one mover."""
    walkers, rolling, static = _movers_and_static(plan, motion)
    hits = []
    states = MoverStates()   # frame after frame, as a clip job plans them
    for k in range(frames):
        movers = _mover_footprints(frame_plan(plan, motion, k, fps, 1.4, states), walkers, rolling)
        hits += [(k, kind, i) for kind, i, fp in movers if any(footprints_overlap(fp, s) for s in static)]
        one = {"pedestrian": "walker", "pallet_jack": "jack", "pusher": "jack"}
        for a, (kind, i, fp) in enumerate(movers):
            for kind2, i2, fp2 in movers[a + 1:]:
                if (one[kind], i) != (one[kind2], i2) and footprints_overlap(fp, fp2):
                    hits.append((k, f"{kind}/{kind2}", i))
    return hits


def test_movers_keep_clear_of_parked_site_assets_props_and_standing_people():
    """A prop in the walker's way, a parked site jack in the pushed jack's: the walker steps
    around the prop (right side first) and takes its heading up again, the pushed jack keeps its
    lane and turns back short of the site jack; every frame clear, and the walker's body keeps
    stepping through its walk cycle."""
    base = tiny_plan()
    site_jack = UserAsset(path="site/jack.glb", category="pallet_jack", scale=1.0, size=[1.6, 0.7, 1.2],
                          x=14.0, y=19.0, yaw=0.0)
    crate = UserAsset(path="site/crate.obj", category="crate", scale=1.0, size=[0.8, 0.8, 0.8],
                      x=3.0, y=4.0, yaw=0.3)
    plan = replace(base, assets=[site_jack, crate],
                   distractors=[PalletStack(count=2, plastic=False, footprint=[1.2, 0.8], x=5.0, y=10.0, yaw=0.0),
                                Cone(height=0.6, color=[1.0, 0.5, 0.0], footprint=[0.38, 0.38], x=0.9, y=10.0, yaw=0.0)])
    cfg = STRAIGHT
    motion = plan_motion(plan, cfg, np.random.default_rng(0), LIBRARY)
    assert _collisions(plan, motion, 120, fps=10) == []
    frames = [frame_plan(plan, motion, k, fps=10, stride_m=1.4) for k in range(120)]
    walker = [f.pedestrians[0] for f in frames]
    # the pallet stack (x 4.4 .. 5.6, y 9.6 .. 10.4) is passed on the walker's right (-y) ...
    beside = [p for p in walker[:40] if 4.4 - 0.375 < p.x < 5.6 + 0.375]
    assert beside and all(p.y < 9.6 - 0.275 for p in beside)
    # ... then it walks on along +x (its heading again) up to the rack (x0 8 minus clearance)
    past = next(k for k, p in enumerate(walker) if p.x > 5.6 + 0.375)
    assert math.cos(walker[past + 2].yaw) == pytest.approx(1.0)
    assert max(p.x for p in walker) < 8.0 - 0.45 + 1e-9 and round(math.cos(walker[-1].yaw)) == -1
    assert {p.mesh_id for p in walker} == {"w0", "w1"}   # one body, its walk cycle
    # the pushed jack turned back before the parked site jack, its pusher with it
    ys = [f.pallet_jacks[0].y for f in frames]
    assert max(ys) < 19.0 - 0.35 and max(ys) - min(ys) > 2.0
    assert all(math.cos(f.pallet_jacks[0].yaw) == pytest.approx(0.0, abs=1e-9) for f in frames)   # its lane
    assert frame_plan(plan, motion, 119, fps=10, stride_m=1.4) == frames[119]   # deterministic
    # continuing from the previous frame's poses (what a clip job does) gives the same plans as
    # replaying from frame 0, in order, with gaps (shards, resumed jobs) and going back
    states = MoverStates()
    for k in [*range(60), 75, 76, 119, 30, 31, 118]:
        assert frame_plan(plan, motion, k, fps=10, stride_m=1.4, states=states) == frames[k], k
    assert states.frame == 118


def test_clip_movers_never_cross_static_footprints():
    """Whole clip plans crowded with parked site models and props: no walker, pushed jack or
    pusher overlaps anything static, or another mover, in any frame (planning only, no bpy)."""
    crate = AssetSpec(path="site/crate.obj", category="crate", scale=1.0, size=(1.0, 0.8, 0.9),
                      count=(10, 10), placement="scatter")
    jack = AssetSpec(path="site/jack.glb", category="pallet_jack", scale=1.0, size=(1.6, 0.7, 1.2),
                     count=(2, 2), placement="focus")
    cfg = ClipJobConfig.model_validate({
        "clip": {"num_frames": 60, "fps": 10, "plan_tries": 2},
        "scene": {"focus_radius": 5.0, "materials": {"families": []},
                  "pedestrians": {"count": [4, 6], "pose_weights": {"walk": 0.8, "stand": 0.2}},
                  "pallet_jacks": {"count": [1, 2], "pushed_prob": 0.8},
                  "distractors": {"count": [8, 12]}}})
    moved = 0
    for seed in range(3):
        cfg.clip.seed = seed
        plan, motion, _ = clip_plan(cfg, None, [crate, jack])
        assert any(a.labelled for a in plan.assets) and plan.distractors
        assert _collisions(plan, motion, cfg.clip.num_frames, cfg.clip.fps) == [], seed
        moved += sum(m.speed > 0 for m in motion.pedestrians)
        again = clip_plan(cfg, None, [crate, jack])
        assert again[0] == plan and again[1] == motion   # same seed, same plan and motion
    assert moved >= 6


# ---------------------------------------------------------------- movers and each other

# a second walker's own body, two phases of it
OTHER_WALKER = [{"id": "v0", "pose": "walk", "phase": 0.0, "body": 5, "stature": 1.65},
                {"id": "v1", "pose": "walk", "phase": 0.5, "body": 5, "stature": 1.65}]


def _frames(plan: ScenePlan, motion, n: int) -> list[ScenePlan]:
    return [frame_plan(plan, motion, k, fps=10, stride_m=1.4) for k in range(n)]


def test_walkers_heading_at_each_other_step_aside_pass_and_keep_their_body_and_walk_cycle():
    """Two walkers on one line, face to face: each steps to its right, they pass side by side
    without touching and walk on along their headings, each stepping through its own body's
    walk cycle, the same every time."""
    base = tiny_plan()
    a, b = base.pedestrians[0], replace(base.pedestrians[0], mesh_id="v0")
    plan = replace(base, pedestrians=[replace(a, x=11.0, y=8.0, yaw=0.0), replace(b, x=19.0, y=8.0, yaw=math.pi),
                                      *base.pedestrians[1:]],
                   pallet_jacks=[replace(base.pallet_jacks[0], pushed_by=3)])
    cfg = STRAIGHT
    motion = plan_motion(plan, cfg, np.random.default_rng(0), LIBRARY + OTHER_WALKER)
    assert [m.speed for m in motion.pedestrians] == [1.0, 1.0, 0.0, 0.0]
    assert _collisions(plan, motion, 60, fps=10) == []
    frames = _frames(plan, motion, 60)
    pa, pb = [f.pedestrians[0] for f in frames], [f.pedestrians[1] for f in frames]
    crossed = next(k for k in range(60) if pa[k].x > pb[k].x)   # they passed each other ...
    assert pa[crossed].y < 8.0 < pb[crossed].y                   # ... each on its right
    assert pb[crossed].y - pa[crossed].y >= 0.55                 # side by side, footprints apart
    # walking on along their headings, a little aside of their first line
    assert math.cos(pa[-1].yaw) == pytest.approx(1.0) and math.cos(pb[-1].yaw) == pytest.approx(-1.0)
    assert pa[-1].x > 16.0 and pb[-1].x < 14.0
    assert 7.0 < pa[-1].y < 8.0 < pb[-1].y < 9.0
    assert {p.mesh_id for p in pa} == {"w0", "w1"}   # one body, its walk cycle ...
    assert {p.mesh_id for p in pb} == {"v0", "v1"}   # ... each
    assert _frames(plan, motion, 60) == frames   # deterministic


def test_a_walker_with_no_way_around_turns_back():
    """A row of crates across the whole hall: no way around in sight, so the walker walks up to
    it and turns back, every frame clear."""
    base = tiny_plan()
    wall = UserAsset(path="site/crates.obj", category="crate", scale=1.0, size=[20.0, 0.8, 1.0], x=10.0, y=4.0, yaw=0.0)
    plan = replace(base, assets=[wall], pedestrians=[replace(base.pedestrians[0], x=4.0, y=1.0, yaw=math.pi / 2),
                                                     *base.pedestrians[1:]])
    cfg = STRAIGHT
    motion = plan_motion(plan, cfg, np.random.default_rng(0), LIBRARY)
    assert _collisions(plan, motion, 60, fps=10) == []
    walker = [f.pedestrians[0] for f in _frames(plan, motion, 60)]
    assert max(p.y for p in walker) < 4.0 - 0.4 - 0.275
    # turned back (and at the hall's wall, again)
    assert any(math.sin(p.yaw) < -0.99 for p in walker) and math.sin(walker[-1].yaw) > 0.99


def test_a_walker_meeting_a_pushed_jack_steps_around_it_and_the_jack_keeps_its_lane():
    """A walker heading at a pushed jack's forks: it steps aside and passes the jack and its
    pusher, no overlap in any frame; the jack keeps rolling in its lane behind its own pusher
    (one mover: they never block each other), never held up."""
    base = tiny_plan()
    walker = replace(base.pedestrians[0], x=14.0, y=24.0, yaw=-math.pi / 2)
    plan = replace(base, pedestrians=[walker, *base.pedestrians[1:]])
    cfg = STRAIGHT
    motion = plan_motion(plan, cfg, np.random.default_rng(0), LIBRARY)
    assert _collisions(plan, motion, 120, fps=10) == []
    frames = _frames(plan, motion, 120)
    # past the pusher (1 m behind the jack) ...
    assert any(f.pedestrians[0].y < f.pedestrians[2].y - 0.5 for f in frames)
    # ... on its right (-x, heading -y)
    assert all(f.pedestrians[0].x < 14.0 for f in frames if abs(f.pedestrians[0].y - f.pallet_jacks[0].y) < 1.5)
    assert {f.pedestrians[0].mesh_id for f in frames} == {"w0", "w1"}
    jy = [f.pallet_jacks[0].y for f in frames]
    assert jy[-1] - jy[0] == pytest.approx(0.5 * 11.9)   # never held up: by its pusher or the walker
    assert all(f.pallet_jacks[0].x == 14.0 for f in frames)
    assert [f.pedestrians[2].y for f in frames] == pytest.approx([y - 1.0 for y in jy])
    assert _frames(plan, motion, 120) == frames


def test_movers_start_apart_and_never_overlap_in_demo_and_scenario_clips():
    """Clip plans as configs/clip_demo.yaml and the scenarios make them: movers start apart (the
    planner's placement margin) and no two overlap in any frame; same seed, same motion."""
    demo = load_config(ROOT / "configs" / "clip_demo.yaml", ClipJobConfig, ["clip.num_frames=40"])
    for seed in range(6):
        demo.clip.seed = seed
        plan, motion, _ = clip_plan(demo, None)
        assert _collisions(plan, motion, demo.clip.num_frames, demo.clip.fps) == [], seed
    for scenario in ("near_miss", "zone_entry", "line_cross"):
        cfg = load_config(ROOT / "configs" / "clip_scenario.yaml", ClipJobConfig, [f"clip.scenario={scenario}"])
        for seed in range(3):
            cfg.clip.seed = seed
            plan, motion, _ = clip_plan(cfg, None)
            assert _collisions(plan, motion, cfg.clip.num_frames, cfg.clip.fps) == [], (scenario, seed)
    # the planner's own placement: movers' footprints start 0.2 m apart or more
    crowd = load_config(None, SceneConfig, ["pedestrians.count=[8,8]", "pallet_jacks.count=[3,3]",
                                            "pallet_jacks.pushed_prob=1.0", "focus_radius=3.0"])
    for seed in range(20):
        plan = plan_scene(crowd, np.random.default_rng(seed))
        pushers = {j.pushed_by: i for i, j in enumerate(plan.pallet_jacks)}
        fps = [(("jack", pushers[i]) if i in pushers else ("person", i), _person_fp(p)) for i, p in enumerate(plan.pedestrians)]
        fps += [(("jack", i), _jack_fp(j)) for i, j in enumerate(plan.pallet_jacks)]
        assert not any(footprints_overlap(f, g, 0.1) for a, (o, f) in enumerate(fps) for o2, g in fps[a + 1:] if o != o2)


def test_near_miss_walker_passes_even_the_widest_jack_at_the_shortest_gap(monkeypatch):
    """near_miss at its closest (0.6 m between centres) with the widest jack: the scenario keeps
    the walker's footprint just off the jack's, so the two pass side by side (the near miss
    happens) instead of one turning back."""
    from blender.plan import actors, scenario

    draw = scenario.uniform

    def closest(rng, r):
        v = draw(rng, r)   # the same draws: only the near gap is pinned
        return 0.6 if tuple(r) == (0.6, 1.1) else v
    monkeypatch.setattr(scenario, "uniform", closest)
    monkeypatch.setattr(actors, "JACK_WIDTHS_M", (0.685,))
    cfg = load_config(ROOT / "configs" / "clip_scenario.yaml", ClipJobConfig, ["clip.scenario=near_miss"])
    plan, motion, _ = clip_plan(cfg, None)
    jack, near = plan.pallet_jacks[0], plan.pedestrians[0]
    assert jack.width == 0.685 and jack.y - near.y == pytest.approx((0.685 + 0.55) / 2 + 0.01)
    n = cfg.clip.num_frames
    assert _collisions(plan, motion, n, cfg.clip.fps) == []
    frames = [frame_plan(plan, motion, k, cfg.clip.fps, cfg.clip.stride_m) for k in range(n)]
    assert frames[0].pedestrians[0].x < frames[0].pallet_jacks[0].x < frames[0].pallet_jacks[0].x + 4.0
    assert frames[-1].pedestrians[0].x > frames[-1].pallet_jacks[0].x + 1.0   # passed it ...
    assert all(math.cos(f.pedestrians[0].yaw) == pytest.approx(1.0) for f in frames)   # ... never turning
    assert all(math.cos(f.pallet_jacks[0].yaw) == pytest.approx(-1.0) for f in frames)


def test_a_walker_that_cannot_pass_a_slower_jack_follows_it_at_its_pace():
    """In a corridor too narrow to pass, a walker (1 m/s) behind a pushed jack (0.5 m/s) closes
    up and follows at the jack's pace: it never stands still, never turns back, never touches
    the pusher (before slowing down it stopped every other step)."""
    base = tiny_plan()
    walls = [UserAsset(path="site/crates.obj", category="crate", scale=1.0, size=[0.4, 20.0, 1.0],
                       x=x, y=18.0, yaw=0.0) for x in (14.0 - 0.8, 14.0 + 0.8)]
    walker = replace(base.pedestrians[0], x=14.0, y=11.0, yaw=math.pi / 2)
    plan = replace(base, assets=walls, pedestrians=[walker, *base.pedestrians[1:]])
    motion = plan_motion(plan, STRAIGHT, np.random.default_rng(0), LIBRARY)
    assert (motion.pedestrians[0].speed, motion.pallet_jacks[0].speed) == (1.0, 0.5)
    assert _collisions(plan, motion, 100, fps=10) == []
    states = MoverStates()
    frames = [frame_plan(plan, motion, k, fps=10, stride_m=1.4, states=states) for k in range(100)]
    wy = [f.pedestrians[0].y for f in frames]
    gap = [f.pedestrians[2].y - f.pedestrians[0].y for f in frames]    # to the pusher
    assert all(b > a for a, b in zip(wy, wy[1:], strict=False))        # moves every frame, never back
    assert all(abs(f.pedestrians[0].x - 14.0) < 0.2 for f in frames)  # in its lane
    closed = next(k for k, g in enumerate(gap) if g < 0.9)
    assert closed < 50 and all(0.7 < g < 0.9 for g in gap[closed:])   # on the pusher's heels
    assert wy[-1] - wy[closed] == pytest.approx(0.5 * (99 - closed) / 10, abs=0.1)   # at the jack's pace


def _hemmed_walker(plan):
    from blender.plan.motion import _Mover, _person_body, floor_routes, static_footprints

    me = replace(plan.pedestrians[0], x=4.0, y=12.0, yaw=0.0)
    routes = floor_routes(plan.layout, static_footprints(plan, plan_motion(plan, STRAIGHT, np.random.default_rng(0), LIBRARY)))
    m = _Mover(_person_body(me), me.x, me.y, me.yaw, 1.0, me.yaw, steers=True, goals=[(7.125, 12.125), (3.0, 27.0)])
    blocker = _person_fp(replace(me, x=me.x + 0.75, yaw=math.pi))    # face to face, touching
    corridor = [Footprint(4.0, 12.0 + side * 0.8, 0.0, 6.0, 0.4) for side in (-1, 1)]   # no way round
    return m, routes, blocker, corridor


def test_a_walker_blocked_by_a_mover_it_gives_way_to_walks_away_then_comes_back():
    """Blocked by a mover that has right of way (a pushed jack, or a walker before it in the
    order), a walker on a route waits YIELD_AFTER_STEPS steps, then turns and walks away at half
    pace for YIELD_STEPS steps, then heads for its goal again; blocked by a mover that gives way
    to it, it waits (only one of two yields)."""
    from blender.plan.motion import YIELD_AFTER_STEPS, YIELD_STEPS, _step

    plan = tiny_plan()
    m, routes, blocker, walls = _hemmed_walker(plan)
    for k in range(1, YIELD_AFTER_STEPS + 1):
        _step(m, plan.layout, walls, [blocker], 0.1, routes, gives_way=[blocker])
        assert (m.x, m.y, m.waited) == (4.0, 12.0, k)
    assert m.yielding == YIELD_STEPS
    xs = []
    for _ in range(YIELD_STEPS):
        _step(m, plan.layout, walls, [blocker], 0.1, routes, gives_way=[blocker])
        xs.append(m.x)
        assert math.cos(m.yaw) < -0.8                                # facing away
    assert np.diff([4.0, *xs]) == pytest.approx([-0.05] * YIELD_STEPS, abs=0.002)   # half pace
    assert m.yielding == 0
    _step(m, plan.layout, walls, [], 0.1, routes)                     # the way is free: back on its route
    assert m.x > xs[-1] and math.cos(m.yaw) > 0.8 and m.waited == 0

    m, routes, blocker, walls = _hemmed_walker(plan)
    for k in range(1, YIELD_AFTER_STEPS + 3):
        _step(m, plan.layout, walls, [blocker], 0.1, routes)           # no right of way: it waits
        assert (m.x, m.y, m.waited, m.yielding) == (4.0, 12.0, k, 0)
