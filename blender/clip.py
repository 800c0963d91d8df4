"""CLI: an animated, annotated sequence of one warehouse scene, for tracking tests.

    python -m blender.clip --config configs/clip.yaml --out data/clip_demo [key=value ...]

One scene is planned once and set in motion (blender.plan.motion): walking pedestrians
move and swap walk-phase meshes from the human library, pushed pallet jacks roll with
their pusher, the camera is a fixed CCTV (or, with clip.camera=robot, a camera gliding
forward). The site's own models (`assets:`) stay where the plan put them: unlabelled ones
as props, labelled pallet jacks parked, one track each; walkers and pushed jacks turn back
short of them as of every other static thing (props, standing people, parked jacks), and
before they would overlap each other (or wait), so no two movers overlap in any frame. Every
frame is rebuilt from its own plan and rendered/annotated by the same frame function and
resumable job as blender.render.

Output (resumable like blender.render: parts/ are the commit points):
  images/000000.png ...          frames, 0-based
  annotations.json               COCO; images carry `frame_index` (0-based), annotations
                                 `track_id` (stable per object: its pass index)
  gt/gt.txt                      MOT Challenge: frame(1-based),id,x,y,w,h,flag,class_id,visibility
                                 (flag 1, or 0 for instances marked iscrowd: ignored in scoring)
  seqinfo.ini                    name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
  calibration.yaml               the fixed camera's exact projection, with its lens when
                                 scene.camera.calibration is set (pipeline.analytics reads it)
  truth/floor.csv                true floor position of every labelled object per frame
  rules.yaml, truth/events.csv   with clip.scenario: the rules the scenario exercises and the
                                 events they raise on the true positions
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np

from blender import writer
from blender.job import FrameFactory, FrameJob
from blender.job_config import ClipJobConfig, config_hash
from blender.plan import ScenePlan, load_human_index, plan_scene
from blender.plan.motion import MOTION_VERSION, Motion, MoverStates, frame_plan, plan_motion
from blender.plan.scenario import plan_scenario
from blender.plan.site import AssetSpec
from pipeline.analytics.clip_truth import write_clip_truth
from pipeline.common import (
    UserError,
    atomic_write_text,
    config_to_dict,
    config_to_yaml,
    ensure_writable_dir,
    load_config,
    run_cli,
)
from pipeline.mot import coco_to_mot_rows

# ---------------------------------------------------------------- MOT files


def mot_lines(coco: dict) -> list[str]:
    """gt/gt.txt lines (MOTChallenge: frame, id, box, flag, class, visibility)."""
    return [f"{int(f)},{int(t)},{x:g},{y:g},{w:g},{h:g},{int(flag)},{int(c)},{v:.4f}"
            for f, t, x, y, w, h, flag, c, v in coco_to_mot_rows(coco)]


def seqinfo(name: str, fps: float, n: int, width: int, height: int) -> str:
    return (f"[Sequence]\nname={name}\nimDir={writer.IMAGES}\nframeRate={fps:g}\nseqLength={n}\n"
            f"imWidth={width}\nimHeight={height}\nimExt=.png\n")


# ---------------------------------------------------------------- the clip's scene

def base_plan(cfg: ClipJobConfig, humans: list[dict] | None, assets: Sequence[AssetSpec] = ()
              ) -> tuple[ScenePlan, Motion]:
    """The clip's scene plan and motion: deterministic in clip.seed. `assets`: the site's
    measured models (blender.frames.site_assets); they stay where the plan puts them."""
    scene_cfg = cfg.scene.model_copy(deep=True)
    scene_cfg.camera.robot_prob = 1.0 if cfg.clip.camera == "robot" else 0.0
    w, h = cfg.render.resolution
    best = None
    for attempt in range(cfg.clip.plan_tries):
        rng = np.random.default_rng([cfg.clip.seed, attempt])
        plan = plan_scene(scene_cfg, rng, negative=False, humans=humans, aspect=w / h, assets=assets,
                          image_size=(w, h), lens_pixels=cfg.render.lens_pixels)
        if len(plan.pedestrians) + len(plan.pallet_jacks) < cfg.clip.min_labelled:
            continue
        # a tracking clip needs company in the frame: keep the plan whose camera sees most
        seen = len(plan.camera.view.seen)
        if best is None or seen > best[0]:
            best = (seen, attempt, plan, rng)
    if best is None:
        raise UserError(f"clip.seed {cfg.clip.seed}: no scene plan with >= {cfg.clip.min_labelled} labelled "
                        f"objects in {cfg.clip.plan_tries} tries; lower clip.min_labelled")
    _, attempt, plan, rng = best
    return plan, plan_motion(plan, cfg.clip, rng, humans, plan_attempt=attempt)


def clip_plan(cfg: ClipJobConfig, humans: list[dict] | None, assets: Sequence[AssetSpec] = ()
              ) -> tuple[ScenePlan, Motion, dict | None]:
    """The base plan, or with clip.scenario its scripted version: (plan, motion, rules or None)."""
    plan, motion = base_plan(cfg, humans, assets)
    if cfg.clip.scenario is None:
        return plan, motion, None
    w, h = cfg.render.resolution
    # its own stream: the base plan's draws stay those of a clip without the scenario
    rng = np.random.default_rng([cfg.clip.seed, motion.plan_attempt, 1])
    return plan_scenario(plan, cfg.clip.scenario, cfg.scene, rng, humans, w / h)


def make_clip_frames(cfg: ClipJobConfig):
    from blender.frames import BlenderFrames, image_rngs

    frames = BlenderFrames(cfg)
    library = load_human_index(cfg.humans_dir) if frames.humans is not None else None
    plan, motion, _ = clip_plan(cfg, library, frames.assets)
    states = MoverStates()

    def make_plan(k: int):
        _, seed_rng, post_rng = image_rngs(cfg.clip.seed, k)
        return frame_plan(plan, motion, k, cfg.clip.fps, cfg.clip.stride_m, states), seed_rng, post_rng

    def frame(k: int):
        from blender.truth import scene_floor_truth

        fp, rgb, anns, seconds = frames.timed(lambda: make_plan(k))
        for a in anns:
            a["track_id"] = a["instance_id"]
        # the scene of frame k is still built; a calibrated camera's truth goes through its lens
        calib, floor = scene_floor_truth(frames.warp if fp.camera.lens is not None else None)
        meta = {"seconds": seconds,
                "movers": {"pedestrians": [[p.x, p.y, p.yaw, p.mesh_id] for p in fp.pedestrians],
                           "pallet_jacks": [[j.x, j.y, j.yaw] for j in fp.pallet_jacks],
                           "camera": fp.camera.location},
                "camera_matrix": calib["camera_matrix"],
                "floor": {str(i): [round(x, 5), round(y, 5)] for i, (x, y) in floor.items()}}
        if "lens" in calib:   # parts of uncalibrated clips stay as they were
            meta["lens"] = calib["lens"]
        return rgb, {"frame_index": k}, anns, meta

    return frame, frames.close


# ---------------------------------------------------------------- CLI

def main(argv: Sequence[str] | None = None, frame_factory: FrameFactory = make_clip_frames) -> int:
    ap = argparse.ArgumentParser(prog="python -m blender.clip", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. clip.num_frames=30")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, ClipJobConfig, args.overrides)
    out = ensure_writable_dir(args.out)
    resolved = config_to_dict(cfg)
    # the dataset manifest machinery: the clip's name/seed/length sit where a dataset's do
    manifest_config = {**resolved, "dataset": {"name": cfg.clip.name, "seed": cfg.clip.seed,
                                               "num_images": cfg.clip.num_frames}}
    # a clip may grow longer: its frame count is not part of what frame k looks like; the
    # motion model's version is
    clip_keys = {k: v for k, v in resolved["clip"].items() if not (k == "scenario" and v is None)}
    cfg_hash = config_hash({**resolved, "clip": {**clip_keys, "num_frames": None}, "motion": MOTION_VERSION})
    rules = None
    if cfg.clip.scenario is not None:  # planned up front: a scenario that cannot fit fails before rendering
        from blender.frames import site_assets  # site models change the base plan: measured alike

        rules = clip_plan(cfg, load_human_index(cfg.humans_dir), site_assets(cfg.assets))[2]
    job = FrameJob(out, manifest_config, cfg_hash)
    n = job.num_images
    todo = job.missing()
    run = job.run(todo, frame_factory, cfg, config_to_yaml(cfg), f"clip {cfg.clip.name}", "frame")
    info = {"description": f"{cfg.clip.name}: synthetic warehouse clip (blender.clip)", "version": "1",
            "seed": cfg.clip.seed, "config_hash": cfg_hash, "fps": cfg.clip.fps}
    coco = job.merge(info)
    atomic_write_text(out / "gt" / "gt.txt", "\n".join(mot_lines(coco)) + "\n")
    w, h = cfg.render.resolution
    atomic_write_text(out / "seqinfo.ini", seqinfo(cfg.clip.name, cfg.clip.fps, n, w, h))
    truth = write_clip_truth(out, coco, cfg.clip.fps, cfg.clip.camera == "cctv", (w, h), rules)
    job.complete()
    tracks = {a["track_id"] for a in coco["annotations"]}
    print(f"clip: {len(todo)} frames rendered, {n - len(todo)} already done in {out}{run.per_frame()}; "
          f"{len(coco['annotations'])} boxes of {len(tracks)} tracks over {n} frames; gt/gt.txt, seqinfo.ini{truth} written")
    return 0


if __name__ == "__main__":
    run_cli(main)
