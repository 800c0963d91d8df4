"""--shard auto from the environment of SLURM array jobs and Kubernetes Indexed Jobs."""

from __future__ import annotations

import pytest

from blender.shard import parse_shard
from pipeline.common import UserError


def slurm(task, count, low, high=None):
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count),
           "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_JOB_ID": "77"}
    if high is not None:
        env["SLURM_ARRAY_TASK_MAX"] = str(high)
    return env


@pytest.mark.parametrize(("env", "shard"), [
    (slurm(1, 16, 1, 16), (1, 16)),
    (slurm(16, 16, 1, 16), (16, 16)),
    (slurm(0, 4, 0, 3), (1, 4)),      # --array=0-3
    (slurm(12, 3, 10), (3, 3)),       # --array=10-12, no MAX exported
    ({"JOB_COMPLETION_INDEX": "0", "JOB_COMPLETIONS": "8"}, (1, 8)),
    ({"JOB_COMPLETION_INDEX": "7", "JOB_COMPLETIONS": "8"}, (8, 8)),
    ({"SLURM_JOB_ID": "5", "HOSTNAME": "n1"}, (1, 1)),  # a plain job, not an array: everything
    ({}, (1, 1)),
])
def test_auto_reads_the_schedulers_array_index(env, shard):
    assert parse_shard("auto", env) == shard


@pytest.mark.parametrize(("env", "message"), [
    (slurm(3, 8, 1, 15), r"SLURM array ids 1..15 but SLURM_ARRAY_TASK_COUNT=8; expected a contiguous array"),
    (slurm(9, 8, 1, 8), r"SLURM_ARRAY_TASK_ID=9 outside the array 1..8"),
    ({"SLURM_ARRAY_TASK_ID": "2"}, r"SLURM_ARRAY_TASK_COUNT is not set"),
    ({**slurm(1, 2, 1, 2), "SLURM_ARRAY_TASK_COUNT": "two"}, r"SLURM_ARRAY_TASK_COUNT='two'; expected an integer"),
    ({"JOB_COMPLETION_INDEX": "3"}, r"JOB_COMPLETIONS is not; expected it set to the Job's spec.completions"),
    ({"JOB_COMPLETION_INDEX": "8", "JOB_COMPLETIONS": "8"}, r"JOB_COMPLETION_INDEX=8 with JOB_COMPLETIONS=8"),
    ({"JOB_COMPLETION_INDEX": "1", "JOB_COMPLETIONS": "0"}, r"expected 0 <= index < completions"),
    ({**slurm(1, 2, 1, 2), "JOB_COMPLETION_INDEX": "0", "JOB_COMPLETIONS": "2"}, r"expected the variables of one scheduler"),
])
def test_inconsistent_variables_are_one_line_errors(env, message):
    with pytest.raises(UserError, match=message) as e:
        parse_shard("auto", env)
    assert str(e.value).startswith("--shard auto: ") and "\n" not in str(e.value)


def test_explicit_shards_keep_their_rules():
    assert parse_shard("2/4", {"SLURM_ARRAY_TASK_ID": "9"}) == (2, 4)  # an explicit K/N wins
    assert parse_shard(None) == (1, 1)
    for bad in ("5/4", "0/4", "a/b", "auto/4"):
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad, {})
