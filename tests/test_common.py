"""Config loading, overrides, atomic writes, class maps: the pieces every stage relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import Field

from pipeline.common import (
    CATEGORIES,
    StrictModel,
    UserError,
    apply_overrides,
    atomic_write_json,
    atomic_write_with,
    load_config,
    parse_class_map,
    remap_categories,
)


class Solver(StrictModel):
    lr: float = Field(0.01, gt=0)
    momentum: float = 0.9


class Cfg(StrictModel):
    solver: Solver = Solver()
    max_iters: int = 10


def write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def test_load_config_with_overrides(tmp_path):
    cfg = load_config(write(tmp_path / "c.yaml", "solver:\n  lr: 0.02\n"), Cfg, ["max_iters=7", "solver.momentum=0.5"])
    assert cfg.solver.lr == 0.02 and cfg.solver.momentum == 0.5 and cfg.max_iters == 7


def test_unknown_key_suggests_the_close_one(tmp_path):
    with pytest.raises(UserError) as e:
        load_config(write(tmp_path / "c.yaml", "solver:\n  lrr: 0.02\n"), Cfg)
    msg = str(e.value)
    assert "c.yaml" in msg and "solver.lrr" in msg and "did you mean 'lr'" in msg
    assert "\n" not in msg


def test_wrong_type_and_range_name_the_field(tmp_path):
    with pytest.raises(UserError, match=r"c\.yaml: max_iters: .*integer.*'ten'"):
        load_config(write(tmp_path / "c.yaml", "max_iters: ten\n"), Cfg)
    with pytest.raises(UserError, match=r"solver\.lr: .*greater than 0"):
        load_config(None, Cfg, ["solver.lr=-1"])


def test_errors_say_whether_the_value_came_from_the_file_or_the_command_line(tmp_path):
    cfg = write(tmp_path / "c.yaml", "solver:\n  lr: 0.02\n")
    with pytest.raises(UserError) as e:
        load_config(cfg, Cfg, ["solver.lr=-1"])
    assert str(e.value).startswith("command-line override 'solver.lr=-1': solver.lr: ")
    with pytest.raises(UserError) as e:
        load_config(cfg, Cfg, ["solver.lrr=1"])
    assert str(e.value).startswith("command-line override 'solver.lrr=1': unknown key 'solver.lrr'")
    with pytest.raises(UserError) as e:  # a bad file value next to a good override: the file is named
        load_config(write(tmp_path / "d.yaml", "max_iters: ten\n"), Cfg, ["solver.lr=0.1"])
    assert str(e.value).startswith(f"{tmp_path / 'd.yaml'}: max_iters: ")


def test_base_inheritance_merges_sections_and_names_the_file_of_a_bad_value(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "base.yaml", "max_iters: ten\nsolver:\n  lr: 0.5\n  momentum: 0.8\n")
    write(tmp_path / "sub" / "mid.yaml", "_BASE_: ../base.yaml\nmax_iters: 3\n")
    top = write(tmp_path / "sub" / "top.yaml", "_BASE_: mid.yaml  # a comment\nsolver:\n  lr: 0.25\n")
    cfg = load_config(top, Cfg, ["solver.momentum=0.1"])
    # lr from top, momentum from the command line, max_iters from mid over base's bad value
    assert (cfg.solver.lr, cfg.solver.momentum, cfg.max_iters) == (0.25, 0.1, 3)
    assert load_config(tmp_path / "sub" / "mid.yaml", Cfg).solver.lr == 0.5
    write(tmp_path / "sub" / "mid.yaml", "_BASE_: ../base.yaml\n")
    with pytest.raises(UserError) as e:  # the bad value is the base's: the base is named
        load_config(top, Cfg)
    assert str(e.value).startswith(f"{tmp_path / 'sub' / '..' / 'base.yaml'}: max_iters: ")
    write(tmp_path / "loop.yaml", "_BASE_: loop2.yaml\n")
    write(tmp_path / "loop2.yaml", "_BASE_: loop.yaml\n")
    with pytest.raises(UserError, match="loops back"):
        load_config(tmp_path / "loop.yaml", Cfg)
    with pytest.raises(UserError, match=r"_BASE_: base config .*missing\.yaml not found"):
        load_config(write(tmp_path / "m.yaml", "_BASE_: missing.yaml\n"), Cfg)


def _repeated(top: dict, base: dict, where: str = "") -> list[str]:
    out = []
    for k, v in top.items():
        if isinstance(v, dict):
            out += _repeated(v, base.get(k) or {}, f"{where}{k}.")
        elif k in base and base[k] == v:
            out.append(f"{where}{k}")
    return out


def test_shipped_variant_configs_inherit_and_only_hold_differences():
    """*_demo/_cpu configs name their base and add no key whose value equals the base's."""
    import yaml

    from pipeline.common import read_config_file

    root = Path(__file__).resolve().parents[1] / "configs"
    variants = sorted(p for p in root.glob("*_*.yaml"))
    assert variants
    for p in variants:
        raw = yaml.safe_load(p.read_text())
        assert "_BASE_" in raw, p
        base = read_config_file(p.parent / raw.pop("_BASE_"), {})

        assert not _repeated(raw, base), f"{p.name} repeats its base's values: {_repeated(raw, base)}"


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml", Cfg)
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(write(tmp_path / "bad.yaml", "a: [1,\n"), Cfg)
    with pytest.raises(UserError, match="mapping"):
        load_config(write(tmp_path / "list.yaml", "- 1\n- 2\n"), Cfg)


def test_override_syntax_errors():
    with pytest.raises(UserError, match="key=value"):
        apply_overrides({}, ["justakey"])
    with pytest.raises(UserError, match="not a section"):
        apply_overrides({"a": 1}, ["a.b=2"])
    assert apply_overrides({}, ["a.b=[1, 2]", "c=none_string"]) == {"a": {"b": [1, 2]}, "c": "none_string"}


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "x.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [f.name for f in p.parent.iterdir()] == ["x.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("old")

    def boom(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write_with(p, boom)
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["x.txt"]


def test_class_map_parsing_and_remap():
    cmap = parse_class_map(["person=pedestrian", "pallet truck=pallet_jack"])
    assert cmap == {"person": "pedestrian", "pallet truck": "pallet_jack"}
    with pytest.raises(UserError, match="not one of"):
        parse_class_map("person=human")
    coco = {
        "categories": [{"id": 7, "name": "person"}, {"id": 9, "name": "bicycle"}, {"id": 3, "name": "pallet_jack"}],
        "annotations": [{"id": 1, "category_id": 7}, {"id": 2, "category_id": 9}, {"id": 3, "category_id": 3}],
    }
    out, dropped = remap_categories(coco, {"person": "pedestrian"})
    assert dropped == ["bicycle"]
    assert [(a["id"], a["category_id"]) for a in out["annotations"]] == [(1, 1), (3, 2)]
    assert out["categories"] == CATEGORIES
    with pytest.raises(UserError, match="class map names"):
        remap_categories(coco, {"forklift": "pallet_jack"})


def test_blender_side_imports_no_torch():
    """blender/ must stay torch-free: importing its pure modules must not pull torch in."""
    code = ("import sys, importlib, pkgutil, blender\n"
            "for m in pkgutil.walk_packages(blender.__path__, 'blender.'):\n"
            "    importlib.import_module(m.name)\n"
            "import pipeline.common, pipeline.draw\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_atomic_files_get_the_usual_mode_not_mkstemps_0600(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    p = atomic_write_json(tmp_path / "m.json", {})
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask
