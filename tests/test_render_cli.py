"""blender.render CLI: resume, shards, merge, config errors.

The frame function is swapped for a deterministic numpy one (same contract as the Blender
one: everything derived from the image's own rng), so these tests exercise the writer,
resume and shard logic in milliseconds; test_render_blender covers the real engine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from blender import render, writer
from blender.annotate import InstanceGeometry, annotate
from blender.frames import image_rngs
from pipeline.common import UserError

P_IDENTITY = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])


def fake_factory(calls: list[int], fail_at: int | None = None):
    def factory(cfg):
        w, h = cfg.render.resolution

        def frame(index):
            if index == fail_at:
                raise KeyboardInterrupt  # the process dies mid-frame
            calls.append(index)
            rng, _, _ = image_rngs(cfg.dataset.seed, index)
            index_map = np.zeros((h, w), np.int32)
            geoms = []
            for k in range(int(rng.integers(0, 4))):
                x0, y0 = int(rng.integers(0, w - 8)), int(rng.integers(0, h - 8))
                x1, y1 = x0 + int(rng.integers(4, 12)), y0 + int(rng.integers(4, 12))
                index_map[y0:y1, x0:x1] = k + 1
                v = np.array([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]], float)
                geoms.append(InstanceGeometry(k + 1, 1 + k % 2, v, np.array([[0, 1, 2], [0, 2, 3]])))
            anns = annotate(index_map, geoms, P_IDENTITY, cfg.annotation.min_visibility, cfg.annotation.min_area)
            rgb = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            return rgb, {"negative": not anns}, anns, {"seconds": {"render": 0.0}}

        return frame, lambda: None

    return factory


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    p = tmp_path / "render.yaml"
    p.write_text(yaml.safe_dump({"dataset": {"name": "t", "num_images": 5, "seed": 3},
                                 "render": {"preset": "fast", "resolution": [32, 24]},
                                 "annotation": {"min_area": 10}}))
    return p


def run(cfg_file, out, *extra, calls=None, fail_at=None):
    calls = [] if calls is None else calls
    code = render.main(["--config", str(cfg_file), "--out", str(out), *extra],
                       frame_factory=fake_factory(calls, fail_at))
    assert code == 0
    return calls


def test_full_run_writes_coco_manifest_and_config(cfg_file, tmp_path, capsys):
    out = tmp_path / "ds"
    assert run(cfg_file, out) == [0, 1, 2, 3, 4]
    coco = json.loads((out / "annotations.json").read_text())
    assert [im["id"] for im in coco["images"]] == [1, 2, 3, 4, 5]
    assert [im["file_name"] for im in coco["images"]] == [f"{i:06d}.png" for i in range(5)]
    assert [a["id"] for a in coco["annotations"]] == list(range(1, len(coco["annotations"]) + 1))
    assert [c["name"] for c in coco["categories"]] == ["pedestrian", "pallet_jack"]
    assert all((out / "images" / im["file_name"]).is_file() for im in coco["images"])
    man = json.loads((out / "manifest.json").read_text())
    assert man["complete"] is True and man["seed"] == 3 and man["num_images"] == 5
    assert man["config"]["render"]["samples"] == 1  # the fast preset, resolved
    assert "numpy" in man["versions"]
    assert yaml.safe_load((out / "config.yaml").read_text())["dataset"]["seed"] == 3
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("render: 5 rendered") and "annotations.json holds 5 images" in last


def test_resume_renders_only_missing_images_and_gives_the_same_file(cfg_file, tmp_path):
    out = tmp_path / "ds"
    run(cfg_file, out)
    before = (out / "annotations.json").read_bytes()
    (out / "annotations.json").unlink()
    writer.part_path(out, 2).unlink()
    assert run(cfg_file, out) == [2]
    assert (out / "annotations.json").read_bytes() == before


def test_interrupted_run_resumes_to_identical_output(cfg_file, tmp_path):
    ref = tmp_path / "ref"
    run(cfg_file, ref)
    out = tmp_path / "ds"
    with pytest.raises(KeyboardInterrupt):
        run(cfg_file, out, fail_at=3)
    assert writer.done_indices(out) == {0, 1, 2}
    assert not (out / "annotations.json").exists()
    assert run(cfg_file, out) == [3, 4]
    assert (out / "annotations.json").read_bytes() == (ref / "annotations.json").read_bytes()
    assert (out / "images" / "000004.png").read_bytes() == (ref / "images" / "000004.png").read_bytes()


def test_shards_merge_to_the_single_machine_result(cfg_file, tmp_path, capsys):
    single = tmp_path / "single"
    run(cfg_file, single)
    out = tmp_path / "sharded"
    assert run(cfg_file, out, "--shard", "2/3") == [1, 4]
    assert not (out / "annotations.json").exists()
    assert "still missing" in capsys.readouterr().out
    with pytest.raises(UserError, match="not rendered yet"):
        render.main(["--config", str(cfg_file), "--out", str(out), "--merge-only"])
    assert run(cfg_file, out, "--shard", "1/3") == [0, 3]
    assert run(cfg_file, out, "--shard", "3/3") == [2]  # the last shard merges
    assert (out / "annotations.json").read_bytes() == (single / "annotations.json").read_bytes()
    (out / "annotations.json").unlink()
    assert run(cfg_file, out, "--merge-only") == []
    assert (out / "annotations.json").read_bytes() == (single / "annotations.json").read_bytes()
    # --no-merge: the last shard leaves the merge to --merge-only (what --jobs does)
    nomerge = tmp_path / "nomerge"
    for k in (1, 2, 3):
        run(cfg_file, nomerge, "--shard", f"{k}/3", "--no-merge")
    assert not (nomerge / "annotations.json").exists() and "merge with --merge-only" in capsys.readouterr().out
    assert run(cfg_file, nomerge, "--merge-only") == []
    assert (nomerge / "annotations.json").read_bytes() == (single / "annotations.json").read_bytes()


def test_shard_auto_renders_each_array_tasks_slice_and_the_last_one_merges(cfg_file, tmp_path, monkeypatch):
    single, out = tmp_path / "single", tmp_path / "array"
    run(cfg_file, single)
    for task, expected in ((2, [1, 4]), (1, [0, 3])):  # sbatch --array=1-3
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
        monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "1")
        assert run(cfg_file, out, "--shard", "auto") == expected
    for var in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"):
        monkeypatch.delenv(var)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "2")  # the same dataset finished by a Kubernetes index
    monkeypatch.setenv("JOB_COMPLETIONS", "3")
    assert run(cfg_file, out, "--shard", "auto") == [2]
    assert (out / "annotations.json").read_bytes() == (single / "annotations.json").read_bytes()
    assert json.loads((out / "manifest.json").read_text())["shard"] == "3/3"


def test_growing_the_dataset_keeps_the_first_images(cfg_file, tmp_path):
    out = tmp_path / "ds"
    run(cfg_file, out, "--num-images", "3")
    assert run(cfg_file, out, "--num-images", "5") == [3, 4]
    full = tmp_path / "full"
    run(cfg_file, full)
    assert (out / "annotations.json").read_bytes() == (full / "annotations.json").read_bytes()


def test_different_config_in_the_same_folder_is_refused(cfg_file, tmp_path):
    out = tmp_path / "ds"
    run(cfg_file, out, "--num-images", "2")
    manifest = (out / "manifest.json").read_bytes()
    with pytest.raises(UserError, match="different config"):
        run(cfg_file, out, "--num-images", "2", "--seed", "4")
    with pytest.raises(UserError, match="different config"):
        run(cfg_file, out, "--num-images", "2", "annotation.min_area=5")
    assert (out / "manifest.json").read_bytes() == manifest
    run(cfg_file, out, "--num-images", "2", "render.threads=1")  # threads do not change images


def test_folder_with_foreign_dataset_files_is_refused(cfg_file, tmp_path):
    out = tmp_path / "ds"
    (out / "parts").mkdir(parents=True)
    with pytest.raises(UserError, match="no manifest.json"):
        run(cfg_file, out)


@pytest.mark.parametrize("override,message", [
    ("render.samplse=4", "unknown key 'render.samplse'; did you mean 'samples'?"),
    ("render.samples=many", "render.samples"),
    ("render.preset=best", "render.preset"),
    ("dataset.num_images=0", "dataset.num_images"),
    ("scene.pedestrians.count=[5,2]", "low end is above high end"),
    ("render.diffuse_bounces=9", "must be <= max_bounces"),
    ("render.resolution=[8,8]", "resolution"),
])
def test_config_errors_are_one_line_user_errors(cfg_file, tmp_path, override, message):
    with pytest.raises(UserError) as e:
        run(cfg_file, tmp_path / "ds", override)
    text = str(e.value)
    assert message in text and "\n" not in text
    assert text.startswith(f"command-line override {override!r}: "), text  # the value came from there
    assert not (tmp_path / "ds").exists()


def test_bad_flags_and_unwritable_out(cfg_file, tmp_path):
    with pytest.raises(UserError, match="--shard"):
        run(cfg_file, tmp_path / "a", "--shard", "4/3")
    with pytest.raises(UserError, match="--shard"):
        run(cfg_file, tmp_path / "a", "--shard", "x")
    with pytest.raises(UserError, match="--jobs 0: expected a number of processes >= 1"):
        run(cfg_file, tmp_path / "a", "--jobs", "0")
    with pytest.raises(UserError, match="--jobs 2 renders every shard itself"):
        run(cfg_file, tmp_path / "a", "--jobs", "2", "--shard", "1/2")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot create output folder"):
        run(cfg_file, blocker / "ds")
    with pytest.raises(UserError, match="config file not found"):
        render.main(["--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "b")])


def test_cli_exit_code_and_one_line_error(cfg_file, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "blender.render", "--config", str(cfg_file),
                           "--out", str(tmp_path / "ds"), "render.samplse=4"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: command-line override 'render.samplse=4': unknown key 'render.samplse'; did you mean 'samples'?"]


def test_preview_of_a_rendered_dataset(cfg_file, tmp_path, capsys):
    from pipeline import preview

    out = tmp_path / "ds"
    run(cfg_file, out, "--num-images", "6")
    coco = json.loads((out / "annotations.json").read_text())
    assert preview.main(["--data", str(out), "--out", str(tmp_path / "pv"), "--num", "4"]) == 0
    for name in ("contact_sheet.png", "stats.json", "stats.md", "stats.png"):
        assert (tmp_path / "pv" / name).stat().st_size > 0
    stats = json.loads((tmp_path / "pv" / "stats.json").read_text())
    assert stats["images"] == 6
    n_ped = sum(1 for a in coco["annotations"] if a["category_id"] == 1 and not a["iscrowd"])
    assert stats["per_class"]["pedestrian"]["instances"] == n_ped
    assert sum(stats["per_class"]["pedestrian"]["visibility_hist"]) == sum(
        1 for a in coco["annotations"] if a["category_id"] == 1)
    assert sum(stats["instances_per_image"].values()) == 6
    assert "preview: 6 images" in capsys.readouterr().out
    with pytest.raises(UserError, match="annotations.json"):
        preview.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "pv2")])


def test_config_hash_ignores_scene_keys_added_later_while_at_their_defaults():
    import copy

    from blender.job_config import RenderJobConfig, config_hash
    from pipeline.common import config_to_dict

    resolved = config_to_dict(RenderJobConfig())
    before = copy.deepcopy(resolved)  # a config from before these keys existed
    for section, key in (("layout", "dock_door_width"), ("layout", "dock_door_height"),
                         ("pallet_jacks", "platform_prob"), ("pallet_jacks", "fork_length"),
                         ("pallet_jacks", "load_height")):
        del before["scene"][section][key]
    assert config_hash(resolved) == config_hash(before)
    changed = copy.deepcopy(resolved)
    changed["scene"]["pallet_jacks"]["fork_length"] = [1.1, 1.3]
    assert config_hash(changed) != config_hash(resolved)
