"""bench/device_check.sh --cpu: every part (render, train at batch 2 and 8, video) runs on the
CPU and the script prints one JSON object with figures and targets (values are not judged
here: speed is read from the JSON, never asserted)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.blender
def test_device_check_runs_on_the_cpu_and_prints_json():
    proc = subprocess.run(["bash", "bench/device_check.sh", "--cpu"], capture_output=True, text=True,
                          cwd=ROOT, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    result = json.loads(proc.stdout)
    assert (result["mode"], result["errors"]) == ("cpu", [])
    render = result["render"]["device"]
    assert render["backend"] == "cpu"
    assert render["quality_s_per_frame"] > render["quality_render_s"] > 0 and render["fast_s_per_frame"] > 0
    for batch in ("batch_2", "batch_8"):
        row = result["train"][batch]
        assert row["s_per_it_memory"] > 0 and row["overhead_ratio"] > 0 and row["peak_gpu_mb"] is None
    assert result["video"]["end_to_end_fps"] > 0 and result["video"]["predictor"] == "torch cpu"
    check = result["checks"]["render_fast_s_per_frame"]
    assert check["target"] == 1.6 and check["value"] == render["fast_s_per_frame"]
    assert isinstance(check["met"], bool)


def test_without_a_gpu_the_gpu_check_says_to_pass_cpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the GPU check would run")
    proc = subprocess.run(["bash", "bench/device_check.sh"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1] == ("error: --cpu not given but torch sees no CUDA GPU; "
                                                    "expected a GPU machine, or pass --cpu")
