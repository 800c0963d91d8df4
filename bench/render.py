"""Render benchmark: seconds per frame by stage, overhead over a bare bpy render, memory growth.

    python bench/render.py [--config configs/render.yaml] [--frames 3] [--presets quality,fast]
                           [--resolution 640x480] [key=value ...]

Prints one JSON object. For every frame of every preset: scene build (plan + bpy objects),
our render (Cycles + compositor outputs + read back), annotation (meshes, silhouettes, RLE,
post effects) and writing (PNG + part JSON), then a bare `bpy.ops.render.render()` of the
same scene with the same settings but no index pass, no compositor and no file output.
overhead_ratio = (render + annotate + write) / bare render. RSS is sampled after every
frame; rss_growth compares the last frame with the one at 10% of the run (use --frames 200
to show that memory stays flat). Never asserted by tests: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from blender import writer  # noqa: E402
from blender.frames import BlenderFrames  # noqa: E402
from blender.job_config import RenderJobConfig  # noqa: E402
from pipeline.common import load_config, package_versions, run_cli  # noqa: E402


def cpu_s() -> float:
    """CPU seconds of this process (all threads): steadier than wall time on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def bare_render(frames: BlenderFrames, seed: int) -> float:
    """Same scene and Cycles settings, without anything this project adds around the render."""
    import bpy

    from blender.cycles import configure_scene, quiet_blender

    scene = bpy.context.scene
    with quiet_blender():
        configure_scene(scene, frames.cfg.render, seed, gpu=frames.device.is_gpu)  # the same device
    for vl in scene.view_layers:
        vl.use_pass_object_index = False
    scene.render.use_compositing = False
    t = time.perf_counter()
    with quiet_blender():
        bpy.ops.render.render(write_still=False)
    return time.perf_counter() - t


def bench_preset(cfg: RenderJobConfig, n_frames: int, workdir: Path) -> dict:
    frames = BlenderFrames(cfg)
    threads = cfg.render.threads or os.cpu_count() or 1
    rows, rss = [], []
    try:
        for i in range(n_frames):
            t0, c0 = time.perf_counter(), cpu_s()
            state = frames.build(i)
            t1, c1 = time.perf_counter(), cpu_s()
            # alternate the order so neither render profits from a warmer cache
            bare_first = i % 2 == 0
            if bare_first:
                cb = cpu_s()
                bare = bare_render(frames, state["cycles_seed"])
                bare_cpu = cpu_s() - cb
            t2, c2 = time.perf_counter(), cpu_s()
            rgb, index_map = frames.render(state)
            t3, c3 = time.perf_counter(), cpu_s()
            rgb, anns = frames.annotate(state, rgb, index_map)
            t4, c4 = time.perf_counter(), cpu_s()
            writer.write_image(workdir, i, rgb)
            writer.write_part(workdir, i, writer.image_record(i, rgb.shape[1], rgb.shape[0]), anns,
                              {"plan": state["plan"].to_dict()})
            t5, c5 = time.perf_counter(), cpu_s()
            if not bare_first:
                cb = cpu_s()
                bare = bare_render(frames, state["cycles_seed"])
                bare_cpu = cpu_s() - cb
            rows.append({"build": t1 - t0, "render": t3 - t2, "annotate": t4 - t3, "write": t5 - t4,
                         "bare_render": bare, "instances": len(anns),
                         "cpu": {"build": c1 - c0, "render": c3 - c2, "annotate": c4 - c3, "write": c5 - c4,
                                 "bare_render": bare_cpu}})
            rss.append(rss_mb())
    finally:
        frames.close()
    # frame 0 pays one-time costs (kernel load, material compile): report it apart
    steady = rows[1:] if len(rows) > 1 else rows
    mean = {k: float(np.mean([r[k] for r in steady])) for k in ("build", "render", "annotate", "write", "bare_render")}
    ours = mean["render"] + mean["annotate"] + mean["write"]
    cpu = {k: float(np.mean([r["cpu"][k] for r in steady])) for k in mean}
    cpu_ours = cpu["render"] + cpu["annotate"] + cpu["write"]
    # memory warms up over the first frames (allocator high-water marks, importer caches):
    # growth is judged from 10% of the run on
    warm = min(len(rss) - 1, max(1, len(rss) // 10))
    base = rss[warm]
    return {
        "frames": n_frames,
        "device": frames.device.manifest(),
        "samples": cfg.render.samples,
        "seconds_per_frame": round(mean["build"] + ours, 3),
        "stages_s": {k: round(v, 3) for k, v in mean.items()},
        "first_frame_s": round(sum(rows[0][k] for k in ("build", "render", "annotate", "write")), 3),
        "overhead_ratio": round(ours / mean["bare_render"], 3),
        # CPU seconds do not grow when other processes share the cores (wall time does)
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "overhead_ratio_cpu": round(cpu_ours / cpu["bare_render"], 3),
        # what the frame would take with the cores to itself: Cycles scales ~1.9x on 2 cores,
        # the rest is single-threaded Python
        "est_idle_s_per_frame": round(cpu["build"] + cpu["render"] / threads + cpu["annotate"] + cpu["write"], 3),
        "instances_per_frame": float(np.mean([r["instances"] for r in rows])),
        "rss_mb": {"after_first": round(rss[0], 1), f"after_frame_{warm}": round(base, 1), "last": round(rss[-1], 1),
                   "peak": round(max(rss), 1)},
        "rss_growth": round(rss[-1] / base - 1, 4),
        # least-squares slope after warm-up: scenes differ in size, so single frames jitter
        "rss_slope_mb_per_100_frames": (round(float(np.polyfit(np.arange(len(rss) - warm), rss[warm:], 1)[0]) * 100, 2)
                                        if len(rss) - warm >= 10 else None),
        "rss_quartiles_mb": [round(rss[int(q * (len(rss) - 1))], 1) for q in (0.25, 0.5, 0.75, 1.0)],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python bench/render.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/render.yaml")
    ap.add_argument("--frames", type=int, default=3, help="frames per preset (first one is warm-up)")
    ap.add_argument("--presets", default="quality,fast")
    ap.add_argument("--resolution", default="640x480")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.resolution.lower().split("x"))
    result = {"benchmark": "render", "resolution": [w, h], "cpu_count": os.cpu_count(),
              "versions": package_versions(("bpy", "numpy")), "presets": {}}
    for preset in args.presets.split(","):
        cfg = load_config(args.config, RenderJobConfig,
                          [f"render.preset={preset}", f"render.resolution=[{w},{h}]", *args.overrides])
        with tempfile.TemporaryDirectory(prefix="bench_render_") as tmp:
            result["presets"][preset] = bench_preset(cfg, max(1, args.frames), Path(tmp))
    result["load_average"] = os.getloadavg()
    result["targets"] = {"quality_s_per_frame": 4.0, "fast_s_per_frame": 2.0, "overhead_ratio": 1.10,
                         "rss_growth": 0.10}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    run_cli(main)
