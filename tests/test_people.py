"""People's appearance (docs/people.md): outfits planned from the seed with the config's
frequencies, Fitzpatrick skin types I-VI, off values that plan and hash as before, bad values
as one-line errors, and a tiny render where cap, glasses and gloves are part of the person's mask.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import yaml

from blender.job_config import RenderJobConfig, config_hash
from blender.plan import SceneConfig, ScenePlan, plan_scene
from blender.plan.actors import FITZPATRICK, make_person
from blender.plan.scene_config import APPEARANCE_OFF, FABRICS, HAIR_STYLES, PedestrianConfig
from blender.plan.scene_plan import PEOPLE_PLAN_VERSION
from pipeline.common import UserError, config_to_dict, load_config

HUMANS = [{"id": f"h{i:04d}", "pose": pose, "phase": 0.0, "body": i, "height": 1.7, "stature": 1.75}
          for i, pose in enumerate(["walk", "stand", "carry", "bend", "crouch", "push"])]


def _cfg(*overrides: str) -> SceneConfig:
    return load_config(None, SceneConfig, ["pallet_jacks.count=[1,1]", "distractors.count=[3,3]", *overrides])


def _people(cfg: PedestrianConfig, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [make_person(rng, cfg, "walk", HUMANS) for _ in range(n)]


def _luma(rgb) -> float:
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


# ---------------------------------------------------------------- plan

def test_outfits_are_drawn_from_the_seed_and_move_no_other_draw():
    cfg = _cfg()
    a, b = plan_scene(cfg, np.random.default_rng(11), humans=HUMANS), plan_scene(cfg, np.random.default_rng(11), humans=HUMANS)
    assert a.pedestrians and a.to_dict() == b.to_dict()
    assert a.version == PEOPLE_PLAN_VERSION and all(p.outfit is not None for p in a.pedestrians)
    c = plan_scene(cfg, np.random.default_rng(12), humans=HUMANS)
    assert [p.outfit for p in c.pedestrians] != [p.outfit for p in a.pedestrians]
    back = ScenePlan.from_dict(json.loads(json.dumps(a.to_dict())))
    assert back == a
    # off: the same frame with the people of before; only their looks differ
    off = plan_scene(load_config(None, SceneConfig, ["pallet_jacks.count=[1,1]", "distractors.count=[3,3]",
                                                     *(f"pedestrians.{k}={json.dumps(v)}" for k, v in APPEARANCE_OFF.items())]),
                     np.random.default_rng(11), humans=HUMANS)
    assert off.version < PEOPLE_PLAN_VERSION and all("outfit" not in p for p in off.to_dict()["pedestrians"])
    da, do = a.to_dict(), off.to_dict()
    for p in da["pedestrians"]:
        for k in ("skin", "shirt", "trousers", "outfit"):
            del p[k]
    for p in do["pedestrians"]:
        for k in ("skin", "shirt", "trousers"):
            del p[k]
    da["version"] = do["version"]
    assert da == do


def test_still_frames_never_pick_walk_cycle_phases_and_walkers_step_through_their_own():
    """The library's walk-cycle phases (pipeline.humans cycle_phases) leave still frames exactly
    as planned without them; a walker's clip cycle is its own body's 8 phases."""
    from blender.plan.motion import phase_cycle

    cycles = [{**h, "id": f"{h['id']}p{k}", "phase": k / 8, "cycle_of": h["id"]}
              for h in HUMANS if h["pose"] in ("walk", "push") for k in range(1, 8)]
    cfg = _cfg("pedestrians.count=[6,6]", "pedestrians.pose_weights={walk: 1, stand: 1}")
    for seed in range(4):
        with_cycles = plan_scene(cfg, np.random.default_rng(seed), humans=HUMANS + cycles)
        assert with_cycles == plan_scene(cfg, np.random.default_rng(seed), humans=HUMANS)
        assert all("p" not in p.mesh_id[1:] for p in with_cycles.pedestrians)
    cycle = phase_cycle(HUMANS + cycles, "h0000", "walk")
    assert [m["id"] for m in cycle] == ["h0000"] + [f"h0000p{k}" for k in range(1, 8)]
    assert {m["body"] for m in cycle} == {0}


def test_frequencies_follow_the_config():
    cfg = PedestrianConfig(glove_prob=0.3, cap_prob=0.5, glasses_prob=0.2, shorts_prob=0.25, print_prob=0.6,
                           hard_hat_prob=0.4, fabrics=["denim", "check"], hair_styles={"bun": 1, "shaved": 3})
    people = _people(cfg, 4000)
    outfits = [p.outfit for p in people]

    def near(share, prob, n):
        assert abs(share - prob) < 4 * math.sqrt(prob * (1 - prob) / n) + 1e-9, (share, prob)

    n = len(outfits)
    near(np.mean([o.gloves is not None for o in outfits]), 0.3, n)
    near(np.mean([o.glasses is not None for o in outfits]), 0.2, n)
    near(np.mean([o.shorts for o in outfits]), 0.25, n)
    near(np.mean([o.print is not None for o in outfits]), 0.6, n)
    hatless = [o for p, o in zip(people, outfits, strict=True) if not p.hard_hat]
    near(np.mean([o.cap is not None for o in hatless]), 0.5, len(hatless))
    assert all(o.cap is None for p, o in zip(people, outfits, strict=True) if p.hard_hat)   # never both
    near(np.mean([o.hair_style == "bun" for o in outfits]), 0.25, n)
    assert {o.hair_style for o in outfits} == {"bun", "shaved"}
    assert {o.shirt.family for o in outfits} == {"fabric_denim", "fabric_check"}
    assert {o.trousers.family for o in outfits} == {"fabric_denim", "fabric_check"}
    prints = [o.print for o in outfits if o.print]
    assert {x.place for x in prints} == {"chest", "back"} and len({x.shape for x in prints}) == 6
    # every key at 0 / []: nothing of it is drawn
    bare = _people(PedestrianConfig(glove_prob=0, glasses_prob=0, shorts_prob=0, print_prob=0, cap_prob=0,
                                    fabrics=[], hair_styles={"short": 1}), 300)
    assert all(o.gloves is None and o.glasses is None and not o.shorts and o.print is None and o.cap is None
               and o.shirt is None and o.trousers is None and o.hair_style == "short"
               for o in (p.outfit for p in bare))
    # defaults: every fabric and hair style turns up
    dflt = [p.outfit for p in _people(PedestrianConfig(), 600, seed=3)]
    assert {o.shirt.family for o in dflt} == {f"fabric_{f}" for f in FABRICS}
    assert {o.hair_style for o in dflt} == set(HAIR_STYLES)


def test_skin_tones_span_fitzpatrick_i_to_vi_evenly():
    people = _people(PedestrianConfig(), 3000, seed=5)
    types = np.array([p.outfit.skin_type for p in people])
    counts = np.bincount(types, minlength=7)[1:]
    assert (abs(counts / len(people) - 1 / 6) < 0.03).all(), counts
    luma = np.array([_luma(p.skin) for p in people])
    means = [luma[types == t].mean() for t in range(1, 7)]
    assert all(a > b for a, b in zip(means, means[1:], strict=False))   # I palest ... VI darkest
    assert luma.max() > _luma(FITZPATRICK[1]) - 0.03 and luma.min() < _luma(FITZPATRICK[6]) + 0.03
    # the range is covered without gaps: no luma bin between the extremes stays empty
    hist, _ = np.histogram(luma, bins=12, range=(_luma(FITZPATRICK[6]), _luma(FITZPATRICK[1])))
    assert (hist > 0).all(), hist
    only_dark = _people(PedestrianConfig(skin_types=[6]), 200)
    assert {p.outfit.skin_type for p in only_dark} == {6}
    assert max(_luma(p.skin) for p in only_dark) < _luma(FITZPATRICK[5])


def test_off_values_keep_plans_version_1_and_the_config_hash():
    from blender.palettes import SKIN

    off_cfg = load_config(None, SceneConfig, ["materials.families=[]", *(
        f"pedestrians.{k}={json.dumps(v)}" for k, v in APPEARANCE_OFF.items())])
    assert not off_cfg.pedestrians.appearance and SceneConfig().pedestrians.appearance
    for seed in range(6):
        d = plan_scene(off_cfg, np.random.default_rng(seed), humans=HUMANS).to_dict()
        assert d["version"] == 1
        for p in d["pedestrians"]:
            assert "outfit" not in p and list(p)[-3:] == ["x", "y", "yaw"]
            assert min(max(abs(a - b) for a, b in zip(p["skin"], s, strict=True)) for s in SKIN) <= 0.03
    off = config_to_dict(RenderJobConfig.model_validate({"scene": {"pedestrians": APPEARANCE_OFF}}))
    before = copy.deepcopy(off)   # a config from before the appearance keys existed
    for key in APPEARANCE_OFF:
        del before["scene"]["pedestrians"][key]
    assert config_hash(off) == config_hash(before)
    assert config_hash(config_to_dict(RenderJobConfig())) != config_hash(off)
    one = copy.deepcopy(off)
    one["scene"]["pedestrians"]["glove_prob"] = 0.1
    assert config_hash(one) != config_hash(off)


@pytest.mark.parametrize("key, value, expect", [
    ("fabrics", ["denim", "tweed"], "unknown fabric 'tweed'"),
    ("skin_types", [1, 7], "unknown Fitzpatrick skin type 7"),
    ("hair_styles", {"mohawk": 1.0}, "unknown hair style 'mohawk'"),
    ("hair_styles", {"bun": 0.0}, "needs at least one style with a positive weight"),
    ("glove_prob", 1.5, "less than or equal to 1"),
    ("cap_prob", -0.1, "greater than or equal to 0"),
    ("glasses_prob", "often", "valid number"),
])
def test_bad_people_values_are_one_line_errors(tmp_path, key, value, expect):
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({"scene": {"pedestrians": {key: value}}}))
    with pytest.raises(UserError) as e:
        load_config(cfg, RenderJobConfig)
    msg = str(e.value)
    assert "\n" not in msg and expect in msg and f"scene.pedestrians.{key}" in msg, msg


def test_clip_scenario_walkers_are_dressed():
    from blender.plan.scenario import plan_scenario

    cfg = _cfg()
    base = plan_scene(cfg, np.random.default_rng(2), negative=False, humans=HUMANS)
    plan, _, _ = plan_scenario(base, "near_miss", cfg, np.random.default_rng(3), HUMANS, 4 / 3)
    assert plan.pedestrians and all(p.outfit is not None for p in plan.pedestrians)
    assert plan.version == PEOPLE_PLAN_VERSION


# ---------------------------------------------------------------- Blender

def _box(center, size):
    c = np.array([[x, y, z] for z in (-1, 1) for y in (-1, 1) for x in (-1, 1)], float) / 2
    quads = [[0, 1, 3, 2], [4, 6, 7, 5], [0, 4, 5, 1], [2, 3, 7, 6], [0, 2, 6, 4], [1, 5, 7, 3]]
    tris = [[q[0], q[1], q[2]] for q in quads] + [[q[0], q[2], q[3]] for q in quads]
    return c * np.asarray(size) + np.asarray(center), np.array(tris)


def write_box_person(root):
    """One standing box figure in the generator's format, with eyes and hands (for glasses and gloves)."""
    from pipeline.humans import REGIONS, VEST_REGIONS, obj_text

    root.mkdir(parents=True, exist_ok=True)
    parts = [((0, 0, 0.05), (0.25, 0.3, 0.1), "shoes"), ((0, 0, 0.5), (0.3, 0.2, 0.8), "trousers"),
             ((0, 0, 1.2), (0.4, 0.22, 0.6), "shirt"), ((0.26, 0, 1.15), (0.08, 0.08, 0.5), "forearm"),
             ((-0.26, 0, 1.15), (0.08, 0.08, 0.5), "forearm"),
             ((0.26, 0, 0.85), (0.07, 0.07, 0.12), "skin"), ((-0.26, 0, 0.85), (0.07, 0.07, 0.12), "skin"),
             ((0, 0, 1.6), (0.18, 0.2, 0.2), "skin"), ((0, 0.02, 1.705), (0.19, 0.19, 0.01), "hair"),
             ((0.035, -0.1, 1.63), (0.025, 0.01, 0.015), "eyes"), ((-0.035, -0.1, 1.63), (0.025, 0.01, 0.015), "eyes")]
    vs, fs, regs = [], [], []
    for center, size, region in parts:
        v, f = _box(center, size)
        fs.append(f + sum(len(x) for x in vs))
        vs.append(v)
        regs += [REGIONS.index(region)] * len(f)
    v, f = np.concatenate(vs), np.concatenate(fs)
    text, counts = obj_text(v, np.tile([0, -1.0, 0], (len(v), 1)), f, np.array(regs), REGIONS)
    (root / "h0000.obj").write_text(text)
    vv, vf = _box((0, 0, 1.2), (0.44, 0.26, 0.5))
    vtext, _ = obj_text(vv, np.tile([0, -1.0, 0], (8, 1)), vf, np.array([0] * 10 + [1] * 2), VEST_REGIONS)
    (root / "h0000_vest.obj").write_text(vtext)
    rec = {"id": "h0000", "file": "h0000.obj", "vest_file": "h0000_vest.obj", "pose": "stand", "phase": 0.0,
           "body": 0, "height": 1.73, "stature": 1.73, "head_center": [0, 0, 1.6], "head_up": [0, -0.267, 0.964],
           "head_radius": 0.1, "carry_point": None, "regions": REGIONS, "region_face_counts": counts}
    (root / "index.json").write_text(json.dumps({"version": 1, "meshes": [rec]}))
    return root


