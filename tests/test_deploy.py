"""deploy/: each file parses and runs the command it claims, and the render array runs end to end
through a real SLURM (deploy/slurm/local_cluster.sh; .ci/run starts it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_render_cli import fake_factory

from blender import render
from pipeline import train

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def bash_syntax(path: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


SCRIPT_INPUTS = {"ARGS", "CONFIG", "OUT", "RUN", "DATA", "PY", "GPUS_PER_NODE", "MASTER_PORT"}


def traced_commands(script: Path, tmp_path: Path, env: dict) -> list[list[str]]:
    """Run a batch script with `srun`, `scontrol` and the python it starts replaced by shims
    that log their argv: the commands it would run, after the shell expanded them."""
    bin_dir, log = tmp_path / "shims", tmp_path / "argv.jsonl"
    bin_dir.mkdir(exist_ok=True)
    shim = f"#!{sys.executable}\nimport json, sys\nopen({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
    for name in ("srun", "python"):
        (bin_dir / name).write_text(shim)
        (bin_dir / name).chmod(0o755)
    (bin_dir / "scontrol").write_text("#!/bin/sh\necho node1\necho node2\n")
    (bin_dir / "scontrol").chmod(0o755)
    # the scripts' own inputs come only from `env`: make exports ARGS (e.g. make test ARGS="-q")
    inherited = {k: v for k, v in os.environ.items() if k not in SCRIPT_INPUTS and not k.startswith("SLURM_")}
    full_env = {**inherited, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PY": str(bin_dir / "python"),
                "SLURM_SUBMIT_DIR": str(ROOT), **env}
    proc = subprocess.run(["bash", str(script)], env=full_env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_slurm_render_and_merge_scripts_run_the_render_cli(tmp_path):
    for name in ("render.sbatch", "merge.sbatch", "train.sbatch", "local_cluster.sh"):
        bash_syntax(DEPLOY / "slurm" / name)
    env = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_CPUS_PER_TASK": "8", "OUT": str(tmp_path / "ds"),
           "ARGS": "render.preset=fast --num-images 40"}
    (argv,) = traced_commands(DEPLOY / "slurm" / "render.sbatch", tmp_path, env)
    assert argv[:2] == ["-m", "blender.render"]
    args = render.parse_args(argv[2:])
    assert (args.shard, args.out, args.num_images) == ("auto", str(tmp_path / "ds"), 40)
    assert args.overrides == ["render.threads=8", "render.preset=fast"]
    assert (ROOT / args.config).is_file()
    (tmp_path / "argv.jsonl").unlink()
    (argv,) = traced_commands(DEPLOY / "slurm" / "merge.sbatch", tmp_path, {})
    assert render.parse_args(argv[2:]).merge_only


def test_slurm_train_script_starts_torchrun_on_every_node_with_resume(tmp_path):
    from torch.distributed.run import get_args_parser

    run = tmp_path / "run"
    env = {"SLURM_JOB_NODELIST": "node[1-2]", "SLURM_NNODES": "2", "SLURM_JOB_ID": "42", "RUN": str(run)}
    (argv,) = traced_commands(DEPLOY / "slurm" / "train.sbatch", tmp_path, env)
    assert argv[1:3] == ["-m", "torch.distributed.run"]
    tr = get_args_parser().parse_args(argv[3:])
    assert (tr.nnodes, tr.nproc_per_node, tr.rdzv_endpoint, tr.rdzv_id) == ("2", "8", "node1:29500", "42")
    assert tr.module and tr.training_script == "pipeline.train"
    args = train.parse_args(tr.training_script_args)
    assert (args.out, args.resume, (ROOT / args.config).is_file()) == (str(run), False, True)
    run.mkdir()
    (run / "last.pt").write_bytes(b"")
    (tmp_path / "argv.jsonl").unlink()
    (argv,) = traced_commands(DEPLOY / "slurm" / "train.sbatch", tmp_path, env)
    assert train.parse_args(get_args_parser().parse_args(argv[3:]).training_script_args).resume


def test_kubernetes_indexed_job_renders_every_index_and_merges(tmp_path, monkeypatch):
    job = yaml.safe_load((DEPLOY / "k8s" / "render-job.yaml").read_text())
    spec = job["spec"]
    assert (job["kind"], spec["completionMode"]) == ("Job", "Indexed")
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert int(env["JOB_COMPLETIONS"]) == spec["completions"] == spec["parallelism"]
    cmd = container["command"]
    assert cmd[1:3] == ["-m", "blender.render"]
    args = render.parse_args(cmd[3:])
    assert args.shard == "auto" and (ROOT / args.config).is_file()
    merge = yaml.safe_load((DEPLOY / "k8s" / "merge-job.yaml").read_text())
    mcmd = merge["spec"]["template"]["spec"]["containers"][0]["command"]
    assert render.parse_args(mcmd[3:]).merge_only and mcmd[mcmd.index("--out") + 1] == args.out

    # every pod's command, at toy size (the fake frame function), gives the single-run dataset
    small = ["--num-images", "20", "render.resolution=[32,24]", "humans_dir=none"]
    argv = [str(tmp_path / "ds") if a == args.out else a for a in cmd[3:]] + small
    single = [a if a != str(tmp_path / "ds") else str(tmp_path / "single") for a in argv if a != "auto"]
    single.remove("--shard")
    assert render.main(single, frame_factory=fake_factory([])) == 0
    monkeypatch.setenv("JOB_COMPLETIONS", env["JOB_COMPLETIONS"])
    for index in range(spec["completions"]):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        assert render.main(argv, frame_factory=fake_factory([])) == 0
    assert (tmp_path / "ds" / "annotations.json").read_bytes() == (tmp_path / "single" / "annotations.json").read_bytes()


# ---------------------------------------------------------------- a real scheduler

def slurm_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s.startswith(("idle", "mixed")) for s in proc.stdout.split())


REQUIRED = os.environ.get("WAREHOUSE_SYNTH_REQUIRE_SLURM") == "1"  # .ci/run starts a cluster


@pytest.mark.slow
@pytest.mark.blender
@pytest.mark.skipif(not (REQUIRED or slurm_up()),
                    reason="no SLURM cluster here (bash deploy/slurm/local_cluster.sh start, as root)")
def test_render_array_through_real_slurm_matches_one_process(tmp_path):
    pytest.importorskip("bpy")
    assert slurm_up(), "WAREHOUSE_SYNTH_REQUIRE_SLURM=1 but sinfo shows no idle node"
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump({
        "dataset": {"name": "slurm", "num_images": 4, "seed": 21},
        "render": {"preset": "fast", "resolution": [80, 60], "samples": 1},
        "scene": {"pedestrians": {"count": [0, 0]}, "pallet_jacks": {"pushed_prob": 0.0, "count": [2, 3]}},
    }))
    out, logs = tmp_path / "array", tmp_path / "logs"
    logs.mkdir()
    env = {**os.environ, "CONFIG": str(cfg), "OUT": str(out), "PY": sys.executable,
           "ARGS": "render.device=cpu", "OMP_NUM_THREADS": "1"}

    def sbatch(*args: str) -> str:
        proc = subprocess.run(["sbatch", "--parsable", f"--chdir={ROOT}", "--cpus-per-task=1",
                               f"--output={logs}/%x-%A_%a.log", *args], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip().split(";")[0]

    array = sbatch("--array=1-2", str(DEPLOY / "slurm" / "render.sbatch"))
    merge = sbatch(f"--dependency=afterok:{array}", str(DEPLOY / "slurm" / "merge.sbatch"))
    deadline = time.time() + 300
    while time.time() < deadline:
        q = subprocess.run(["squeue", "-h", "-j", f"{array},{merge}"], capture_output=True, text=True)
        if q.returncode == 0 and not q.stdout.strip():
            break
        time.sleep(1)
    else:
        subprocess.run(["scancel", array, merge])
        pytest.fail("SLURM jobs still queued after 300 s:\n" + q.stdout)
    log_text = "\n".join(f"{p.name}:\n{p.read_text()}" for p in sorted(logs.iterdir()))
    assert (out / "annotations.json").is_file(), log_text
    parts = [json.loads((out / "parts" / f"{i:06d}.json").read_text())["meta"]["shard"] for i in range(4)]
    assert parts == ["1/2", "2/2", "1/2", "2/2"], log_text  # each array task rendered its own slice
    assert "annotations.json holds 4 images" in log_text, log_text  # the merge job, or the last task

    single = tmp_path / "single"
    assert render.main(["--config", str(cfg), "--out", str(single), "render.device=cpu"]) == 0
    assert (out / "annotations.json").read_bytes() == (single / "annotations.json").read_bytes()
