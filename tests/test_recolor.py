"""Instance recolouring (pipeline/recolor.py): only the chosen instances' mask pixels change,
hue moves and shading stays, the draw follows the seed, and the config checks its classes."""

import cv2
import numpy as np
import pytest

from pipeline.common import UserError, load_config
from pipeline.config import AugmentConfig, TrainConfig
from pipeline.recolor import recolor
from pipeline.transforms import Augment

JACK, PERSON = 2, 1


def _scene():
    h, w = 48, 64
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = (200, 30, 20)                     # a red floor: the background shares the paint
    image[:, :, 0] = np.linspace(120, 230, w).astype(np.uint8)  # and a shading ramp
    masks = np.zeros((3, h, w), np.uint8)
    masks[0, 5:20, 5:30] = 1                     # a jack
    masks[1, 25:45, 40:60] = 1                   # a person
    masks[2, 30:40, 5:20] = 1                    # a crowd jack (negated label under data.crowd ignore)
    return image, masks, np.array([JACK, PERSON, -JACK])


def test_only_jack_pixels_change_and_keep_their_brightness():
    image, masks, labels = _scene()
    out = recolor(image, masks, labels, np.random.default_rng(3), 1.0, frozenset({JACK}))
    changed = np.any(out != image, axis=2)
    jacks = masks[0].astype(bool) | masks[2].astype(bool)
    assert not changed[~jacks].any()             # background and person untouched
    assert changed[masks[0].astype(bool)].mean() > 0.9 and changed[masks[2].astype(bool)].mean() > 0.9
    assert np.array_equal(image, _scene()[0])    # the input is not modified
    hsv_in = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[masks[0].astype(bool)].astype(int)
    hsv_out = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)[masks[0].astype(bool)].astype(int)
    assert np.abs(hsv_out[:, 2] - hsv_in[:, 2]).max() <= 2   # value (shading) kept
    assert np.abs(hsv_out[:, 0] - hsv_in[:, 0]).mean() > 3   # hue moved


def test_probability_zero_and_other_classes_leave_the_image_alone():
    image, masks, labels = _scene()
    assert recolor(image, masks, labels, np.random.default_rng(0), 0.0, frozenset({JACK})) is image
    out = recolor(image, masks, labels, np.random.default_rng(0), 1.0, frozenset({PERSON}))
    changed = np.any(out != image, axis=2)
    assert changed[masks[1].astype(bool)].mean() > 0.9 and not changed[~masks[1].astype(bool)].any()


def test_augment_recolors_per_seed_and_leaves_other_draws_alone():
    image, masks, labels = _scene()
    plain = Augment(AugmentConfig(strength=0.5))
    painted = Augment(AugmentConfig(strength=0.5, recolor=1.0))
    a = painted(image, masks, labels, seed=7)
    b = painted(image, masks, labels, seed=7)
    c = painted(image, masks, labels, seed=8)
    ref = plain(image, masks, labels, seed=7)
    assert np.array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
    assert np.array_equal(a[1], ref[1]) and np.array_equal(a[2], ref[2])  # same geometry and labels
    assert not np.array_equal(a[0], ref[0])


def test_unknown_recolor_class_is_a_one_line_error(tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text("augment:\n  recolor: 0.5\n  recolor_classes: [forklift]\n")
    with pytest.raises(UserError) as e:
        load_config(cfg, TrainConfig, [])
    assert "recolor_classes" in str(e.value) and "forklift" in str(e.value)
    assert "\n" not in str(e.value)
