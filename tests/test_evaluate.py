"""The evaluate and compare CLIs, the report writer, and resumable inference."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from helpers_coco import load_coco, save_coco

from pipeline import compare, evaluate
from pipeline.coco_eval import (
    ann_to_mask,
    confusion_matrix,
    evaluate_coco,
    ground_truth_from_dict,
    load_ground_truth,
)
from pipeline.common import CATEGORIES, UserError, config_to_dict, package_versions
from pipeline.detections import outputs_to_results
from pipeline.report import plot_confusion_matrix, plot_pr_curves, render_report, write_report
from pipeline.rle import encode as encode_mask
from pipeline.slices import evaluate_slices

ROOT = Path(__file__).resolve().parents[1]
FAST = ["device=cpu", "threads=1", "num_workers=0", "batch_size=2"]


def save_checkpoint(path: Path, categories=CATEGORIES, metrics: dict | None = None) -> Path:
    """A random-init checkpoint laid out as docs/DESIGN.md §7 "Run folder" (tiny input size, few detections)."""
    from pipeline.config import TrainConfig
    from pipeline.model import ModelConfig, build_model

    cfg = TrainConfig(model=ModelConfig(weights="none", min_size=64, max_size=128, box_detections_per_img=20))
    torch.manual_seed(0)
    model, init = build_model(cfg.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict(), "optimizer": None, "scheduler": None, "scaler": None,
                "step": 12, "rng": None, "config": config_to_dict(cfg), "categories": categories,
                "init": init, "versions": package_versions(), "metrics": metrics}, path)
    return path


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(tmp_path_factory.mktemp("run") / "demo_run" / "best.pt")


# ---------------------------------------------------------------- end to end

@pytest.mark.slow
def test_evaluate_end_to_end(checkpoint, coco_set_ro, tmp_path, capsys):
    out = tmp_path / "eval"
    assert evaluate.main(["--checkpoint", str(checkpoint), "--data", str(coco_set_ro), "--out", str(out),
                          *FAST, "num_best_worst=2"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert re.match(r"eval: 6 images, bbox AP \d\.\d{3}, segm AP \d\.\d{3}, .* s/img on cpu -> ", summary)

    metrics = json.loads((out / "metrics.json").read_text())
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert metrics["checkpoint"]["sha256"] == sha
    assert metrics["checkpoint"]["step"] == 12
    assert metrics["checkpoint"]["init"]["weights"] == "none"
    assert metrics["checkpoint"]["training"]["run"] == "demo_run"
    for t in ("bbox", "segm"):
        assert 0.0 <= metrics[t]["AP"] <= 1.0
        assert set(metrics[t]["per_class"]) == {"pedestrian", "pallet_jack"}
    assert metrics["timing"]["inference_s_per_image"] > 0 and metrics["timing"]["images"] == 6

    # slices reuse the predictions: every scorable instance (visibility 1.0 in this set) is in
    # the top band, the set has no camera records, sizes agree with the main COCOeval run
    sl = metrics["slices"]
    n_scorable = metrics["data"]["num_instances"]
    assert [x["num_gt"] for x in sl["visibility"]["slices"]] == [0, 0, n_scorable]
    assert sl["visibility"]["slices"][0]["AP"] is None
    assert sum(x["num_gt"] for x in sl["truncation"]["slices"]) == n_scorable
    assert [x["name"] for x in sl["size"]["slices"]] == ["small", "medium", "large"]
    assert sl["size"]["slices"][0]["AP"] == metrics["bbox"]["APs"]
    assert "skipped" in sl["camera"] and "skipped" in sl["camera_height"]

    # predictions.json: COCO results in image coordinates with RLE masks of the image size
    preds = json.loads((out / "predictions.json").read_text())
    assert len(preds) == metrics["num_predictions"]
    assert {p["image_id"] for p in preds} <= set(range(1, 7))
    for p in preds[:20]:
        assert set(p) == {"image_id", "category_id", "bbox", "score", "segmentation"}
        assert ann_to_mask(p, 96, 128).shape == (96, 128)

    # every ground-truth instance lands once in its confusion row (found, confused or missed)
    gt = load_ground_truth(coco_set_ro / "annotations.json")
    cm = np.array(metrics["confusion_matrix"]["matrix"])
    for c in CATEGORIES:
        n = sum(1 for a in gt.coco["annotations"] if a["category_id"] == c["id"] and not a["iscrowd"])
        assert cm[c["id"]].sum() == n
    assert sum(m["tp"] for m in metrics["per_image"]) == np.trace(cm[1:, 1:])
    # error types split each class's detections and misses as the confusion matrix counts them
    errors = metrics["error_types"]["per_class"]
    for c in CATEGORIES:
        e = errors[c["name"]]
        assert e["tp"] == cm[c["id"], c["id"]] and e["missed"] == cm[c["id"], 0]
        assert sum(e.values()) - e["missed"] == cm[:, c["id"]].sum()

    # report.md names the checkpoint and links plots that exist and are images
    report = (out / "report.md").read_text()
    assert str(checkpoint.resolve()) in report and sha in report
    assert "## Box AP by slice" in report and "| visibility (visible fraction) | [0.70, 1.00] | 6 |" in report
    e = errors["pedestrian"]
    assert "## Error types" in report and (f"| pedestrian | {e['tp']} | {e['class']} | {e['duplicate']} | "
                                           f"{e['localization']} | {e['background']} | {e['missed']} |") in report
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert {"pr_curves.png", "confusion_matrix.png", "best_worst.png"} <= set(links)
    for link in links:
        img = cv2.imread(str(out / link))
        assert img is not None and img.shape[0] > 50
    assert not (out / "parts").exists()  # batch files are gone once predictions.json is written
    assert (out / "config.yaml").read_text().startswith("device: cpu")
    assert metrics["mask_threshold"] == {"value": 0.5, "source": "default"}
    assert "- Masks: probability > 0.5 (default)" in report

    # a report-only change reuses predictions.json; a changed predictions.json is not trusted
    preds_text = (out / "predictions.json").read_text()
    assert evaluate.main(["--checkpoint", str(checkpoint), "--data", str(coco_set_ro), "--out", str(out),
                          *FAST, "num_best_worst=2", "score_threshold=0.05"]) == 0
    assert "note: reusing" in capsys.readouterr().out
    again = json.loads((out / "metrics.json").read_text())
    assert again["timing"]["reused_predictions"] and again["confusion_matrix"]["score_threshold"] == 0.05
    assert again["bbox"]["AP"] == metrics["bbox"]["AP"] and (out / "predictions.json").read_text() == preds_text
    (out / "predictions.json").write_text("[]")
    assert evaluate.main(["--checkpoint", str(checkpoint), "--data", str(coco_set_ro), "--out", str(out),
                          *FAST, "num_best_worst=2"]) == 0
    assert "note: reusing" not in capsys.readouterr().out
    assert (out / "predictions.json").read_text() == preds_text  # inference is deterministic on CPU

    # compare: this evaluation against a better copy of itself
    other = tmp_path / "other_run" / "eval" / "coco"
    shutil.copytree(out, other)
    m2 = json.loads((other / "metrics.json").read_text())
    m2["segm"]["AP"] = metrics["segm"]["AP"] + 0.1
    m2["checkpoint"]["training"].update(run="other_run", mode="features")
    (other / "metrics.json").write_text(json.dumps(m2))
    assert compare.main([str(out), str(tmp_path / "other_run"), "--out", str(tmp_path / "compare.md")]) == 0
    table = (tmp_path / "compare.md").read_text()
    winner = [line for line in table.splitlines() if line.startswith("| **winner**")]
    assert len(winner) == 1 and "other_run" in winner[0] and "feature extraction" in winner[0]
    assert "demo_run" in table and "fine-tuning" in table


def test_masks_at_the_threshold_training_chose(coco_set_ro, tmp_path):
    """A checkpoint whose validation chose 0.35 is scored at 0.35 unless mask_threshold is set;
    a changed threshold changes the predictions, so they are not reused."""
    ckpt = save_checkpoint(tmp_path / "run" / "best.pt", metrics={"segm": {"AP": 0.1, "mask_threshold": 0.35}})
    runs = {}
    for extra in ([], ["mask_threshold=0.6"]):
        out = tmp_path / f"eval{len(extra)}"
        assert evaluate.main(["--checkpoint", str(ckpt), "--data", str(coco_set_ro), "--out", str(out),
                              *FAST, "max_images=2", "num_best_worst=0", *extra]) == 0
        runs[len(extra)] = json.loads((out / "metrics.json").read_text())
    assert runs[0]["mask_threshold"] == {"value": 0.35, "source": "chosen on the validation set in training"}
    assert runs[1]["mask_threshold"] == {"value": 0.6, "source": "mask_threshold"}
    assert runs[0]["fingerprint"] != runs[1]["fingerprint"]


@pytest.mark.slow
def test_evaluate_foreign_box_only_set_through_class_map(checkpoint, coco_set, tmp_path, capsys):
    coco = load_coco(coco_set)
    coco["categories"] = [{"id": 1, "name": "person"}, {"id": 2, "name": "trolley"}]
    for a in coco["annotations"]:
        a.pop("segmentation")
    save_coco(coco_set, coco)
    out = tmp_path / "eval"
    assert evaluate.main(["--checkpoint", str(checkpoint), "--data", str(coco_set), "--out", str(out),
                          "--class-map", "person=pedestrian", *FAST]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "boxes only" in lines[0]
    assert re.match(r"eval: 6 images \(left out: trolley\), bbox AP \d\.\d{3}, \d", lines[-1])
    metrics = json.loads((out / "metrics.json").read_text())
    assert "segm" not in metrics and list(metrics["bbox"]["per_class"]) == ["pedestrian"]
    assert metrics["data"]["dropped_categories"] == ["trolley"]
    assert metrics["data"]["class_map"] == {"person": "pedestrian"}
    report = (out / "report.md").read_text()
    assert "**left out (not in the class map):** trolley" in report and "mask metrics skipped" in report


class _NoDetections:
    """Stands in for a model that finds nothing, so the CLI path runs without a network."""

    transform = type("T", (), {"min_size": (64,), "max_size": 128})()

    def __call__(self, images):
        return [{"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.int64),
                 "masks": torch.zeros(0, 1, *im.shape[1:])} for im in images]


def test_no_predictions_reports_ap_zero(coco_set_ro, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(evaluate, "model_from_checkpoint", lambda path, device: (_NoDetections(), {
        "step": 1, "config": {"model": {"mode": "features"}}, "init": None, "categories": CATEGORIES}))
    monkeypatch.setattr(evaluate, "sha256_file", lambda path: "0" * 64)
    out = tmp_path / "eval"
    assert evaluate.main(["--checkpoint", str(tmp_path / "fake.pt"), "--data", str(coco_set_ro),
                          "--out", str(out), *FAST]) == 0
    assert "bbox AP 0.000, segm AP 0.000" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["num_predictions"] == 0 and metrics["bbox"]["AP"] == 0.0 and metrics["segm"]["AP"] == 0.0
    assert json.loads((out / "predictions.json").read_text()) == []
    cm = np.array(metrics["confusion_matrix"]["matrix"])
    assert cm[:, 1:].sum() == 0 and cm[1:, 0].sum() == 7   # every instance missed
    assert "not recorded in the checkpoint" in (out / "report.md").read_text()


# ---------------------------------------------------------------- bad input

def test_wrong_checkpoint_classes_is_user_error(coco_set_ro, tmp_path):
    ckpt = tmp_path / "bad.pt"
    torch.save({"model": {}, "config": {"model": {}},
                "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}]}, ckpt)
    with pytest.raises(UserError, match="checkpoint classes .*person.* differ"):
        evaluate.main(["--checkpoint", str(ckpt), "--data", str(coco_set_ro), "--out", str(tmp_path / "o"), *FAST])


@pytest.mark.parametrize("edit, flags, message", [
    (lambda c: c.update(images=[], annotations=[]), [], "the set has no images"),
    (lambda c: c["categories"][0].update(name="person"), ["--class-map", "human=pedestrian"],
     r"class map names \['human'\]"),
    (lambda c: c["categories"][0].update(name="person"), ["--class-map", "person=forklift"],
     "'forklift' is not one of"),
    (lambda c: [cat.update(name=f"x{cat['id']}") for cat in c["categories"]], [],
     "no instances of .* to score .*x1"),
])
def test_bad_sets_are_user_errors(coco_set, tmp_path, edit, flags, message):
    coco = load_coco(coco_set)
    edit(coco)
    save_coco(coco_set, coco)
    with pytest.raises(UserError, match=message):
        evaluate.main(["--checkpoint", str(tmp_path / "never_read.pt"), "--data", str(coco_set),
                       "--out", str(tmp_path / "o"), *flags, *FAST])


@pytest.mark.slow
def test_cli_error_is_one_line(tmp_path, coco_set_ro):
    r = subprocess.run([sys.executable, "-m", "pipeline.evaluate", "--checkpoint", str(tmp_path / "nope.pt"),
                        "--data", str(coco_set_ro), "--out", str(tmp_path / "o"), "device=cpu"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {tmp_path / 'nope.pt'}: checkpoint not found"
    with pytest.raises(UserError, match="unknown key 'batch_sise'; did you mean 'batch_size'"):
        evaluate.main(["--checkpoint", "x", "--data", str(coco_set_ro), "--out", str(tmp_path / "o"),
                       "batch_sise=2"])


def test_missing_image_file_is_user_error(checkpoint, coco_set, tmp_path):
    (coco_set / "images" / "000002.png").unlink()
    with pytest.raises(UserError, match="1 images of the set are missing .*000002.png"):
        evaluate.main(["--checkpoint", str(checkpoint), "--data", str(coco_set), "--out", str(tmp_path / "o"),
                       *FAST])


# ---------------------------------------------------------------- pieces

def test_outputs_to_results_converts_boxes_labels_masks():
    masks = torch.zeros(2, 1, 10, 12)
    masks[0, 0, 2:5, 3:7] = 0.9
    masks[1, 0, 0:2, 0:2] = 0.4  # below the mask threshold: empty mask
    out = {"boxes": torch.tensor([[3.0, 2.0, 7.0, 5.0], [0.0, 0.0, 2.0, 2.0]]),
           "scores": torch.tensor([0.8, 0.3]), "labels": torch.tensor([2, 1]), "masks": masks}
    r = outputs_to_results(out, torch.tensor(5))
    assert [p["category_id"] for p in r] == [2, 1] and r[0]["image_id"] == 5
    assert r[0]["bbox"] == [3.0, 2.0, 4.0, 3.0] and r[0]["score"] == 0.8
    m = ann_to_mask(r[0], 10, 12)
    assert m.sum() == 12 and m[2:5, 3:7].all()
    assert ann_to_mask(r[1], 10, 12).sum() == 0
    json.dumps(r)  # JSON-safe (RLE counts as str)


class FakeModel:
    """Returns one fixed detection per image and counts calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        outs = []
        for im in images:
            h, w = im.shape[1:]
            masks = torch.zeros(1, 1, h, w)
            masks[0, 0, 10:30, 10:20] = 1
            outs.append({"boxes": torch.tensor([[10.0, 10.0, 20.0, 30.0]]), "scores": torch.tensor([0.9]),
                         "labels": torch.tensor([1]), "masks": masks})
        return outs


