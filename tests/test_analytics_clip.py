"""The analytics geometry on rendered scenario clips: ground truth fed in as detections must give
every true event and pedestrian floor positions within 5 cm (median). Each test renders its
scenario clip as shipped (640x480, 30 frames, ~1 min on 2 cores), so it runs wherever Blender
does. (At 320x240 the line_cross footprints jitter across the line and one crossing is
counted twice: the rules need the resolution the scenario is made for.) The calibrated-lens
clips are tiny (128x96, 1 sample, ~30 s each): the lens, not the resolution, is their subject."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from helpers_camera import project, site_pose, write_cal

from blender import clip as clip_cli
from pipeline.analytics.clip_truth import events_from_rows, read_floor_truth
from pipeline.analytics.events import read_events_csv
from pipeline.analytics.rules_config import load_rules
from pipeline.video import main

pytestmark = pytest.mark.blender
ROOT = Path(__file__).resolve().parents[1]


def render_and_score(tmp_path: Path, scenario: str, *overrides: str) -> dict:
    """Render scenario clip `scenario`, check its true events, run the oracle: its analytics summary."""
    clip = tmp_path / f"clip_{scenario}"
    assert clip_cli.main(["--config", str(ROOT / "configs" / "clip_scenario.yaml"), "--out", str(clip),
                          f"clip.scenario={scenario}", f"clip.name=clip_{scenario}",
                          f"humans_dir={ROOT / 'assets_cache' / 'humans'}", *overrides]) == 0
    rules, _ = load_rules(clip / "rules.yaml")
    # the clip's true events are the rules run on its true positions
    written = [(e.rule, e.event, e.frame_index, e.track_id) for e in read_events_csv(clip / "truth" / "events.csv")]
    assert written == [(e.rule, e.event, e.frame_index, e.track_id) for e in events_from_rows(rules, read_floor_truth(clip))]
    out = tmp_path / "v.mp4"
    assert main(["--checkpoint", "gt", "--source", str(clip), "--out", str(out), "--rules",
                 str(clip / "rules.yaml"), "--quiet", "source.max_side=640"]) == 0
    a = json.loads((tmp_path / "v.summary.json").read_text())["analytics"]
    assert a["event_matches"]["true"] > 0
    assert a["precision"] == 1.0 and a["recall"] == 1.0
    # the truth is the footprint from the mesh (blender/truth.py), the measure from the mask
    per_class = a["floor_error_m"]["per_class"]
    print(scenario, overrides, json.dumps(a["floor_error_m"]))
    assert per_class and all(v["median"] < 0.05 for v in per_class.values()), per_class
    assert all(v == 0 for v in a["line_count_error"].values())
    assert (tmp_path / "v.events.csv").read_text().count("\n") == a["events"] + 1
    return a


@pytest.mark.parametrize("scenario", ["near_miss", "zone_entry", "line_cross"])
def test_oracle_detections_give_perfect_events_and_centimetre_floor_positions(tmp_path, scenario):
    render_and_score(tmp_path, scenario)


@pytest.mark.parametrize("model, K, dist, site", [
    # a noticeable barrel (a pixel at the image corner moves ~10 px) ...
    ("pinhole", [[130.0, 0, 63.5], [0, 130.0, 47.5], [0, 0, 1]], [-0.35, 0.1, 0.001, -0.0005, 0.0], False),
    # ... a fisheye, and a site pose (its height, tilt and roll) facing down the scenario's lanes
    ("fisheye", [[110.0, 0, 63.5], [0, 110.0, 47.5], [0, 0, 1]], [0.08, -0.03, 0.01, -0.002], False),
    ("pinhole", [[120.0, 0, 64.0], [0, 121.0, 47.0], [0, 0, 1]], [-0.3, 0.08, 0.0, 0.0, 0.0], True),
])
def test_a_calibrated_distorted_camera_gives_the_same_events_and_floor_positions(tmp_path, model, K, dist, site):
    size = (128, 96)
    cal = write_cal(tmp_path / "cam.yaml", K=K, dist=dist, size=size, model=model,
                    pose=site_pose(loc=(0.0, 0.0, 3.5), tilt=np.radians(22)) if site else None)
    render_and_score(tmp_path, "near_miss", f"scene.camera.calibration={cal}",
                     f"scene.camera.mode={'site' if site else 'generic'}", "scene.camera.site_angle_jitter_deg=0",
                     "render.resolution=[128,96]", "render.samples=1", "render.postprocess=false",
                     "annotation.min_area=20")   # people at 128x96 are small; the default 64 px makes most crowd
    clip = tmp_path / "clip_near_miss"
    calib = yaml.safe_load((clip / "calibration.yaml").read_text())
    lens = calib["lens"]
    assert lens["distortion_model"] == model and lens["dist_coeffs"] == dist and calib["image_size"] == list(size)
    # the 3x4 projection is that of a real camera with the file's K (pixels from the top-left
    # corner: OpenCV's centres + 0.5) standing where the plan put it
    Kc = np.array(K) + np.array([[0, 0, 0.5], [0, 0, 0.5], [0, 0, 0]])
    Rt = np.linalg.solve(Kc, np.array(calib["camera_matrix"]))
    Rt /= np.cbrt(np.linalg.det(Rt[:, :3]))
    R, t = Rt[:, :3], Rt[:, 3]
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-5)
    meta = json.loads(sorted((clip / "parts").glob("*.json"))[0].read_text())["meta"]
    np.testing.assert_allclose(-R.T @ t, meta["movers"]["camera"], atol=1e-4)
    if site:
        assert meta["movers"]["camera"][2] == pytest.approx(3.5, abs=0.5)  # the site's height (jittered)
    # a true floor position, projected by OpenCV through that pose and the lens, lands where
    # the analytics' FloorMap (read from calibration.yaml) draws it
    _, floor = load_rules(clip / "rules.yaml")
    rows = read_floor_truth(clip)
    xy = np.array([[r["x"], r["y"]] for r in rows if r["visible"]])
    uv, ok = floor.to_image(xy)
    rvec, _ = cv2.Rodrigues(R)
    cv_uv = project(np.c_[xy, np.zeros(len(xy))], rvec, t, K, dist, model) + 0.5
    assert ok.all()
    np.testing.assert_allclose(uv, cv_uv, atol=1e-3)
    # the actors walk near the centre, where the lens bends little; the floor seen in the bottom
    # corners goes through OpenCV back to the same pixels, several pixels from a lens-less projection
    corners = np.array([[4.0, 90.0], [124.0, 90.0], [64.0, 93.0]])
    fxy = np.c_[floor.to_floor(corners), np.zeros(3)]
    np.testing.assert_allclose(project(fxy, rvec, t, K, dist, model) + 0.5, corners, atol=1e-3)
    plain = project(fxy, rvec, t, K, np.zeros(5)) + 0.5   # an ideal pinhole
    assert np.abs(plain - corners).max() > 3.0
