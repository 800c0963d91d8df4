"""Training-step benchmark: seconds per iteration, peak memory, data-pipeline overhead.

    python bench/train.py [--data DATASET_DIR] [--configs configs/train_demo.yaml configs/train.yaml]
                          [--steps 4] [--threads 2] [--batch-size 2] [--device cpu|cuda]
                          [--variant "r18 bf16:model.arch=maskrcnn_resnet18_fpn solver.amp=bf16" ...]

A --variant (label:overrides) runs every config once more with those key=value overrides, so
architectures and precisions compare as ratios within one run on one machine.

Prints one JSON object. For each config (run in its own process so peak memory is its own):
  s_per_it_loader   step time fed by the real DataLoader (augmentation, configured workers)
  s_per_it_memory   step time on the same batches already in memory
  overhead_ratio    loader / memory (target <= 1.05 with the configured worker count)
  peak_rss_mb       peak resident memory of the training process (+ the largest worker)
  peak_gpu_mb       peak CUDA memory allocated (--device cuda; the config's AMP and channels-last)
Without --data a 640x480 shapes set is generated (tests/helpers_coco.py) in a temp folder.
Weights are random (model.weights=none): speed does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(args) -> dict:
    import torch

    from pipeline.common import load_config
    from pipeline.config import TrainConfig
    from pipeline.data import CocoDetection, StepSampler, collate_fn
    from pipeline.engine import (
        amp_dtype,
        build_optimizer,
        build_scheduler,
        dtype_name,
        train_step,
        use_channels_last,
    )
    from pipeline.model import build_model
    from pipeline.transforms import Augment

    overrides = ["model.weights=none", f"device={args.device}", f"threads={args.threads}"]
    if args.batch_size:
        overrides.append(f"data.batch_size={args.batch_size}")
    cfg = load_config(args.one, TrainConfig, overrides + (args.set or []))
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ds = CocoDetection(Path(args.data), transforms=Augment(cfg.augment))
    bs = cfg.data.batch_size
    loader = torch.utils.data.DataLoader(
        ds, batch_size=bs, sampler=StepSampler(len(ds), bs, seed=0), num_workers=cfg.data.workers,
        collate_fn=collate_fn, generator=torch.Generator().manual_seed(0), pin_memory=args.device == "cuda",
        prefetch_factor=4 if cfg.data.workers else None)
    model, _ = build_model(cfg.model)
    dev = torch.device(args.device)
    dtype = amp_dtype(cfg.solver.amp, dev)
    model.to(dev).train()
    if use_channels_last(cfg.solver.channels_last, dev, dtype):
        model.to(memory_format=torch.channels_last)
    opt = build_optimizer(model, cfg.solver, False)
    sched = build_scheduler(opt, cfg.solver)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    it = iter(loader)

    def step(images, targets, k):
        # the loss terms come back as Python floats: the step has finished on the device
        train_step(model, images, targets, opt, scaler, dev, dtype, cfg.solver.clip_grad_norm, k)
        sched.step()

    for k in range(2):  # warm-up: allocator, worker start
        step(*next(it), k)
    # interleaved so drift in machine load hits both measurements alike
    t_loader = t_memory = 0.0
    for k in range(args.steps):
        t0 = time.perf_counter()
        b = next(it)
        step(*b, 2 + 2 * k)
        t1 = time.perf_counter()
        step(*b, 3 + 2 * k)
        t_loader += t1 - t0
        t_memory += time.perf_counter() - t1
    t_loader /= args.steps
    t_memory /= args.steps
    del it
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"config": args.one, "overrides": args.set or [], "arch": cfg.model.arch, "amp": cfg.solver.amp,
            "image_size": list(ds[0][0].shape[1:]), "min_size": cfg.model.min_size,
            "max_size": cfg.model.max_size, "batch_size": bs, "workers": cfg.data.workers,
            "augment_strength": cfg.augment.strength, "threads": args.threads, "steps": args.steps,
            "s_per_it_loader": round(t_loader, 3), "s_per_it_memory": round(t_memory, 3),
            "overhead_ratio": round(t_loader / t_memory, 3),
            "peak_rss_mb": round(peak), "peak_worker_rss_mb": round(child), "device": args.device,
            "amp_dtype": dtype_name(dtype),
            "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if dev.type == "cuda" else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data")
    p.add_argument("--configs", nargs="+", default=["configs/train_demo.yaml", "configs/train.yaml"])
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=2, help="0 = the config's own batch size")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--variant", action="append", default=[],
                   help='"label:key=value key=value": run each config again with these overrides')
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--set", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    if args.one:
        print(json.dumps(run_one(args)))
        return
    tmp = None
    if not args.data:
        sys.path.insert(0, str(ROOT / "tests"))
        from helpers_coco import make_coco_set
        tmp = tempfile.mkdtemp(prefix="bench_train_")
        args.data = str(make_coco_set(tmp, num_images=24, size=(480, 640), seed=0, objects=(2, 5)))
    variants = [("", [])] if not args.variant else []
    for v in args.variant:
        label, _, sets = v.partition(":")
        variants.append((label, sets.split()))
    results = []
    for c in args.configs:
        for label, sets in variants:
            cmd = [sys.executable, __file__, "--one", c, "--data", args.data, "--steps", str(args.steps),
                   "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--device", args.device,
                   "--set", *sets]
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            if proc.returncode != 0:
                results.append({"config": c, "variant": label, "error": proc.stderr.strip().splitlines()[-1:]})
            else:
                results.append({"variant": label, **json.loads(proc.stdout.strip().splitlines()[-1])})
    base = next((r for r in results if "s_per_it_memory" in r), None)
    for r in results:  # ratios within this run: comparable across machines, absolute times are not
        if base and "s_per_it_memory" in r:
            r["step_ratio_vs_first"] = round(r["s_per_it_memory"] / base["s_per_it_memory"], 3)
    import torch
    print(json.dumps({"benchmark": f"train_step_{args.device}", "torch": torch.__version__, "cpu_count": os.cpu_count(),
                      "load_avg_1m": round(os.getloadavg()[0], 2), "data": args.data,
                      "results": results}, indent=2))


if __name__ == "__main__":
    main()
