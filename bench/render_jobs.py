"""Render throughput with one process against `--jobs N` local processes, in one run.

    python -m bench.render_jobs [--config configs/render_demo.yaml] [--frames 12] [--jobs 2]
                                [key=value ...]

Renders the same `--frames` images twice through the real CLI (`python -m blender.render`),
into fresh temporary folders: once as one process with every core, once as `--jobs` processes
with the cores split between them. Prints one JSON object: wall seconds per image of each
(process start-up and the merge included), their ratio, and whether the two annotations.json
files are byte-identical (they must be: image i depends only on the config, seed and i).
The ratio is what carries over to another machine; never asserted by tests.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.common import package_versions


def timed_render(config: str, out: Path, frames: int, jobs: int, overrides: list[str]) -> float:
    cmd = [sys.executable, "-m", "blender.render", "--config", config, "--out", str(out),
           "--num-images", str(frames), "--jobs", str(jobs), *overrides]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.render_jobs", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="configs/render_demo.yaml")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="render config overrides, e.g. humans_dir=assets_cache/humans")
    args = ap.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        one = timed_render(args.config, Path(tmp) / "one", args.frames, 1, args.overrides)
        many = timed_render(args.config, Path(tmp) / "many", args.frames, args.jobs, args.overrides)
        same = ((Path(tmp) / "one" / "annotations.json").read_bytes()
                == (Path(tmp) / "many" / "annotations.json").read_bytes())
    result = {"config": args.config, "frames": args.frames, "cores": cores,
              "one_process_s_per_image": round(one / args.frames, 3),
              f"jobs_{args.jobs}_s_per_image": round(many / args.frames, 3),
              "ratio_jobs_to_one": round(many / one, 3),
              "identical_annotations": same,
              "versions": package_versions(("bpy", "numpy"))}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
