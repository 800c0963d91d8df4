"""DDP resume: 2 gloo processes (torchrun) stopped at step 2 and resumed reproduce the
uninterrupted 2-process run, loss for loss and weight for weight."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers_coco import make_coco_set
from test_train import records, write_config

from pipeline.model import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "pipeline.train", *args], capture_output=True, text=True, env=env, timeout=400,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_ddp_resume_reproduces_the_uninterrupted_run(tmp_path):
    data = make_coco_set(tmp_path / "data", num_images=4, seed=3)
    # augmentation and a worker on: the resumed ranks must find their place in the sample stream
    cfg = write_config(tmp_path / "cfg.yaml", augment={"strength": 0.7}, data={"workers": 1})
    base = ["--config", str(cfg), "--data", str(data)]
    torchrun(*base, "--out", str(tmp_path / "a"), "--max-iters", "4")
    torchrun(*base, "--out", str(tmp_path / "b"), "--max-iters", "2")  # the job ends (preempted) at step 2
    assert load_checkpoint(tmp_path / "b" / "last.pt")["step"] == 2
    out = torchrun(*base, "--out", str(tmp_path / "b"), "--max-iters", "4", "--resume")
    assert "2 process(es)" in out.stdout

    a, b = records(tmp_path / "a"), records(tmp_path / "b")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b, strict=True):
        assert rb["loss"] == pytest.approx(ra["loss"], rel=1e-5, abs=1e-6), (ra, rb)
    ca, cb = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(tmp_path / "b" / "last.pt")
    assert ca["step"] == cb["step"] == 4 and len(cb["rng"]) == 2
    assert all(torch.allclose(ca["model"][k].float(), cb["model"][k].float(), atol=1e-6) for k in ca["model"])
