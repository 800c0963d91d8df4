"""A user's texture folders, read without bpy: PBR sets (scene.materials.texture_dir) and
environment maps (scene.materials.hdri_dir).

A PBR set is the files of one surface in the layout ambientCG and Poly Haven downloads use:
`<set>_Color.jpg`, `<set>_Roughness.jpg`, `<set>_NormalGL.jpg` (ambientCG, optionally with a
`_1K-JPG` style set name) or `<set>_diff_1k.jpg`, `<set>_rough_1k.jpg`, `<set>_nor_gl_1k.jpg`
(Poly Haven). Suffixes are matched case-insensitively; a set needs its colour map, roughness
and normal are optional. DirectX normal maps (`_NormalDX`, `_nor_dx`) are skipped: their green
channel points the other way. Files are checked by their first bytes, so a broken or mislabelled
file is named when the config is loaded, not in the middle of a render.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from blender.plan.scene_plan import TextureSet

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".exr", ".webp")
HDRI_SUFFIXES = (".hdr", ".exr")
# map name (lower case) -> slot of TextureSet
_MAPS = {"color": "color", "basecolor": "color", "base_color": "color", "albedo": "color",
         "diff": "color", "diffuse": "color",
         "roughness": "roughness", "rough": "roughness",
         "normal": "normal", "normalgl": "normal", "normal_gl": "normal", "nor_gl": "normal"}
_MAP_RE = re.compile(r"^(?P<set>.+?)[_-](?P<map>" + "|".join(sorted(_MAPS, key=len, reverse=True))
                     + r")(?:[_-]\d+k)?$", re.IGNORECASE)
_MAGIC = {".png": (b"\x89PNG",), ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",),
          ".tif": (b"II*\x00", b"MM\x00*"), ".tiff": (b"II*\x00", b"MM\x00*"),
          ".exr": (b"\x76\x2f\x31\x01",), ".webp": (b"RIFF",), ".hdr": (b"#?RADIANCE", b"#?RGBE")}
EXPECTED_SETS = ("files named <set>_Color / _BaseColor / _diff (colour), _Roughness / _rough, "
                 "_Normal / _NormalGL / _nor_gl, as " + "/".join(IMAGE_SUFFIXES))


def check_image(path: Path, what: str) -> None:
    """A file whose first bytes are those of its format, else a ValueError naming it."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    if not any(head.startswith(m) for m in _MAGIC[path.suffix.lower()]):
        raise ValueError(f"{path}: not a readable {path.suffix.lower()} file (expected {what})")


def _folder(path: str) -> Path:
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"{path}: folder not found")
    return p


@functools.lru_cache(maxsize=8)
def texture_sets(path: str) -> tuple[TextureSet, ...]:
    """Every PBR set under `path` (recursively), sorted by name; none is a ValueError."""
    root = _folder(path)
    found: dict[tuple[Path, str], dict[str, str]] = {}
    for f in sorted(root.rglob("*")):
        if not f.is_file() or f.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        m = _MAP_RE.match(f.stem)
        if m is None:
            continue
        check_image(f, "a PBR texture image")
        slots = found.setdefault((f.parent, m["set"]), {})
        slots.setdefault(_MAPS[m["map"].lower()], str(f))  # first by name wins (e.g. .jpg before .png)
    sets = [TextureSet(name=name, color=s["color"], roughness=s.get("roughness"), normal=s.get("normal"))
            for (_, name), s in sorted(found.items(), key=lambda kv: (kv[0][1], str(kv[0][0])))
            if "color" in s]
    if not sets:
        raise ValueError(f"{path}: no PBR texture set found (expected {EXPECTED_SETS})")
    return tuple(sets)


@functools.lru_cache(maxsize=8)
def hdri_files(path: str) -> tuple[str, ...]:
    """The .hdr/.exr environment maps in folder `path` (or the one file it names), sorted."""
    p = Path(path)
    if p.is_file():
        files = [p]
        if p.suffix.lower() not in HDRI_SUFFIXES:
            raise ValueError(f"{path}: expected a .hdr or .exr environment map")
    else:
        files = sorted(f for f in _folder(path).rglob("*") if f.is_file() and f.suffix.lower() in HDRI_SUFFIXES)
        if not files:
            raise ValueError(f"{path}: no .hdr or .exr environment map found")
    for f in files:
        check_image(f, "a Radiance .hdr or OpenEXR environment map")
    return tuple(str(f) for f in files)
