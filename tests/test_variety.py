"""Variety statistics of a dataset: per-image measures on known images, spread, cameras."""

import cv2
import numpy as np
import pytest

from pipeline.common import UserError
from pipeline.variety import image_measures, variety_markdown, variety_stats


def test_measures_of_known_images():
    grey = np.full((40, 60, 3), 128, np.uint8)
    m = image_measures(grey)
    assert m["brightness"] == pytest.approx(128, abs=0.5)
    assert m["contrast"] == pytest.approx(0, abs=1e-9) and m["colourfulness"] == pytest.approx(0, abs=1e-9)
    red = np.zeros((40, 60, 3), np.uint8)
    red[..., 0] = 255
    assert image_measures(red)["colourfulness"] == pytest.approx(0.3 * np.hypot(255, 127.5))
    halves = np.zeros((40, 60, 3), np.uint8)
    halves[:, 30:] = 255
    assert image_measures(halves)["contrast"] == pytest.approx(127.5, abs=0.5)


def test_spread_over_a_set_and_cameras(tmp_path):
    images = []
    for i, v in enumerate((0, 64, 128, 192, 255)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((24, 32, 3), v, np.uint8))
        images.append({"id": i, "file_name": f"{i}.png", "camera": "cctv" if i % 2 else "robot",
                       "camera_height_m": 1.0 + i})
    v = variety_stats(images, tmp_path)
    assert v["brightness"]["p50"] == pytest.approx(128, abs=0.5)
    assert v["brightness"]["p5"] < 20 and v["brightness"]["p95"] > 235
    assert v["camera_kinds"] == {"cctv": 2, "robot": 3}
    assert v["camera_height_m"]["p50"] == 3.0
    md = "\n".join(variety_markdown(v))
    assert "cameras: cctv 2, robot 3" in md and "camera height (m): 1.2/2/3/4/4.8" in md
    with pytest.raises(UserError, match="image id 9"):
        variety_stats([{"id": 9, "file_name": "missing.png"}], tmp_path)
