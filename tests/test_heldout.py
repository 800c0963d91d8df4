"""bench.heldout end to end at toy size: the held-out and seen test sets hold the same scenes
(only surfaces differ), every stage runs through the real CLIs, and the drops add up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
HUMANS = ROOT / "assets_cache" / "humans"

pytestmark = [pytest.mark.slow, pytest.mark.blender]


def _anns(data: Path) -> list[tuple]:
    coco = json.loads((data / "annotations.json").read_text())
    return sorted((a["image_id"], a["category_id"], tuple(round(v, 3) for v in a["bbox"]), a["iscrowd"])
                  for a in coco["annotations"])


def test_heldout_family_run_at_toy_size(tmp_path):
    assert (HUMANS / "index.json").is_file(), "human library missing: run `make humans` first"
    out = tmp_path / "heldout"
    cmd = [sys.executable, "-m", "bench.heldout", "--hold", "painted_steel+rubber", "--train-images", "2",
           "--test-images", "2", "--steps", "2", "--humans", str(HUMANS), "--out", str(out),
           "--render-set", "render.resolution=[96,72]", "render.samples=1", "scene.negative_fraction=0.0",
           "annotation.min_area=20",
           "--train-set", "model.arch=maskrcnn_resnet18_fpn", "model.weights=none", "model.min_size=72",
           "model.max_size=96", "data.workers=0", "solver.warmup_iters=1", "log.eval_every=0"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    (g,) = res["groups"]
    assert g["held_out"] == "painted_steel+rubber"
    assert "painted_steel" not in g["train_families"] and "concrete" in g["train_families"]
    for when in ("before", "after"):
        for k, v in g[when]["drop"].items():
            seen, unseen = g[when]["seen"][k], g[when]["unseen"][k]
            assert v == pytest.approx(seen - unseen) if v is not None else None in (seen, unseen)
    assert json.loads((out / "heldout.json").read_text()) == res
    assert "| painted_steel+rubber | after |" in (out / "heldout.md").read_text()

    # the premise of the drop: the three test sets are the same scenes in other surfaces
    base = out / "painted_steel+rubber"
    test_in, test_out, flat = base / "test_in", base / "test_out", out / "flat" / "test"
    assert _anns(test_in) == _anns(test_out) == _anns(flat) and _anns(test_in)
    img = "images/000000.png"
    a, b = (np.asarray(Image.open(d / img), dtype=np.int16) for d in (test_in, test_out))
    assert np.abs(a - b).mean() > 1.0  # the surfaces did change

    # a rerun finds every stage done and renders or trains nothing
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "blender.render" not in again.stderr and "pipeline.train" not in again.stderr
