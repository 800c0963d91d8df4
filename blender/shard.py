"""`--shard K/N` and `--shard auto`: which slice of a dataset this process renders.

`auto` reads the array index of the scheduler that started the process, so one command runs
as every task of an array:

    SLURM array job      K = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN + 1,
                         N = SLURM_ARRAY_TASK_COUNT   (sbatch --array=1-16, or 0-15)
    Kubernetes Indexed   K = JOB_COMPLETION_INDEX + 1, N = JOB_COMPLETIONS (set it in the
    Job                  manifest to the Job's spec.completions: Kubernetes does not expose it)

With neither set, `auto` is 1/1 (the whole dataset). Arrays with a step or gaps
(--array=1-16:2, 1,5,9) are refused: their ids do not number the shards 1..N.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pipeline.common import UserError

SLURM_VARS = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX")
K8S_VARS = ("JOB_COMPLETION_INDEX", "JOB_COMPLETIONS")


def parse_shard(text: str | None, environ: Mapping[str, str] | None = None) -> tuple[int, int]:
    """'K/N' or 'auto' (from `environ`, default os.environ) -> (K, N) with 1 <= K <= N."""
    if text is None:
        return 1, 1
    if text == "auto":
        return shard_from_env(os.environ if environ is None else environ)
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text!r}: expected K/N with integers (e.g. 2/4) or auto") from None
    if not (n >= 1 and 1 <= k <= n):
        raise UserError(f"--shard {text!r}: need 1 <= K <= N")
    return k, n


def shard_from_env(env: Mapping[str, str]) -> tuple[int, int]:
    slurm, k8s = "SLURM_ARRAY_TASK_ID" in env, "JOB_COMPLETION_INDEX" in env
    if slurm and k8s:
        raise UserError("--shard auto: both SLURM_ARRAY_TASK_ID and JOB_COMPLETION_INDEX are set; "
                        "expected the variables of one scheduler (or pass --shard K/N)")
    if slurm:
        return _slurm(env)
    if k8s:
        return _kubernetes(env)
    return 1, 1


def _int(env: Mapping[str, str], name: str) -> int:
    if name not in env:
        raise UserError(f"--shard auto: {name} is not set; expected it next to the scheduler's "
                        f"array index (or pass --shard K/N)")
    try:
        return int(env[name])
    except ValueError:
        raise UserError(f"--shard auto: {name}={env[name]!r}; expected an integer") from None


def _slurm(env: Mapping[str, str]) -> tuple[int, int]:
    task, count, low = (_int(env, v) for v in SLURM_VARS[:3])
    high = _int(env, "SLURM_ARRAY_TASK_MAX") if "SLURM_ARRAY_TASK_MAX" in env else low + count - 1
    if count < 1 or high - low + 1 != count:
        raise UserError(f"--shard auto: SLURM array ids {low}..{high} but SLURM_ARRAY_TASK_COUNT={count}; "
                        f"expected a contiguous array without step (e.g. --array=1-{max(count, 1)})")
    if not low <= task <= high:
        raise UserError(f"--shard auto: SLURM_ARRAY_TASK_ID={task} outside the array {low}..{high}")
    return task - low + 1, count


def _kubernetes(env: Mapping[str, str]) -> tuple[int, int]:
    index = _int(env, "JOB_COMPLETION_INDEX")
    if "JOB_COMPLETIONS" not in env:
        raise UserError("--shard auto: JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job) but "
                        "JOB_COMPLETIONS is not; expected it set to the Job's spec.completions")
    count = _int(env, "JOB_COMPLETIONS")
    if not 0 <= index < count:
        raise UserError(f"--shard auto: JOB_COMPLETION_INDEX={index} with JOB_COMPLETIONS={count}; "
                        f"expected 0 <= index < completions")
    return index + 1, count