def test_run_inference_resumes_from_saved_batches(coco_set_ro, tmp_path):
    gt = load_ground_truth(coco_set_ro / "annotations.json")
    cfg = evaluate.EvalConfig(batch_size=4, num_workers=0)
    parts = tmp_path / "parts"
    model = FakeModel()
    res, _, n_run = evaluate.run_inference(model, gt, coco_set_ro / "images", cfg, torch.device("cpu"), parts, "k1")
    assert (model.calls, n_run, len(res)) == (2, 6, 6)
    assert sorted(p.name for p in parts.iterdir()) == ["batch_000000.json", "batch_000001.json"]
    # same key: nothing to run; a damaged batch file and a new key each cost a rerun
    again, _, n_run = evaluate.run_inference(model, gt, coco_set_ro / "images", cfg, torch.device("cpu"), parts, "k1")
    assert (model.calls, n_run) == (2, 0) and again == res
    (parts / "batch_000001.json").write_text("{trunc")
    _, _, n_run = evaluate.run_inference(model, gt, coco_set_ro / "images", cfg, torch.device("cpu"), parts, "k1")
    assert (model.calls, n_run) == (3, 2)
    _, _, n_run = evaluate.run_inference(model, gt, coco_set_ro / "images", cfg, torch.device("cpu"), parts, "k2")
    assert (model.calls, n_run) == (5, 6)


def _metrics_for_report(tmp_path: Path, dropped: bool = False) -> tuple[dict, dict]:
    h, w = 40, 60
    m = np.zeros((h, w), np.uint8)
    m[5:25, 5:25] = 1
    coco = {"images": [{"id": 1, "file_name": "a.png", "width": w, "height": h}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [5, 5, 20, 20], "area": 400,
                             "iscrowd": 0, "segmentation": encode_mask(m)}],
            "categories": [{"id": 3, "name": "person"}, {"id": 4, "name": "dog"}]}
    gt = ground_truth_from_dict(coco, {"person": "pedestrian"})
    preds = [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.9,
              "segmentation": encode_mask(m)}]
    scored = evaluate_coco(gt, preds)
    cm, _ = confusion_matrix(gt, preds)
    plots = {"pr_curves": plot_pr_curves(scored, tmp_path / "pr_curves.png").name,
             "confusion_matrix": plot_confusion_matrix(cm, tmp_path / "confusion_matrix.png").name}
    metrics = {"checkpoint": {"path": "/runs/x/best.pt", "sha256": "ab" * 32, "step": 5,
                              "init": {"weights": "auto", "pretrained": False, "source": "random (offline)"},
                              "training": {"run": "x", "mode": "finetune"}, "config": {"model": {"mode": "finetune"}}},
               "data": {"path": "/data/real", "num_images": 1, "num_instances": 1, "num_crowd": 0,
                        "class_map": {"person": "pedestrian"}, "dropped_categories": gt.dropped_categories,
                        "scored_categories": ["pedestrian"], "has_masks": True},
               "timing": {"device": "cpu", "device_name": "cpu", "inference_s_per_image": 0.5},
               "score_threshold": 0.5, "num_predictions": 1,
               **{t: r.to_json() for t, r in scored.items()},
               "confusion_matrix": {"labels": ["background", "pedestrian", "pallet_jack"], "matrix": cm.tolist(),
                                    "iou_threshold": 0.5, "score_threshold": 0.5}}
    return metrics, plots


