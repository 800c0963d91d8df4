"""The human mesh library's index (written by `python -m pipeline.humans`), as the planner
and the Blender view read it."""

from __future__ import annotations

from pathlib import Path

from pipeline.common import UserError, read_json


def load_human_index(humans_dir: str | Path) -> list[dict]:
    """The library's mesh records (index.json 'meshes'): id, pose, height, stature, file, ..."""
    path = Path(humans_dir) / "index.json"
    if not path.is_file():
        raise UserError(f"{path}: human mesh library not found; run `make humans` "
                        f"(python -m pipeline.humans --out {humans_dir} --count 24)")
    data = read_json(path, "human mesh index")
    meshes = data.get("meshes") if isinstance(data, dict) else None
    if not isinstance(meshes, list) or not meshes:
        raise UserError(f"{path}: expected a non-empty 'meshes' list")
    return meshes
