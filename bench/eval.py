"""Evaluation cost per image: model forward vs. metrics and reporting. Prints one JSON object.

    python -m bench.eval [--images 4] [--size 240x320] [--min-size 240] [--max-size 320] [--device auto]
                         [--threads 2] [--checkpoint RUN/best.pt] [--data DATASET]

The defaults are laptop-sized (~20 s on 2 CPU cores); for deployment-sized numbers use
e.g. `--images 16 --size 480x640 --min-size 480 --max-size 853` (on a GPU: `--size 720x1280
--min-size 800 --max-size 1333`).

Without --checkpoint a random-init Mask R-CNN is timed: it keeps the full 100 detections per
image, the worst case for the mask head, RLE encoding and COCOeval. Without --data a synthetic
set (tests/helpers_coco.py) of the given size is written to a temporary folder. Runs the real
CLI (pipeline.evaluate.main) and reads the timings it records in metrics.json.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--size", default="240x320", help="HxW of the synthetic images")
    ap.add_argument("--min-size", type=int, default=240, help="model input min_size")
    ap.add_argument("--max-size", type=int, default=320)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", default=None, help="time this checkpoint instead of a random-init model")
    ap.add_argument("--data", default=None, help="evaluate this dataset instead of a synthetic one")
    args, _ = ap.parse_known_args()  # `make bench ARGS=...` passes the same ARGS to every benchmark

    import torch

    from pipeline import evaluate
    from pipeline.common import CATEGORIES, config_to_dict, package_versions
    from pipeline.config import TrainConfig
    from pipeline.model import ModelConfig, build_model
    from tests.helpers_coco import make_coco_set

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        tmp = Path(tmp)
        h, w = (int(v) for v in args.size.lower().split("x"))
        data = Path(args.data) if args.data else make_coco_set(tmp / "data", num_images=args.images,
                                                               size=(h, w), seed=0)
        ckpt = Path(args.checkpoint) if args.checkpoint else tmp / "run" / "best.pt"
        if not args.checkpoint:
            cfg = TrainConfig(model=ModelConfig(weights="none", min_size=args.min_size, max_size=args.max_size))
            torch.manual_seed(0)
            model, init = build_model(cfg.model)
            ckpt.parent.mkdir(parents=True)
            torch.save({"model": model.state_dict(), "step": 0, "config": config_to_dict(cfg),
                        "categories": CATEGORIES, "init": init, "versions": package_versions()}, ckpt)
            del model
        out = tmp / "eval"
        overrides = [f"device={args.device}", f"threads={args.threads}", f"batch_size={args.batch_size}",
                     f"max_images={args.images}", f"min_size={args.min_size}", f"max_size={args.max_size}",
                     "num_workers=1"]
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            evaluate.main(["--checkpoint", str(ckpt), "--data", str(data), "--out", str(out), *overrides])
        wall = time.perf_counter() - t0
        m = json.loads((out / "metrics.json").read_text())
    t = m["timing"]
    n = t["images"]
    print(json.dumps({
        "benchmark": "eval",
        "device": t["device"], "device_name": t["device_name"], "threads": t["threads"],
        "images": n, "image_size": [h, w] if not args.data else None, "min_size": t["min_size"],
        "batch_size": t["batch_size"], "checkpoint": "random-init" if not args.checkpoint else str(ckpt),
        "predictions_per_image": m["num_predictions"] / n,
        "model_forward_s_per_image": round(t["inference_s_per_image"], 4),
        "inference_total_s_per_image": round(t["total_s_per_image"], 4),
        "metrics_and_report_s": round(t["metrics_and_report_s"], 3),
        "metrics_and_report_s_per_image": round(t["metrics_and_report_s"] / n, 4),
        "end_to_end_s": round(wall, 2),
    }, indent=1))


if __name__ == "__main__":
    main()
