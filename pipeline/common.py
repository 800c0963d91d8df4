"""Pieces every stage shares: config loading, atomic writes, CLI error handling.

Imports neither torch nor bpy, so blender/ and pipeline/ can both use it.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # mkstemp makes 0600 files; give outputs the usual mode


class UserError(Exception):
    """Bad input from the user: reported as one line, never a traceback."""


class StrictModel(BaseModel):
    """Config section: unknown keys are errors (with a suggestion), not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


M = TypeVar("M", bound=BaseModel)


# ---------------------------------------------------------------- atomic files

def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file beside `path`, fsync, rename: a kill leaves old or new, never half."""
    return atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = None) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def atomic_write_with(path: str | Path, write: Callable[[Path], None]) -> Path:
    """For writers that need a filename (torch.save, cv2.imwrite, savefig): write() gets a temp
    path beside `path`, which is fsynced and renamed over `path` after it returns.

    The temp name keeps the final suffix so format-sniffing writers pick the right encoder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_json(path: str | Path, what: str = "JSON file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash that links outputs to the exact checkpoint/data they came from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def ensure_writable_dir(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path}: cannot create output folder ({e.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{path}: output folder is not writable")
    return path


# ---------------------------------------------------------------- configs

def parse_override(item: str) -> tuple[list[str], Any]:
    """`a.b.c=value` -> (['a','b','c'], parsed value); values are YAML scalars/lists."""
    if "=" not in item:
        raise UserError(f"override {item!r}: expected key=value (e.g. solver.lr=0.01)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise UserError(f"override {item!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: Sequence[str], origins: dict | None = None) -> dict:
    """Set each `key=value` in `data`; `origins` (if given) records which override set each key."""
    for item in overrides:
        keys, value = parse_override(item)
        node = data
        for k in keys[:-1]:
            nxt = node.get(k)
            if nxt is None:
                nxt = node[k] = {}
            elif not isinstance(nxt, dict):
                raise UserError(f"override {item!r}: {k!r} is not a section")
            node = nxt
        node[keys[-1]] = value
        if origins is not None:
            origins[tuple(keys)] = f"command-line override {item!r}"
    return data


BASE_KEY = "_BASE_"


def _read_yaml_mapping(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserError(f"{path}: expected a mapping of config keys at the top level")
    return loaded


def _merge(base: dict, top: dict) -> dict:
    """`top` over `base`: sections merge key by key, anything else (lists too) is replaced."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _leaves(data: dict, prefix: tuple = ()):
    for k, v in data.items():
        if isinstance(v, dict) and v:
            yield from _leaves(v, prefix + (k,))
        else:
            yield prefix + (k,)


def read_config_file(path: Path, origins: dict, _seen: tuple[Path, ...] = ()) -> dict:
    """A YAML config with its `_BASE_` chain resolved (detectron2's inheritance: the base path is
    relative to the file naming it; this file's keys override the base's, section by section).
    `origins` records, per key path, the file that set it."""
    path = Path(path)
    if path.resolve() in _seen:
        chain = " -> ".join(str(p) for p in (*_seen, path.resolve()))
        raise UserError(f"{path}: {BASE_KEY} loops back on itself ({chain})")
    data = _read_yaml_mapping(path)
    base_name = data.pop(BASE_KEY, None)
    merged: dict = {}
    if base_name is not None:
        if not isinstance(base_name, str) or not base_name:
            raise UserError(f"{path}: {BASE_KEY}: expected the path of a base config file, got {base_name!r}")
        base = path.parent / base_name
        if not base.is_file():
            raise UserError(f"{path}: {BASE_KEY}: base config {base} not found")
        merged = read_config_file(base, origins, (*_seen, path.resolve()))
    for key in _leaves(data):
        origins[key] = str(path)
    return _merge(merged, data)


def _field_names(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Known keys at the location of a validation error, for 'did you mean'."""
    cls: Any = model
    for part in loc[:-1]:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return []
        cls = field.annotation
        # Optional[X] / X | None: take the model member
        for arg in getattr(cls, "__args__", ()) or ():
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                cls = arg
    return list(getattr(cls, "model_fields", {}).keys()) if isinstance(cls, type) else []


def mapping_or(model: type[M], value: Any, handler: Callable[[Any], Any]) -> Any:
    """For a wrap validator of a `str | Model` field (a file path or the same keys inline): a
    mapping is validated as `model`, so its errors name its own fields, not pydantic's report of
    the union's every member ('x.str: Input should be a valid string [+1 more]')."""
    if isinstance(value, dict):
        return model.model_validate(value)
    return handler(value)


def format_validation_error(err: ValidationError, source: str, model: type[BaseModel]) -> str:
    first = err.errors()[0]
    loc = [p for p in first["loc"]]
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        names = _field_names(model, loc)
        guess = difflib.get_close_matches(str(loc[-1]), names, n=1)
        hint = f"; did you mean {guess[0]!r}?" if guess else (f"; known keys: {', '.join(names)}" if names else "")
        msg = f"{source}: unknown key {dotted!r}{hint}"
    else:
        got = first.get("input")
        got_s = "" if isinstance(got, dict) else f" (got {got!r})"
        msg = f"{source}: {dotted}: {first['msg']}{got_s}"
    more = len(err.errors()) - 1
    return msg + (f" [+{more} more]" if more > 0 else "")


def _origin(origins: dict, loc: Sequence[Any], default: str) -> str:
    """The file or override that set the key at `loc` (or its nearest enclosing section)."""
    for n in range(len(loc), 0, -1):
        if tuple(loc[:n]) in origins:
            return origins[tuple(loc[:n])]
    # a section-level check (e.g. low end above high end): name the last override inside it
    inside = [src for key, src in origins.items() if key[:len(loc)] == tuple(loc)]
    overrides = [src for src in inside if src.startswith("command-line")]
    return overrides[-1] if overrides else default


def load_config(path: str | Path | None, schema: type[M], overrides: Sequence[str] = ()) -> M:
    """YAML file (with its `_BASE_` chain) + `key=value` overrides -> validated schema instance.
    Errors name the field and where its value came from: the file, or the command-line override."""
    origins: dict[tuple, str] = {}
    data = read_config_file(Path(path), origins) if path is not None else {}
    data = apply_overrides(data, overrides, origins)
    try:
        return schema.model_validate(data)
    except ValidationError as e:
        loc = e.errors()[0]["loc"]
        source = _origin(origins, [str(p) for p in loc], str(path) if path is not None else "config")
        raise UserError(format_validation_error(e, source, schema)) from None


def config_to_dict(cfg: BaseModel) -> dict:
    return cfg.model_dump(mode="json")


def config_to_yaml(cfg: BaseModel) -> str:
    return yaml.safe_dump(config_to_dict(cfg), sort_keys=False)


# ---------------------------------------------------------------- runtime facts

def package_versions(names: Sequence[str] = ("warehouse-synth", "numpy", "torch", "torchvision",
                                             "bpy", "pycocotools", "opencv-python-headless",
                                             "albumentations")) -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run a stage: user errors -> one line on stderr and exit 2; Ctrl-C -> exit 130."""
    try:
        code = main(argv)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


# ---------------------------------------------------------------- classes (docs/DESIGN.md §2)

CATEGORIES: list[dict] = [
    {"id": 1, "name": "pedestrian", "supercategory": "person"},
    {"id": 2, "name": "pallet_jack", "supercategory": "vehicle"},
]
CLASS_NAMES: list[str] = ["background"] + [c["name"] for c in CATEGORIES]  # index = model label


def parse_class_map(items: Sequence[str] | str | None) -> dict[str, str]:
    """`person=pedestrian,pallet truck=pallet_jack` (or a list of such) -> {foreign: ours}.

    Targets must be our category names; a foreign category left out of the map is dropped.
    """
    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    out: dict[str, str] = {}
    for chunk in items:
        for pair in str(chunk).split(","):
            if not pair.strip():
                continue
            if "=" not in pair:
                raise UserError(f"class map {pair!r}: expected foreign=ours (e.g. person=pedestrian)")
            src, dst = (s.strip() for s in pair.split("=", 1))
            if dst not in CLASS_NAMES[1:]:
                raise UserError(f"class map {pair!r}: {dst!r} is not one of {CLASS_NAMES[1:]}")
            out[src] = dst
    return out


def remap_categories(coco: dict, class_map: dict[str, str], source: str = "annotations") -> tuple[dict, list[str]]:
    """Rewrite a COCO dict onto our category ids through `class_map`.

    Categories already named like ours map to themselves. Annotations of unmapped categories
    are removed; their names are returned so reports can say what was left out.
    """
    cats = coco.get("categories")
    if not isinstance(cats, list):
        raise UserError(f"{source}: field 'categories' missing or not a list")
    ours = {c["name"]: c["id"] for c in CATEGORIES}
    id_map: dict[int, int] = {}
    dropped: list[str] = []
    for c in cats:
        name = c.get("name")
        target = class_map.get(name, name if name in ours else None)
        if target is None:
            dropped.append(name)
        else:
            id_map[c["id"]] = ours[target]
    unused = [k for k in class_map if k not in {c.get("name") for c in cats}]
    if unused:
        raise UserError(f"{source}: class map names {unused} but the file's categories are "
                        f"{[c.get('name') for c in cats]}")
    anns = []
    for a in coco.get("annotations", []):
        if a.get("category_id") in id_map:
            anns.append({**a, "category_id": id_map[a["category_id"]]})
    return {**coco, "annotations": anns, "categories": [dict(c) for c in CATEGORIES]}, dropped
