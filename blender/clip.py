"""CLI: an animated, annotated sequence of one warehouse scene, for tracking tests.

    python -m blender.clip --config configs/clip.yaml --out data/clip_demo [key=value ...]

One scene is planned once; walking pedestrians move along their facing direction (turning
back at racks and walls) while their walk-phase mesh is swapped from the human library,
pushed pallet jacks roll with their pusher, everyone else stays put, and the camera is a
fixed CCTV (or, with clip.camera=robot, a camera gliding forward). Every frame is rebuilt
from its own plan and rendered/annotated with the same engine as blender.render.

Output (resumable like blender.render: parts/ are the commit points):
  images/000000.png ...          frames, 0-based
  annotations.json               COCO; images carry `frame_index` (0-based), annotations
                                 `track_id` (stable per object: its pass index)
  gt/gt.txt                      MOT Challenge: frame(1-based),id,x,y,w,h,flag,class_id,visibility
                                 (flag 1, or 0 for instances marked iscrowd: ignored in scoring)
  seqinfo.ini                    name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field, model_validator
from tqdm import tqdm

from blender import writer
from blender.config import SceneJobConfig, config_hash
from pipeline.common import (
    StrictModel,
    UserError,
    atomic_write_text,
    config_to_dict,
    config_to_yaml,
    ensure_writable_dir,
    load_config,
    run_cli,
)


class ClipSettings(StrictModel):
    name: str = "clip"
    seed: int = Field(0, ge=0)
    num_frames: int = Field(60, ge=2, le=100000)
    fps: float = Field(10.0, gt=0, le=120)
    camera: Literal["cctv", "robot"] = "cctv"
    walk_speed: tuple[float, float] = (1.0, 1.5)   # m/s of walking pedestrians
    push_speed: tuple[float, float] = (0.6, 1.0)   # m/s of pushed pallet jacks and their pushers
    stride_m: float = Field(1.4, gt=0)             # distance of one full walk cycle (two steps)
    robot_speed: float = Field(0.5, ge=0)          # m/s, camera=robot only
    min_labelled: int = Field(2, ge=0)             # plans with fewer labelled objects are skipped
    plan_tries: int = Field(12, ge=1, le=1000)     # candidate plans; the one whose camera sees most wins

    @model_validator(mode="after")
    def _ranges(self) -> ClipSettings:
        for name in ("walk_speed", "push_speed"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} [{lo}, {hi}]: expected 0 <= low <= high")
        return self


class ClipJobConfig(SceneJobConfig):
    clip: ClipSettings = ClipSettings()


# ---------------------------------------------------------------- motion (pure numpy)

def _blocked(plan: dict, x: float, y: float, margin: float = 0.45) -> bool:
    lay = plan["layout"]
    if not (margin <= x <= lay["width"] - margin and margin <= y <= lay["length"] - margin):
        return True
    return any(r["x0"] - margin <= x <= r["x1"] + margin and r["y0"] - margin <= y <= r["y1"] + margin
               for r in lay["racks"])


def _phase_cycle(library: list[dict], mesh_id: str | None, pose: str) -> list[dict]:
    """Library meshes of `pose` to cycle through, one per phase: the person's own body when
    the library holds several phases of it, else the closest stature per phase."""
    same_pose = [m for m in library if m["pose"] == pose]
    own = next((m for m in library if m["id"] == mesh_id), None)
    if own is None or not same_pose:
        return []
    body = [m for m in same_pose if m.get("body") == own.get("body")]
    if len({m["phase"] for m in body}) >= 2:
        pool = body
    else:
        pool = []
        for phase in sorted({m["phase"] for m in same_pose}):
            cands = [m for m in same_pose if m["phase"] == phase]
            pool.append(min(cands, key=lambda m: (abs(m["stature"] - own["stature"]), m["id"])))
    return sorted(pool, key=lambda m: m["phase"])


def plan_motion(plan: dict, cfg: ClipSettings, rng: np.random.Generator, library: list[dict] | None) -> dict:
    """Who moves how: speeds per walker / pushed jack and their walk-phase mesh cycles."""
    peds, jacks = [], []
    pushers = {j.get("pushed_by") for j in plan["pallet_jacks"] if j.get("pushed_by") is not None}
    for i, p in enumerate(plan["pedestrians"]):
        walking = p["pose"] == "walk" and i not in pushers
        cycle = _phase_cycle(library or [], p.get("mesh_id"), p["pose"]) if (walking or i in pushers) else []
        peds.append({"speed": float(rng.uniform(*cfg.walk_speed)) if walking else 0.0,
                     "cycle": [{"id": m["id"], "phase": m["phase"]} for m in cycle]})
    for j in plan["pallet_jacks"]:
        jacks.append({"speed": float(rng.uniform(*cfg.push_speed)) if j.get("pushed_by") is not None else 0.0})
    return {"pedestrians": peds, "pallet_jacks": jacks,
            "camera_speed": cfg.robot_speed if cfg.camera == "robot" else 0.0}


def _walk(plan: dict, x: float, y: float, yaw: float, speed: float, dt: float, steps: int):
    """Position after `steps` steps along yaw, turning around where the way is blocked."""
    dist = 0.0
    for _ in range(steps):
        nx, ny = x + math.cos(yaw) * speed * dt, y + math.sin(yaw) * speed * dt
        if _blocked(plan, nx, ny):
            yaw += math.pi
            continue
        x, y = nx, ny
        dist += speed * dt
    return x, y, yaw, dist


def _set_phase(p: dict, cycle: list[dict], phase: float) -> None:
    if len(cycle) < 2:
        return
    best = min(cycle, key=lambda m: min(abs(m["phase"] - phase), 1 - abs(m["phase"] - phase)))
    p["mesh_id"] = best["id"]


def frame_plan(base: dict, motion: dict, frame: int, fps: float, stride_m: float) -> dict:
    """The plan of frame `frame`: the base plan with movers advanced by frame/fps seconds."""
    plan = copy.deepcopy(base)
    dt = 1.0 / fps
    for k, (p, m) in enumerate(zip(plan["pedestrians"], motion["pedestrians"], strict=True)):
        if m["speed"] > 0:
            p["x"], p["y"], p["yaw"], dist = _walk(plan, p["x"], p["y"], p["yaw"], m["speed"], dt, frame)
            phase0 = next((c["phase"] for c in m["cycle"] if c["id"] == base["pedestrians"][k]["mesh_id"]), 0.0)
            _set_phase(p, m["cycle"], (phase0 + dist / stride_m) % 1.0)
    for ji, (j, m) in enumerate(zip(plan["pallet_jacks"], motion["pallet_jacks"], strict=True)):
        if m["speed"] <= 0:
            continue
        x0, y0 = j["x"], j["y"]
        j["x"], j["y"], j["yaw"], dist = _walk(plan, j["x"], j["y"], j["yaw"], m["speed"], dt, frame)
        pi = j["pushed_by"]
        p = plan["pedestrians"][pi]
        # the pusher keeps its offset from the jack, rotated if the jack turned around
        ox, oy = p["x"] - x0, p["y"] - y0
        turn = j["yaw"] - base["pallet_jacks"][ji]["yaw"]
        c, s = math.cos(turn), math.sin(turn)
        p["x"], p["y"] = j["x"] + c * ox - s * oy, j["y"] + s * ox + c * oy
        p["yaw"] = base["pedestrians"][pi]["yaw"] + turn
        phase0 = next((cc["phase"] for cc in motion["pedestrians"][pi]["cycle"]
                       if cc["id"] == base["pedestrians"][pi]["mesh_id"]), 0.0)
        _set_phase(p, motion["pedestrians"][pi]["cycle"], (phase0 + dist / stride_m) % 1.0)
    if motion["camera_speed"] > 0:
        cam = plan["camera"]
        fwd = -np.asarray(cam["matrix"], float)[:, 2]
        fwd[2] = 0.0
        n = np.linalg.norm(fwd)
        if n > 1e-6:
            cam["location"] = (np.asarray(cam["location"]) + fwd / n * motion["camera_speed"] * frame * dt).tolist()
    return plan


# ---------------------------------------------------------------- MOT files

def mot_lines(coco: dict) -> list[str]:
    frame_of = {im["id"]: im["frame_index"] for im in coco["images"]}
    rows = []
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        rows.append((frame_of[a["image_id"]] + 1, a["track_id"], x, y, w, h, 0 if a["iscrowd"] else 1,
                     a["category_id"], a["visibility"]))
    rows.sort(key=lambda r: (r[0], r[1]))
    return [f"{f},{t},{x},{y},{w},{h},{flag},{c},{v:.4f}" for f, t, x, y, w, h, flag, c, v in rows]


def seqinfo(name: str, fps: float, n: int, width: int, height: int) -> str:
    return (f"[Sequence]\nname={name}\nimDir={writer.IMAGES}\nframeRate={fps:g}\nseqLength={n}\n"
            f"imWidth={width}\nimHeight={height}\nimExt=.png\n")


# ---------------------------------------------------------------- CLI

def base_plan(cfg: ClipJobConfig, humans: list[dict] | None) -> tuple[dict, dict]:
    """The clip's scene plan and motion: deterministic in clip.seed."""
    from blender.randomize import plan_scene

    scene_cfg = cfg.scene.model_copy(deep=True)
    scene_cfg.camera.robot_prob = 1.0 if cfg.clip.camera == "robot" else 0.0
    w, h = cfg.render.resolution
    best = None
    for attempt in range(cfg.clip.plan_tries):
        rng = np.random.default_rng([cfg.clip.seed, attempt])
        plan = plan_scene(scene_cfg, rng, negative=False, humans=humans, aspect=w / h)
        if len(plan["pedestrians"]) + len(plan["pallet_jacks"]) < cfg.clip.min_labelled:
            continue
        # a tracking clip needs company in the frame: keep the plan whose camera sees most
        seen = len(plan["camera"]["view"]["seen"])
        if best is None or seen > best[0]:
            best = (seen, attempt, plan, rng)
    if best is None:
        raise UserError(f"clip.seed {cfg.clip.seed}: no scene plan with >= {cfg.clip.min_labelled} labelled "
                        f"objects in {cfg.clip.plan_tries} tries; lower clip.min_labelled")
    _, attempt, plan, rng = best
    plan["clip_attempt"] = attempt
    return plan, plan_motion(plan, cfg.clip, rng, humans)