def test_report_from_metrics(tmp_path):
    metrics, plots = _metrics_for_report(tmp_path)
    path = write_report(tmp_path, metrics, plots)
    text = path.read_text()
    assert "`/runs/x/best.pt`" in text and "ab" * 32 in text
    assert "random (offline)" in text                                 # how the model was initialised
    assert "**left out (not in the class map):** dog" in text         # unmapped category reported
    assert "person -> pedestrian" in text
    assert "0.5000 s/image" in text
    assert re.search(r"\| pedestrian \| 1\.000 \| 1\.000 \| 1\.000 \| 1\.000 \| 0\.900 \| 1\.000", text)
    assert "| AP large | n/a | n/a |" in text
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert cv2.imread(str(tmp_path / link)) is not None
    # the markdown is a pure function of metrics.json content: it survives a JSON round trip
    assert render_report(json.loads(json.dumps(metrics)), plots) == text


def _write_metrics(path: Path, run: str, dataset: str, ap: float, mode: str = "finetune", every: int = 0,
                   segm: bool = True) -> None:
    m = {"checkpoint": {"step": 100, "init": {"weights": "auto", "pretrained": True},
                        "training": {"run": run, "mode": mode, "trainable_stages": 3, "unfreeze_every": every}},
         "data": {"path": f"/data/{dataset}"},
         "bbox": {"AP": ap / 2, "AP50": ap, "per_class": {"pedestrian": ap / 2, "pallet_jack": None}},
         "timing": {"inference_s_per_image": 0.25, "device": "cuda"}}
    if segm:
        m["segm"] = {"AP": ap, "per_class": {"pedestrian": ap, "pallet_jack": 0.0}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(m))


