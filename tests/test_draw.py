"""Drawing puts colour where the masks and boxes are, and nowhere else."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.draw import CLASS_COLORS, contact_sheet, draw_detections, load_rgb, save_rgb


def test_mask_tints_only_its_pixels():
    img = np.zeros((60, 80, 3), np.uint8)
    mask = np.zeros((1, 60, 80), bool)
    mask[0, 20:40, 30:50] = True
    out = draw_detections(img, [[0, 0, 1, 1]], [1], masks=mask, alpha=0.5)
    inside = out[28:32, 38:42].reshape(-1, 3)
    expect = np.round(np.array(CLASS_COLORS[1]) * 0.5)
    assert np.abs(inside - expect).max() <= 1
    assert out[55:, 60:].max() == 0  # far from mask, box and label: untouched
    assert img.max() == 0  # input not modified


def test_box_drawn_on_its_edges_and_label_count_checked():
    img = np.zeros((100, 100, 3), np.uint8)
    out = draw_detections(img, [[20, 50, 80, 90]], [2], scores=[0.9], track_ids=[3])
    assert out[70, 20].any() and out[70, 80].any() and out[90, 50].any()
    assert not out[70, 50].any()  # box interior stays clear without a mask
    with pytest.raises(ValueError, match="labels"):
        draw_detections(img, [[0, 0, 5, 5]], [1, 2])


def test_contact_sheet_layout_and_png_round_trip(tmp_path):
    ims = [np.full((30, 40, 3), v, np.uint8) for v in (50, 100, 150)]
    sheet = contact_sheet(ims, ncols=2, tile_width=40, pad=2)
    assert sheet.shape == (2 * (30 + 2) + 2, 2 * (40 + 2) + 2, 3)
    assert (sheet[2 + 10, 2 + 10] == 50).all() and (sheet[34 + 10, 2 + 10] == 150).all()
    p = save_rgb(tmp_path / "s.png", sheet)
    assert (load_rgb(p) == sheet).all()