def main(argv: Sequence[str] | None = None, frame_factory=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m blender.clip", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. clip.num_frames=30")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, ClipJobConfig, args.overrides)
    out = ensure_writable_dir(args.out)
    resolved = config_to_dict(cfg)
    # reuse the dataset manifest machinery: the clip's name/seed/length sit where a dataset's do
    resolved_for_manifest = {**resolved, "dataset": {"name": cfg.clip.name, "seed": cfg.clip.seed,
                                                     "num_images": cfg.clip.num_frames}}
    cfg_hash = config_hash({**resolved, "clip": {**resolved["clip"], "num_frames": None}})
    old = writer.check_folder(out, cfg_hash)
    n = cfg.clip.num_frames
    done = writer.done_indices(out)
    todo = [k for k in range(n) if k not in done]
    t0 = time.perf_counter()
    frame, close = (frame_factory or make_clip_frames)(cfg) if todo else (None, lambda: None)
    if old is None or old.get("num_images") != n:
        writer.write_manifest(out, writer.manifest(resolved_for_manifest, cfg_hash, (1, 1), {"complete": False}))
    atomic_write_text(out / "config.yaml", config_to_yaml(cfg))
    if todo:
        try:
            for k in tqdm(todo, desc=f"clip {cfg.clip.name}", unit="frame", dynamic_ncols=True):
                rgb, anns, meta = frame(k)
                writer.write_image(out, k, rgb)
                writer.write_part(out, k, writer.image_record(k, rgb.shape[1], rgb.shape[0], frame_index=k),
                                  anns, meta)
        finally:
            close()
    elapsed = time.perf_counter() - t0
    info = {"description": f"{cfg.clip.name}: synthetic warehouse clip (blender.clip)", "version": "1",
            "seed": cfg.clip.seed, "config_hash": cfg_hash, "fps": cfg.clip.fps}
    coco = writer.merge(out, range(n), info)
    writer.write_annotations(out, coco)
    atomic_write_text(out / "gt" / "gt.txt", "\n".join(mot_lines(coco)) + "\n")
    w, h = cfg.render.resolution
    atomic_write_text(out / "seqinfo.ini", seqinfo(cfg.clip.name, cfg.clip.fps, n, w, h))
    writer.write_manifest(out, writer.manifest(resolved_for_manifest, cfg_hash, (1, 1), {"complete": True}))
    tracks = {a["track_id"] for a in coco["annotations"]}
    per_frame = f", {elapsed / len(todo):.2f} s/frame" if todo else ""
    print(f"clip: {len(todo)} frames rendered, {n - len(todo)} already done in {out}{per_frame}; "
          f"{len(coco['annotations'])} boxes of {len(tracks)} tracks over {n} frames; gt/gt.txt, seqinfo.ini written")
    return 0