def test_compare_marks_the_winner_per_dataset(tmp_path, capsys):
    runs = tmp_path / "runs"
    _write_metrics(runs / "feat" / "eval" / "test" / "metrics.json", "feat", "test", 0.30, "features")
    _write_metrics(runs / "ft" / "eval" / "test" / "metrics.json", "ft", "test", 0.45)
    _write_metrics(runs / "grad" / "eval" / "test" / "metrics.json", "grad", "test", 0.40, every=500)
    _write_metrics(runs / "grad" / "eval" / "real" / "metrics.json", "grad", "real", 0.20, every=500)
    (runs / "untrained").mkdir()
    assert compare.main([str(runs / "feat"), str(runs), "--out", str(tmp_path / "c.md")]) == 0
    out = capsys.readouterr().out
    assert f"note: {runs}" not in out
    rows = [line for line in (tmp_path / "c.md").read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 5  # header + 4 evaluations (feat once, though named twice)
    winners = [r for r in rows if r.startswith("| **winner**")]
    assert len(winners) == 1 and "**ft**" in winners[0]          # only one eval on 'real': no winner there
    assert any("gradual unfreezing" in r and "3 +1 every 500 steps" in r for r in rows)
    assert any("feature extraction" in r and "0 (frozen backbone)" in r for r in rows)
    assert "compare: 4 evaluations, best: ft on test (0.450)" in out
    with pytest.raises(UserError, match="no evaluations found"):
        compare.main([str(runs / "untrained")])
    with pytest.raises(UserError, match="not found"):
        compare.main([str(tmp_path / "missing")])


def test_coco_results_map_model_labels_to_category_ids(monkeypatch):
    import numpy as np

    from pipeline import detections
    from pipeline.detections import Detections, to_coco_results

    dets = Detections(boxes=np.array([[1, 2, 5, 8], [0, 0, 3, 3]], np.float32),
                      scores=np.array([0.9, 0.123456], np.float32), labels=np.array([2, 1]))
    assert [r["category_id"] for r in to_coco_results(dets, 3)] == [c["id"] for c in CATEGORIES[::-1]]
    # a label is an index into the model's head, not an id: another id scheme must be honoured
    monkeypatch.setattr(detections, "CATEGORY_OF_LABEL", {1: 17, 2: 42})
    r = to_coco_results(dets, 3)
    assert [p["category_id"] for p in r] == [42, 17]
    assert r[0]["bbox"] == [1.0, 2.0, 4.0, 6.0] and r[1]["score"] == 0.12346 and "segmentation" not in r[0]
    with pytest.raises(ValueError, match="2 labels for 1 boxes"):
        Detections(boxes=dets.boxes[:1], scores=dets.scores[:1], labels=dets.labels)


def test_report_slice_table(tmp_path):
    metrics, plots = _metrics_for_report(tmp_path)
    gt = ground_truth_from_dict({
        "images": [{"id": 1, "file_name": "a.png", "width": 60, "height": 40},
                   {"id": 2, "file_name": "b.png", "width": 60, "height": 40}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "area": 400,
                         "iscrowd": 0, "visibility": 0.9, "truncated": False},
                        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [30, 5, 20, 20], "area": 400,
                         "iscrowd": 0, "visibility": 0.2, "truncated": True}],
        "categories": [{"id": 1, "name": "pedestrian"}]})
    preds = [{"image_id": 1, "category_id": 1, "bbox": [5, 5, 20, 20], "score": 0.9}]
    bbox = evaluate_coco(gt, preds, ("bbox",))["bbox"]
    metrics["slices"] = evaluate_slices(gt, preds, bbox, {1: {"camera": "cctv"}, 2: {"camera": "robot"}},
                                        "image records")
    text = render_report(json.loads(json.dumps(metrics)), plots)
    assert "## Box AP by slice" in text
    # the found instance's band and camera score 1, the missed one's 0; counts per slice
    assert "| visibility (visible fraction) | [0.70, 1.00] | 2 | 1 | 1.000 | 1.000 | 1.000 | 1.000 | 1 |" in text
    assert "| visibility (visible fraction) | [0.15, 0.40) | 2 | 1 | 0.000 | 0.000 | 0.000 | 0.000 | 1 |" in text
    assert "| visibility (visible fraction) | [0.40, 0.70) | 2 | 0 | n/a | n/a | n/a | n/a | 0 |" in text
    assert "| truncated at the border | truncated | 2 | 1 | 0.000 |" in text
    assert "| object size (COCO) | small | 2 | 2 | 0.505 |" in text   # recall 1/2 at precision 1: 51/101
    assert "| camera kind | cctv | 1 | 1 | 1.000 |" in text and "| camera kind | robot | 1 | 1 | 0.000 |" in text
    assert "unmatched ones are false positives in every slice" in text
    assert "camera height: not sliced, no image record carries 'camera_height_m'." in text
    # a report without slices (an older metrics.json) has no slice section
    del metrics["slices"]
    assert "Box AP by slice" not in render_report(metrics, plots)


def test_visibility_bands_must_ascend():
    assert evaluate.EvalConfig().visibility_bands == [0.15, 0.4, 0.7, 1.0]
    assert evaluate.EvalConfig(visibility_bands=[0.0, 0.5, 1.0]).visibility_bands == [0.0, 0.5, 1.0]
    for bad in ([0.4, 0.15, 1.0], [0.5, 0.5], [0.5]):
        with pytest.raises(ValueError):
            evaluate.EvalConfig(visibility_bands=bad)
