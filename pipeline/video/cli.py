"""`python -m pipeline.video`: argument parsing and the one-line result."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence

from pipeline.common import load_config
from pipeline.video import __doc__ as USAGE
from pipeline.video.config import VideoConfig
from pipeline.video.loop import run


def summary_line(s: dict) -> str:
    cls = ", ".join(f"{n} {v['detections']} dets/{v['tracks']} tracks ({v['stable_tracks']['3s']} >= 3 s)"
                    for n, v in s["per_class"].items())
    line = (f"video {s['status']}: {s['frames']} frames in {s['seconds']:.1f} s ({s['fps'] or 0:.2f} fps), "
            f"{cls}; skipped {s['skipped_frames']} -> {s['outputs']['video']}")
    m = s.get("metrics", {})
    parts = []
    for t, r in m.get("detection", {}).items():
        if isinstance(r, dict) and r.get("AP") is not None:
            parts.append(f"{t} AP {r['AP']:.3f}")
    if "tracking" in m:
        c = m["tracking"]["combined"]
        parts.append(f"HOTA {c['HOTA']:.3f} MOTA {c['MOTA']:.3f} IDF1 {c['IDF1']:.3f}")
    a = s.get("analytics")
    if a:
        parts.append(f"{a['events']} events")
        if a.get("precision") is not None or a.get("recall") is not None:
            fe = a["floor_error_m"]
            def fmt(v):
                return ("n/a" if v is None else f"{v:.3f}")
            parts.append(f"events P {fmt(a['precision'])} R {fmt(a['recall'])}, floor error median "
                         f"{fmt(fe['median'])} m p90 {fmt(fe['p90'])} m")
    return line + (f" [{', '.join(parts)}]" if parts else "")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.video", description=USAGE.split("\n\n")[0])
    ap.add_argument("--config", default=None, help="YAML config (default: built-in defaults)")
    ap.add_argument("--checkpoint", required=True, help="checkpoint .pt of this project or an .onnx export")
    ap.add_argument("--source", required=True,
                    help="video file, image folder or glob, ground-truth clip folder, camera index or URL")
    ap.add_argument("--out", required=True, help="annotated video (.mp4/.mkv/.mov H.264, .avi MJPG)")
    ap.add_argument("--rules", default=None,
                    help="safety rules YAML (zones, lines, proximity; docs/DESIGN.md): events, OUT.events.csv")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. source.stride=2)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, VideoConfig, args.overrides)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*frame skipped")  # counted in the summary instead
        summary = run(cfg, args.checkpoint, args.source, args.out, quiet=args.quiet, rules=args.rules)
    print(summary_line(summary))
    return 130 if summary["status"] == "interrupted" else 0