def make_clip_frames(cfg: ClipJobConfig):
    from blender.randomize import load_human_index
    from blender.render import BlenderFrames, image_rngs

    frames = BlenderFrames(cfg)
    library = load_human_index(cfg.humans_dir) if frames.humans is not None else None
    plan, motion = base_plan(cfg, library)

    def frame(k: int):
        _, seed_rng, post_rng = image_rngs(cfg.clip.seed, k)
        fp = frame_plan(plan, motion, k, cfg.clip.fps, cfg.clip.stride_m)
        t0 = time.perf_counter()
        state = frames.build_plan(fp, seed_rng, post_rng)
        t1 = time.perf_counter()
        rgb, index_map = frames.render(state)
        t2 = time.perf_counter()
        rgb, anns = frames.annotate(state, rgb, index_map)
        for a in anns:
            a["track_id"] = a["instance_id"]
        meta = {"seconds": {"build": round(t1 - t0, 3), "render": round(t2 - t1, 3),
                            "annotate": round(time.perf_counter() - t2, 3)},
                "movers": {"pedestrians": [[p["x"], p["y"], p["yaw"], p["mesh_id"]] for p in fp["pedestrians"]],
                           "pallet_jacks": [[j["x"], j["y"], j["yaw"]] for j in fp["pallet_jacks"]],
                           "camera": fp["camera"]["location"]}}
        return rgb, anns, meta

    return frame, frames.close


if __name__ == "__main__":
    run_cli(main)
