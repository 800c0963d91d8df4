"""The whole chain at toy size, through the same CLIs the Makefile runs.

render (Blender, tiny frames) -> train (2 steps, random init) -> evaluate -> video -> compare,
checking each stage's files are valid and linked: the eval report names the checkpoint it
scored, the video JSONL names the model it used.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

ROOT = Path(__file__).resolve().parents[1]
HUMANS = ROOT / "assets_cache" / "humans"

pytestmark = [pytest.mark.slow, pytest.mark.blender]


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    r = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True,
                       timeout=900, env=env)
    assert r.returncode == 0, f"{args[0]} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    assert (HUMANS / "index.json").is_file(), "human library missing: run `make humans` first"
    tmp = tmp_path_factory.mktemp("e2e")
    p = {"data": tmp / "data", "run": tmp / "run", "eval": tmp / "run" / "eval" / "data",
         "video": tmp / "video" / "toy.mp4"}
    cli("blender.render", "--config", "configs/render_demo.yaml", "--out", str(p["data"]),
        "--num-images", "4", "--seed", "7", f"humans_dir={HUMANS}",
        "render.resolution=[128,96]", "render.samples=2", "scene.negative_fraction=0.0")
    cli("pipeline.train", "--config", "configs/train_demo.yaml", "--data", str(p["data"]),
        "--out", str(p["run"]), "--max-iters", "2", "model.weights=none", "model.min_size=96",
        "model.max_size=128", "model.test_min_size=96", "model.test_max_size=128", "model.bn_calibration_images=2", "data.workers=0",
        "log.eval_every=2", "log.checkpoint_every=1", "solver.warmup_iters=1")
    cli("pipeline.evaluate", "--config", "configs/eval_demo.yaml", "--checkpoint",
        str(p["run"] / "best.pt"), "--data", str(p["data"]), "--out", str(p["eval"]), "num_workers=0")
    cli("pipeline.video", "--config", "configs/video_demo.yaml", "--checkpoint", str(p["run"] / "best.pt"),
        "--source", str(p["data"] / "images"), "--out", str(p["video"]), "--quiet")
    return p


def test_render_wrote_a_valid_coco_set(chain):
    coco = json.loads((chain["data"] / "annotations.json").read_text())
    assert len(coco["images"]) == 4
    assert [c["name"] for c in coco["categories"]] == ["pedestrian", "pallet_jack"]
    assert coco["annotations"], "4 positive frames rendered with no instance at all"
    for img in coco["images"]:
        assert (img["width"], img["height"]) == (128, 96)
        assert cv2.imread(str(chain["data"] / "images" / img["file_name"])).shape == (96, 128, 3)
    manifest = json.loads((chain["data"] / "manifest.json").read_text())
    assert manifest["seed"] == 7 or manifest.get("config", {}).get("dataset", {}).get("seed") == 7


def test_training_checkpoint_is_complete(chain):
    import torch

    ck = torch.load(chain["run"] / "last.pt", map_location="cpu", weights_only=False)
    for key in ("model", "optimizer", "scheduler", "scaler", "step", "rng", "config", "categories", "init", "versions"):
        assert key in ck, key
    assert ck["step"] == 2
    assert [c["name"] for c in ck["categories"]] == ["pedestrian", "pallet_jack"]
    assert ck["model"]["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3
    assert ck["init"]["weights"] == "none"
    assert (chain["run"] / "config.yaml").is_file() and (chain["run"] / "metrics.jsonl").is_file()


def test_eval_report_names_the_checkpoint_it_scored(chain):
    metrics = json.loads((chain["eval"] / "metrics.json").read_text())
    report = (chain["eval"] / "report.md").read_text()
    ckpt = chain["run"] / "best.pt"
    assert sha256(ckpt) in report and str(ckpt) in report
    assert json.dumps(metrics).count(sha256(ckpt)) >= 1
    assert isinstance(json.loads((chain["eval"] / "predictions.json").read_text()), list)
    for png in ("pr_curves.png", "confusion_matrix.png"):
        assert cv2.imread(str(chain["eval"] / png)) is not None, png


def test_video_jsonl_names_the_model_and_covers_every_frame(chain):
    lines = [json.loads(x) for x in chain["video"].with_suffix(".jsonl").read_text().splitlines()]
    header, frames = lines[0], lines[1:]
    ckpt = chain["run"] / "best.pt"
    assert sha256(ckpt) in json.dumps(header)
    assert [f["frame_index"] for f in frames] == [0, 1, 2, 3]
    cap = cv2.VideoCapture(str(chain["video"]))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 4


def test_compare_tables_the_run(chain, tmp_path):
    out = tmp_path / "compare.md"
    cli("pipeline.compare", str(chain["run"]), "--out", str(out))
    assert chain["run"].name in out.read_text()


def test_installed_command_dispatches_to_the_stages():
    exe = Path(sys.executable).with_name("warehouse-synth")
    r = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and all(s in r.stdout for s in ("render", "train", "eval", "video"))
    r = subprocess.run([str(exe), "eval", "--checkpoint", "nope.pt", "--data", "x", "--out", "y"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().startswith("error:") and len(r.stderr.strip().splitlines()) == 1
