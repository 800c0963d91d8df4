"""render.device: the choice rule (pure), the CPU fallback in real Blender, and the same seed
giving the same annotations on every device."""

from __future__ import annotations

import json

import pytest
import yaml

from blender.render_device import choose_device
from pipeline.common import UserError

NVIDIA = {"optix": ["NVIDIA H200"], "cuda": ["NVIDIA H200"], "hip": [], "metal": []}


def test_auto_prefers_optix_then_cuda_hip_metal_and_uses_every_gpu():
    assert choose_device("auto", NVIDIA).backend == "optix"
    two = choose_device("auto", {"cuda": ["A", "B"]})
    assert (two.backend, two.names) == ("cuda", ("A", "B")) and "2 GPUs: A, B" in two.log_line()
    assert choose_device("auto", {"hip": ["W7900"], "metal": ["M2"]}).backend == "hip"
    assert choose_device("cuda", NVIDIA).manifest() == {"requested": "cuda", "backend": "cuda",
                                                         "devices": ["NVIDIA H200"]}


def test_auto_without_gpu_is_the_cpu_and_says_why():
    choice = choose_device("auto", {"optix": [], "cuda": []})
    assert not choice.is_gpu and choice.names == ("CPU",)
    assert choice.log_line() == "render: device auto -> cpu (Cycles reports no GPU)"
    assert choose_device("cpu", NVIDIA).backend == "cpu"  # asked for by name: no GPU probing wins


def test_a_backend_that_is_not_there_is_a_one_line_error():
    with pytest.raises(UserError, match=r"render.device: 'optix' asked for but Cycles finds no OPTIX device "
                                        r"\(Cycles reports no GPU here\); expected auto or cpu"):
        choose_device("optix", {})
    with pytest.raises(UserError, match="Cycles reports: cuda"):
        choose_device("hip", {"cuda": ["X"]})
    with pytest.raises(UserError, match="render.device: 'vulkan'; expected one of auto, cpu, optix"):
        choose_device("vulkan", {})


def test_device_is_a_config_key_outside_the_hash():
    from blender.job_config import RenderJobConfig, config_hash
    from pipeline.common import config_to_dict

    auto, cpu = RenderJobConfig(), RenderJobConfig(render={"device": "cpu"})
    assert auto.render.device == "auto"
    assert config_hash(config_to_dict(auto)) == config_hash(config_to_dict(cpu))
    with pytest.raises(ValueError, match="device"):
        RenderJobConfig(render={"device": "gpu"})


# ---------------------------------------------------------------- real Blender

def _tiny(tmp_path, **render):
    p = tmp_path / f"tiny_{len(list(tmp_path.iterdir()))}.yaml"
    p.write_text(yaml.safe_dump({
        "dataset": {"name": "tiny", "num_images": 2, "seed": 5},
        "render": {"preset": "fast", "resolution": [80, 60], "samples": 1, "threads": 2, **render},
        "scene": {"pedestrians": {"count": [0, 0]}, "pallet_jacks": {"pushed_prob": 0.0, "count": [2, 3]}},
    }))
    return p


@pytest.mark.blender
def test_no_gpu_falls_back_to_cpu_with_one_log_line_and_the_manifest_says_so(tmp_path, monkeypatch, capsys):
    pytest.importorskip("bpy")
    from blender import cycles, render

    monkeypatch.setattr(cycles, "gpu_devices", lambda: {})  # a machine without GPU, wherever this runs
    auto, cpu = tmp_path / "auto", tmp_path / "cpu"
    assert render.main(["--config", str(_tiny(tmp_path)), "--out", str(auto)]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("render: device")]
    assert lines == ["render: device auto -> cpu (Cycles reports no GPU)"], err
    manifest = json.loads((auto / "manifest.json").read_text())
    assert manifest["device"] == {"requested": "auto", "backend": "cpu", "devices": ["CPU"]}
    assert json.loads((auto / "parts" / "000001.json").read_text())["meta"]["device"] == "cpu"
    # auto on a CPU-only machine is byte for byte what render.device=cpu gives
    assert render.main(["--config", str(_tiny(tmp_path, device="cpu")), "--out", str(cpu)]) == 0
    for name in ("annotations.json", "images/000000.png", "images/000001.png"):
        assert (auto / name).read_bytes() == (cpu / name).read_bytes(), name


@pytest.mark.blender
def test_a_missing_gpu_backend_stops_before_claiming_the_folder(tmp_path, monkeypatch):
    pytest.importorskip("bpy")
    from blender import cycles, render

    monkeypatch.setattr(cycles, "gpu_devices", lambda: {})
    with pytest.raises(UserError, match="render.device: 'cuda' asked for"):
        render.main(["--config", str(_tiny(tmp_path, device="cuda")), "--out", str(tmp_path / "ds")])
    assert not (tmp_path / "ds" / "manifest.json").exists()


def _gpus() -> dict:
    try:
        from blender import cycles
    except ImportError:
        return {}
    return {b: n for b, n in cycles.gpu_devices().items() if n}


@pytest.mark.blender
@pytest.mark.skipif(not _gpus(), reason="Cycles reports no GPU on this machine (CPU-vs-GPU masks need one)")
def test_same_seed_same_annotations_on_cpu_and_gpu(tmp_path):
    from blender import render

    cpu, gpu = tmp_path / "cpu", tmp_path / "gpu"
    assert render.main(["--config", str(_tiny(tmp_path, device="cpu")), "--out", str(cpu)]) == 0
    assert render.main(["--config", str(_tiny(tmp_path, device="auto")), "--out", str(gpu)]) == 0
    assert json.loads((gpu / "manifest.json").read_text())["device"]["backend"] != "cpu"
    # the object-index pass is exact on every device: masks, boxes, visibility identical
    assert (gpu / "annotations.json").read_bytes() == (cpu / "annotations.json").read_bytes()
