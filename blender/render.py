"""CLI: render config -> images + exact COCO annotations, resumable and shardable.

    python -m blender.render --config configs/render.yaml --out data/synth \
        [--num-images N] [--seed S] [--shard K/N|auto] [--jobs N] [--merge-only] [key=value ...]

Image i depends only on (resolved config, seed, i): its randomness comes from
SeedSequence([seed, i]), so shard K of N renders the indices i % N == K-1 and the merged
annotations.json is byte-identical to a single-machine run. Whichever process finds every
part present merges them (or run again with --merge-only). `--shard auto` takes K/N from a
SLURM array or a Kubernetes Indexed Job (blender/shard.py). `--jobs N` runs shards 1..N as N
processes on this machine, the cores split between them, then merges: a frame's scene build,
annotation and writing are single-threaded Python, so one process leaves cores idle for part of
every frame (bench/render_jobs.py measures the gain).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence

from blender.frames import make_frame_fn
from blender.job import FrameFactory, FrameJob
from blender.job_config import RenderJobConfig, config_hash
from blender.shard import parse_shard
from pipeline.common import (
    CLASS_NAMES,
    UserError,
    config_to_dict,
    config_to_yaml,
    ensure_writable_dir,
    load_config,
    run_cli,
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m blender.render", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="render config YAML (configs/render.yaml)")
    ap.add_argument("--out", required=True, help="dataset folder (images/, parts/, annotations.json)")
    ap.add_argument("--num-images", type=int, help="override dataset.num_images")
    ap.add_argument("--seed", type=int, help="override dataset.seed")
    ap.add_argument("--shard", help="K/N: render only indices i with i %% N == K-1 (1-based K); auto: K/N "
                                    "from SLURM_ARRAY_TASK_* or JOB_COMPLETION_INDEX + JOB_COMPLETIONS")
    ap.add_argument("--jobs", type=int, default=1, help="render as N local processes (shards 1..N, "
                                                         "the cores split between them), then merge")
    ap.add_argument("--merge-only", action="store_true", help="render nothing; merge parts if all exist")
    ap.add_argument("--no-merge", action="store_true", help="render this shard only; leave the merge to "
                                                             "--merge-only (what --jobs runs)")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. render.preset=fast")
    return ap.parse_args(argv)


def summarize(coco_like_anns: list[dict], negatives: int) -> str:
    per_class = Counter(a["category_id"] for a in coco_like_anns if not a["iscrowd"])
    crowd = sum(1 for a in coco_like_anns if a["iscrowd"])
    cls = ", ".join(f"{per_class.get(i, 0)} {CLASS_NAMES[i]}" for i in range(1, len(CLASS_NAMES)))
    return f"{cls} ({crowd} crowd), {negatives} negative"


def local_shards(args: argparse.Namespace, threads: int) -> int:
    """Run shards 1..args.jobs of the dataset as child processes, `threads` Cycles threads each
    (0: the cores split evenly); returns the seconds they took. A failed shard is a UserError
    after all have stopped; what the others wrote stays (a rerun resumes)."""
    n = args.jobs
    if threads == 0:
        threads = max(1, len(os.sched_getaffinity(0)) // n)
    base = [sys.executable, "-m", "blender.render", "--config", args.config, "--out", args.out, "--no-merge"]
    base += [] if args.num_images is None else ["--num-images", str(args.num_images)]
    base += [] if args.seed is None else ["--seed", str(args.seed)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen([*base, "--shard", f"{k}/{n}", *args.overrides, f"render.threads={threads}"])
             for k in range(1, n + 1)]
    try:
        codes = [p.wait() for p in procs]
    except KeyboardInterrupt:   # the children got the terminal's Ctrl-C too: let them stop cleanly
        for p in procs:
            p.wait()
        raise
    failed = [(k, c) for k, c in enumerate(codes, 1) if c != 0]
    if failed:
        k, c = failed[0]
        raise UserError(f"--jobs {n}: shard {k}/{n} exited with status {c} (its error is above); "
                        f"run the same command again to resume")
    return time.perf_counter() - t0


def main(argv: Sequence[str] | None = None, frame_factory: FrameFactory = make_frame_fn) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.num_images is not None:
        overrides.append(f"dataset.num_images={args.num_images}")
    if args.seed is not None:
        overrides.append(f"dataset.seed={args.seed}")
    cfg = load_config(args.config, RenderJobConfig, overrides)
    if args.jobs < 1:
        raise UserError(f"--jobs {args.jobs}: expected a number of processes >= 1")
    if args.jobs > 1 and (args.shard is not None or args.merge_only or args.no_merge):
        raise UserError(f"--jobs {args.jobs} renders every shard itself; not with --shard, --merge-only or --no-merge")
    shard = parse_shard(args.shard)
    out = ensure_writable_dir(args.out)
    resolved = config_to_dict(cfg)
    cfg_hash = config_hash(resolved)
    if args.jobs > 1:
        todo_all = len(FrameJob(out, resolved, cfg_hash).missing())   # refuses a folder of another config
        if todo_all:
            seconds = local_shards(args, cfg.render.threads)
            print(f"render: {args.jobs} processes rendered {todo_all} images in {seconds:.0f} s "
                  f"({seconds / todo_all:.2f} s/img)")
        args.merge_only = True   # the shards rendered everything: what is left is the merge
    job = FrameJob(out, resolved, cfg_hash, shard)
    n_images = job.num_images
    mine = [i for i in range(n_images) if i % shard[1] == shard[0] - 1]
    todo = [] if args.merge_only else job.missing(mine)
    run = job.run(todo, frame_factory, cfg, config_to_yaml(cfg), f"render {shard[0]}/{shard[1]}", "img",
                  meta_extra={"shard": f"{shard[0]}/{shard[1]}"})
    rendered_anns, negatives = run.annotations, run.negatives

    missing = job.missing()
    skipped = len(mine) - len(todo)
    if missing:
        if args.merge_only:
            raise UserError(f"{out}: {len(missing)} of {n_images} images are not rendered yet "
                            f"(first missing index {missing[0]}); run the remaining shards first")
        status = f"{len(missing)} of {n_images} images still missing (other shards); no merge yet"
    elif args.no_merge:
        status = "every image is there; merge with --merge-only"
    else:
        info = {"description": f"{cfg.dataset.name}: synthetic warehouse (blender.render)",
                "version": "1", "seed": cfg.dataset.seed, "config_hash": cfg_hash}
        coco = job.merge(info)
        job.complete()
        if not todo:  # a pure merge: describe the whole dataset
            rendered_anns = coco["annotations"]
            negatives = sum(1 for im in coco["images"] if im.get("negative"))
        status = f"annotations.json holds {len(coco['images'])} images, {len(coco['annotations'])} annotations"
    print(f"render: {len(todo)} rendered, {skipped} already done in {out}{run.per_frame()}; "
          f"{'these' if todo else 'all'}: {summarize(rendered_anns, negatives)}; {status}")
    return 0


if __name__ == "__main__":
    run_cli(main)
