"""Benchmark: the share of end-to-end video time the safety analytics take, within one run.

    python -m bench.analytics [--checkpoint runs/demo/best.pt] [--source data/clip_near_miss]
                              [--rules SOURCE/rules.yaml] [--config configs/video_demo.yaml] [--out outputs/bench/analytics.json]

Analytics time = footprints, floor mapping, rules and scoring hooks in the main thread plus the
overlay drawing in the writer thread, as the video job measures it. Prints JSON; never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.common import atomic_write_json, load_config, run_cli
from pipeline.video import VideoConfig, run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.analytics")
    ap.add_argument("--checkpoint", default="runs/demo/best.pt")
    ap.add_argument("--source", default="data/clip_near_miss")
    ap.add_argument("--rules", default=None)
    ap.add_argument("--config", default="configs/video_demo.yaml")
    ap.add_argument("--out", default="outputs/bench/analytics.json")
    args = ap.parse_args(argv)
    rules = args.rules or str(Path(args.source) / "rules.yaml")
    cfg = load_config(args.config, VideoConfig)
    video = Path(args.out).with_suffix(".mp4")
    s = run(cfg, args.checkpoint, args.source, video, quiet=True, rules=rules)
    a = s["analytics"]
    res = {"checkpoint": args.checkpoint, "source": args.source, "rules": rules, "frames": s["frames"],
           "seconds": s["seconds"], "inference_seconds": s["inference_seconds"],
           "analytics_seconds": a["seconds"], "ratio": a["share_of_run"],
           "events": a["events"], "scores": {k: a.get(k) for k in ("precision", "recall", "floor_error_m",
                                                                   "line_count_error", "event_matches")}}
    atomic_write_json(args.out, res, indent=2)
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    run_cli(main)