@pytest.mark.blender
def test_cap_glasses_gloves_and_pattern_are_one_instance_with_exact_masks(tmp_path):
    bpy = pytest.importorskip("bpy")
    from blender import cycles
    from blender.annotate import silhouette
    from blender.job_config import RenderConfig
    from blender.plan import load_human_index
    from blender.scene import build_scene, clear_scene

    lib = write_box_person(tmp_path / "humans")
    cfg = load_config(None, SceneConfig, [
        "pedestrians.count=[1,1]", "pedestrians.pose_weights={stand: 1}", "pallet_jacks.count=[0,0]",
        "distractors.count=[0,0]", "distractors.staging_loads=[0,0]", "materials.families=[]",
        "pedestrians.vest_prob=0", "pedestrians.hard_hat_prob=0", "pedestrians.cap_prob=1",
        "pedestrians.glasses_prob=1", "pedestrians.glove_prob=1", "pedestrians.print_prob=1",
        "pedestrians.fabrics=[check]", "pedestrians.hair_styles={bun: 1}", "pedestrians.shorts_prob=1",
        "lights.daylight_prob=1"])
    bpy.ops.wm.read_factory_settings(use_empty=True)
    plan = plan_scene(cfg, np.random.default_rng(1), negative=False, humans=load_human_index(lib))
    (p,) = plan.pedestrians
    o = p.outfit
    assert o.cap and o.glasses and o.gloves and o.shorts and o.print and o.shirt.family == "fabric_check"
    instances = build_scene(plan, lib)
    (person,) = instances
    names = {ob.name: ob for ob in person.objects}
    assert set(names) == {"pedestrian_0", "pedestrian_0_gear"}
    assert all(ob.pass_index == person.instance_id for ob in person.objects)
    body, gear = names["pedestrian_0"], names["pedestrian_0_gear"]
    slots = {s.material.name.split(".")[0] for s in body.material_slots}
    assert {"gloves_0", "shirt_0", "trousers_0", "skin_0"} <= slots
    groups = {n.node_tree.name for n in bpy.data.materials[body.material_slots[3].material.name].node_tree.nodes
              if n.bl_idname == "ShaderNodeGroup"}
    assert groups == {"warehouse_synth_fabric_check", "warehouse_synth_print"}
    assert len(gear.data.materials) == 4 and len(gear.data.polygons) > 40    # bun, cap and glasses
    # a camera 1.6 m to the person's side at head height: the cap's peak and the bun stick out
    # of the head's outline there, head, torso and gloved hands fill the frame
    scene = bpy.context.scene
    side = np.array([-math.sin(p.yaw), math.cos(p.yaw)])
    target = np.array([p.x, p.y, 1.35])
    scene.camera.location = (*(target[:2] + side * 1.6), 1.6)
    direction = target - np.array(scene.camera.location)
    scene.camera.rotation_euler = (math.atan2(math.hypot(*direction[:2]), -direction[2]), 0.0,
                                   math.atan2(direction[1], direction[0]) - math.pi / 2)
    for ob in scene.objects:   # the warehouse out of the way: nothing stands between camera and person
        if ob.type == "MESH" and ob not in person.objects:
            ob.hide_render = True
    scene.camera.data.lens_unit = "FOV"
    scene.camera.data.angle = math.radians(55)
    w, h = 96, 72
    with cycles.Renderer(RenderConfig(preset="fast", resolution=(w, h), samples=1, denoise=False, threads=2)) as eng:
        rgb, index = eng.render(scene, seed=1)
    proj = cycles.camera_projection(scene)
    mask = index == person.instance_id
    assert set(np.unique(index).tolist()) <= {0, person.instance_id}
    gv, gt = cycles.mesh_world_triangles([gear])
    bv, bt = cycles.mesh_world_triangles([body])
    gear_px = silhouette(gv, gt, proj, w, h).in_frame()
    body_px = silhouette(bv, bt, proj, w, h).in_frame()
    assert gear_px.sum() > 20
    # the cap, bun and glasses are the person: their pixels are in its mask, beyond the body's own
    assert (mask & gear_px).sum() >= 0.9 * gear_px.sum()
    assert (mask & gear_px & ~body_px).sum() > 5
    assert rgb[mask].std() > 5      # shaded, patterned cloth, not one flat colour
    clear_scene()


