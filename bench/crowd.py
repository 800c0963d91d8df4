"""How freely the walkers of clips move: the crowd model's figures, no Blender needed.

    python -m bench.crowd [--seeds 6] [--frames 100]

For clip plans made as configs/clip_demo.yaml makes them (the demo's density: its people count
and focus radius) and a crowded variant (8 people and 2 jacks within 4 m), over `--seeds`
seeds: `stalled_share`, the share of walker steps on which a walker on a route stood still;
`progress`, the distance walkers covered over what their speeds would cover on open floor;
`min_walker_gap_m`, the closest two walkers' centres came. Movers never overlap (tests check
it); these say how much waiting that costs. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from blender.clip import clip_plan  # noqa: E402
from blender.job_config import ClipJobConfig  # noqa: E402
from blender.plan.motion import MoverStates, frame_plan  # noqa: E402
from pipeline.common import load_config  # noqa: E402

SETTINGS = {
    "demo": [],
    "crowded": ["scene.pedestrians.count=[8,8]", "scene.pallet_jacks.count=[2,2]", "scene.focus_radius=4.0"],
}


def walk_figures(overrides: list[str], seed: int, frames: int) -> dict:
    cfg = load_config(ROOT / "configs" / "clip_demo.yaml", ClipJobConfig,
                      [f"clip.num_frames={frames}", f"clip.seed={seed}", *overrides])
    plan, motion, _ = clip_plan(cfg, None)
    walkers = [k for k, m in enumerate(motion.pedestrians) if m.speed > 0 and m.goals]
    states = MoverStates()
    steps = stalled = 0
    walked, gap, prev = 0.0, math.inf, None
    for f in range(frames):
        fp = frame_plan(plan, motion, f, cfg.clip.fps, cfg.clip.stride_m, states)
        pos = [(fp.pedestrians[k].x, fp.pedestrians[k].y) for k in walkers]
        gap = min([gap, *(math.dist(a, b) for i, a in enumerate(pos) for b in pos[i + 1:])])
        if prev is not None:
            moved = [math.dist(a, b) for a, b in zip(pos, prev, strict=True)]
            steps += len(moved)
            stalled += sum(d < 1e-9 for d in moved)
            walked += sum(moved)
        prev = pos
    possible = sum(motion.pedestrians[k].speed for k in walkers) * (frames - 1) / cfg.clip.fps
    return {"walkers": len(walkers), "steps": steps, "stalled": stalled, "walked_m": walked,
            "possible_m": possible, "gap": gap}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.crowd", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args(argv)
    out = {"frames": args.frames, "seeds": args.seeds, "settings": {}}
    for name, overrides in SETTINGS.items():
        runs = [walk_figures(overrides, s, args.frames) for s in range(args.seeds)]
        steps = sum(r["steps"] for r in runs)
        out["settings"][name] = {
            "overrides": overrides,
            "walkers": sum(r["walkers"] for r in runs),
            "stalled_share": round(sum(r["stalled"] for r in runs) / max(1, steps), 4),
            "progress": round(sum(r["walked_m"] for r in runs) / max(1e-9, sum(r["possible_m"] for r in runs)), 4),
            "min_walker_gap_m": round(min(r["gap"] for r in runs), 3),
        }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
