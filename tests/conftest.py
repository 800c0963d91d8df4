"""Shared fixtures. `make_coco_set` (tests/helpers_coco.py) writes a tiny COCO set with known
geometry; import it as `from helpers_coco import make_coco_set` in any test module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
for p in (TESTS, TESTS.parent):  # `helpers_coco` and `tests.helpers_coco` both import
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from helpers_coco import make_coco_set  # noqa: E402


@pytest.fixture
def coco_set(tmp_path) -> Path:
    """A fresh 6-image 96x128 set (RLE, polygons, uncompressed RLE, a crowd region, an empty image)
    that the test may modify."""
    return make_coco_set(tmp_path / "coco", num_images=6, size=(96, 128), seed=0)


@pytest.fixture(scope="session")
def coco_set_ro(tmp_path_factory) -> Path:
    """The same kind of set shared by the whole session: read it, never modify it."""
    return make_coco_set(tmp_path_factory.mktemp("coco_ro"), num_images=6, size=(96, 128), seed=0)