# ---------------------------------------------------------------- body shapes (human library)

def test_library_body_shapes_standard_unchanged_and_wide_is_wider():
    from pipeline.humans import SHAPES, sample_phenotype

    # the standard range draws what every library so far was made with (same numbers, same order)
    def old(rng):
        female = rng.random() < 0.4
        pheno = {"gender": float(rng.uniform(0.75, 1.0) if female else rng.uniform(0.0, 0.25)),
                 "age": float(rng.uniform(0.5, 0.85)), "muscle": float(rng.uniform(0.3, 0.75)),
                 "weight": float(rng.uniform(0.25, 0.8)), "height": 0.4,
                 "proportions": float(rng.uniform(0.3, 0.7))}
        stature = rng.normal(1.63, 0.075) if female else rng.normal(1.76, 0.08)
        return pheno, float(np.clip(stature, 1.52, 1.93))

    for body in range(20):
        assert sample_phenotype(np.random.default_rng([0, 1_000_000 + body])) == old(
            np.random.default_rng([0, 1_000_000 + body]))
    std = [sample_phenotype(np.random.default_rng([0, b]), "standard") for b in range(400)]
    wide = [sample_phenotype(np.random.default_rng([0, b]), "wide") for b in range(400)]
    for key in ("age", "muscle", "weight", "proportions"):
        s, w = [p[key] for p, _ in std], [p[key] for p, _ in wide]
        assert min(w) < min(s) - 0.05 or max(w) > max(s) + 0.05, key
        lo, hi = SHAPES["wide"][key]
        assert lo <= min(w) and max(w) <= hi
    assert np.ptp([h for _, h in wide]) > np.ptp([h for _, h in std])
