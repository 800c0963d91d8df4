"""pipeline.analytics: calibration, footprints, rules on hand-made tracks, scoring, rule-file errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml

from pipeline.analytics.calibration import (
    CalibrationConfig,
    FloorMap,
    fit_homography,
    load_calibration,
)
from pipeline.analytics.events import Event, read_events_csv, write_events_csv
from pipeline.analytics.footprint import box_footprint, mask_footprint
from pipeline.analytics.rules import FloorTrack, RuleEngine
from pipeline.analytics.rules_config import RulesConfig, load_rules
from pipeline.analytics.scoring import AnalyticsScorer
from pipeline.common import UserError

H_TRUE = np.array([[0.02, 0.001, -3.0], [0.0005, 0.03, -2.0], [0.0001, 0.002, 1.0]])


def apply(H, pts):
    q = np.c_[pts, np.ones(len(pts))] @ H.T
    return q[:, :2] / q[:, 2:3]


def test_homography_fit_recovers_known_correspondences():
    px = np.array([[10, 400], [600, 420], [560, 120], [80, 100], [320, 260]], float)
    H = fit_homography(px, apply(H_TRUE, px))
    probe = np.array([[200.0, 300.0], [450.0, 150.0]])
    fm = FloorMap(H, (640, 480))
    np.testing.assert_allclose(fm.to_floor(probe), apply(H_TRUE, probe), atol=1e-6)
    uv, front = fm.to_image(fm.to_floor(probe))
    np.testing.assert_allclose(uv, probe, atol=1e-6)
    assert front.all()


@pytest.mark.parametrize("px", [
    [[0, 0], [10, 10], [20, 20], [30, 30]],          # all on one line
    [[0, 0], [100, 0], [200, 0], [50, 80]],          # 3 of 4 on one line
    [[0, 0], [100, 0], [100, 100]],                  # too few
])
def test_degenerate_points_are_a_clear_error(px):
    px = np.array(px, float)
    with pytest.raises(UserError, match=r"points:.*(degenerate|4 or more)"):
        fit_homography(px, px * 0.01 + 1.0)


def test_camera_matrix_calibration_maps_floor_points_back():
    # a camera at (0, -6, 4) looking at the origin, 500 px focal, 640x480
    loc = np.array([0.0, -6.0, 4.0])
    f = -loc / np.linalg.norm(loc)
    r = np.cross(f, [0, 0, 1.0])
    r /= np.linalg.norm(r)
    u = np.cross(r, f)
    R = np.stack([r, -u, f])                  # camera x right, y down, z forward
    K = np.array([[500, 0, 320], [0, 500, 240], [0, 0, 1.0]])
    P = K @ np.c_[R, -R @ loc]
    fm = FloorMap.from_config(CalibrationConfig(image_size=(640, 480), camera_matrix=P.tolist()))
    floor = np.array([[0.0, 0.0], [1.5, -1.0], [-2.0, 2.5]])
    q = np.c_[floor, np.zeros(3), np.ones(3)] @ P.T
    np.testing.assert_allclose(fm.to_floor(q[:, :2] / q[:, 2:3]), floor, atol=1e-9)
    # the same frames at half size: pixels scale, floor positions do not
    half = fm.for_frame(320, 240)
    np.testing.assert_allclose(half.to_floor(q[:, :2] / q[:, 2:3] / 2), floor, atol=1e-9)
    assert np.isnan(fm.to_floor([[320.0, -200.0]])).all()   # above the horizon (v < -93): not on the floor


def test_footprint_is_the_mask_bottom_not_the_box_centre():
    m = np.zeros((100, 80), bool)
    m[10:60, 30:50] = True        # body
    m[60:70, 36:40] = True        # a leg, reaching lowest
    u, v = mask_footprint(m, box=[30, 10, 50, 70])
    assert v == 70.0              # bottom edge of row 69 (+0.5 px for centre sampling)
    assert u == pytest.approx(38.0)   # columns 36..39, pixel centres
    assert mask_footprint(np.zeros((5, 5), bool)) is None
    assert box_footprint([10, 20, 30, 60]) == (20.0, 60)


def rules(**kw) -> RulesConfig:
    return RulesConfig(calibration="unused.yaml", **kw)


def run(engine: RuleEngine, frames: list[list[FloorTrack]], fps: float = 10.0) -> list[Event]:
    evs = []
    for k, pts in enumerate(frames):
        evs += engine.update(k, k / fps, pts)
    return evs + engine.finish(len(frames) - 1, (len(frames) - 1) / fps)


def test_zone_enter_dwell_and_leave_with_release_margin():
    eng = RuleEngine(rules(zones=[{"name": "aisle", "polygon": [[0, 0], [2, 0], [2, 2], [0, 2]],
                                   "release_m": 0.3, "max_dwell_s": 0.4}]))
    xs = [-1.0, -0.5, 0.5, 1.0, 1.5, 2.1, 1.9, 2.2, 2.5, 3.0]   # 2.1/1.9/2.2: jitter at the edge
    evs = run(eng, [[FloorTrack(7, "pedestrian", x, 1.0), FloorTrack(8, "pallet_jack", x, 1.0)] for x in xs])
    assert [(e.event, e.frame_index, e.track_id) for e in evs] == [
        ("enter", 2, 7), ("dwell", 6, 7), ("exit", 8, 7)]     # jacks are allowed; one visit despite jitter
    assert evs[-1].dwell_s == pytest.approx(0.6)
    assert eng.summary()["aisle"]["enter"] == 1


def test_zone_visit_ends_when_the_track_is_lost():
    eng = RuleEngine(rules(zones=[{"name": "z", "polygon": [[0, 0], [2, 0], [2, 2], [0, 2]]}], lost_s=0.25))
    frames = [[FloorTrack(1, "pedestrian", 1.0, 1.0)]] * 2 + [[]] * 4
    evs = run(eng, frames)
    assert [(e.event, e.frame_index) for e in evs] == [("enter", 0), ("exit", 4)]


def test_line_crossings_in_both_directions_per_class():
    eng = RuleEngine(rules(lines=[{"name": "door", "start": [0, -2], "end": [0, 2]}]))
    xs = [-1.0, -0.5, 0.5, 1.0]
    frames = [[FloorTrack(1, "pedestrian", x, 0.0), FloorTrack(2, "pedestrian", -x, 1.0),
               FloorTrack(3, "pallet_jack", x, -1.0), FloorTrack(4, "pedestrian", x, 5.0)]  # 4 passes beyond the end
              for x in xs]
    evs = run(eng, frames)
    got = sorted((e.track_id, e.event, e.frame_index) for e in evs)
    assert len(got) == 3 and all(f == 2 for _, _, f in got)
    by_track = {t: ev for t, ev, _ in got}
    assert by_track[1] == by_track[3] != by_track[2]          # opposite directions, opposite counts
    c = eng.summary()["door"]
    assert c[by_track[1]] == {"pedestrian": 1, "pallet_jack": 1} and c[by_track[2]] == {"pedestrian": 1}


def test_near_pass_is_one_event_with_hysteresis_and_speed_gate():
    eng = RuleEngine(rules(proximity=[{"name": "near", "max_distance_m": 1.0, "release_m": 0.3,
                                       "min_speed_mps": 0.5}]))
    # the jack drives along y=0 at 1 m/s; the person stands at (3, 0.9): the distance dips
    # under 1 m, wobbles around it (0.95 / 1.05 / 0.98) and then grows
    frames = []
    for k in range(60):
        jx = k * 0.1
        frames.append([FloorTrack(5, "pallet_jack", jx, 0.0), FloorTrack(6, "pedestrian", 3.0, 0.9)])
    # a parked jack right next to a second person: too slow, no event
    frames = [f + [FloorTrack(9, "pallet_jack", 10.0, 10.0), FloorTrack(10, "pedestrian", 10.5, 10.0)] for f in frames]
    evs = run(eng, frames)
    assert [(e.event, e.track_id, e.other_track_id) for e in evs] == [("start", 6, 5), ("end", 6, 5)]
    start, end = evs
    assert start.distance_m <= 1.0 and start.speed_mps == pytest.approx(1.0)
    assert end.distance_m == pytest.approx(0.9) and end.frame_index > start.frame_index + 5


def ev(rule, event, t, tid, other=None, kind="zone", cls="pedestrian") -> Event:
    return Event(rule=rule, kind=kind, event=event, frame_index=int(round(t * 10)), timestamp=t,
                 track_id=tid, cls=cls, x=0.0, y=0.0, other_track_id=other)


def test_scoring_against_hand_made_true_events(tmp_path):
    # run tracks 11/12/13 are true tracks 1/2/3 (boxes overlap), run track 14 matches nothing
    gt_boxes = {k: [(1, [0, 0, 10, 10]), (2, [50, 50, 60, 60]), (3, [100, 0, 110, 10])] for k in range(20)}
    truth = [{"frame_index": k, "track_id": t, "x": float(t), "y": 0.0, "class": "pedestrian"} for k in range(20) for t in (1, 2, 3)]
    sc = AnalyticsScorer(gt_boxes, truth)
    for k in range(20):
        boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 61], [100, 0, 110, 10], [300, 300, 310, 310]], float)
        floor = np.array([[1.03, 0], [2.0, 0.1], [3.0, 0.0], [9, 9]])
        sc.add(k, np.array([11, 12, 13, 14]), boxes, floor)
    true = [ev("aisle", "enter", 1.0, 1), ev("door", "in", 1.5, 2, kind="line"),
            ev("door", "in", 1.6, 3, kind="line", cls="pallet_jack"),
            ev("near", "start", 0.5, 1, other=3, kind="proximity"), ev("aisle", "exit", 2.0, 1)]
    pred = [ev("aisle", "enter", 1.4, 11),                      # within 0.5 s: match
            ev("door", "in", 2.1, 12, kind="line"),               # 0.6 s late: no match
            ev("door", "out", 1.6, 13, kind="line", cls="pallet_jack"),  # wrong direction
            ev("near", "start", 0.6, 11, other=13, kind="proximity"),   # match
            ev("aisle", "enter", 1.0, 14),                        # unknown track: false positive
            ev("aisle", "exit", 5.0, 11)]                         # closing events are not scored
    write_events_csv(tmp_path / "e.csv", pred)
    pred = read_events_csv(tmp_path / "e.csv")                    # through the file format
    s = sc.score(pred, true)
    assert s["event_matches"] == {"predicted": 5, "true": 4, "matched": 2, "tolerance_s": 0.5}
    assert s["precision"] == pytest.approx(2 / 5) and s["recall"] == pytest.approx(2 / 4)
    assert s["line_count_error"] == {"door": 2}                   # in: 1 vs 2, out: 1 vs 0
    assert s["floor_error_m"]["median"] == pytest.approx(0.03) and s["floor_error_m"]["p90"] == pytest.approx(0.1)
    assert s["track_map"] == {"11": 1, "12": 2, "13": 3}


@pytest.mark.parametrize("body, field", [
    ({"zones": [{"name": "a", "polygon": [[0, 0], [1, 1]]}]}, "zones.0.polygon"),
    ({"zones": [{"name": "a", "polygon": [[0, 0], [1, 0], [2, 0]]}]}, "zones.0.polygon"),
    ({"lines": [{"name": "d", "start": [0, 0], "end": [0, 0]}]}, "lines.0"),
    ({"proximity": [{"name": "p", "max_distance_m": -1}]}, "proximity.0.max_distance_m"),
    ({"proximity": [{"name": "p", "max_distance_m": 1, "b": "forklift"}]}, "proximity.0.b"),
    ({"zones": [{"name": "a", "polygon": [[0, 0], [1, 0], [1, 1]], "colour": "red"}]}, "zones.0.colour"),
    ({}, "rules.yaml"),
])
def test_bad_rule_files_are_one_line_errors_naming_the_field(tmp_path, body, field):
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump(
        {"image_size": [640, 480], "points": [{"pixel": p, "floor": p} for p in ([0, 0], [1, 0], [1, 1], [0, 1])]}))
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"calibration": "cal.yaml", **body}))
    with pytest.raises(UserError) as e:
        load_rules(path)
    msg = str(e.value)
    assert "\n" not in msg and field in msg and str(path) in msg


def test_bad_calibration_file_names_the_field(tmp_path):
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump(
        {"image_size": [640, 480], "points": [{"pixel": [i, i], "floor": [i, 0]} for i in range(4)]}))
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(
        {"calibration": "cal.yaml", "lines": [{"name": "d", "start": [0, 0], "end": [1, 0]}]}))
    with pytest.raises(UserError, match=r"cal.yaml: points: .*degenerate") as e:
        load_rules(tmp_path / "rules.yaml")
    assert "\n" not in str(e.value)
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump({"image_size": [640, 480]}))
    with pytest.raises(UserError, match=r"cal.yaml.*expected points .*camera_matrix .* or a lens with one pose"):
        load_rules(tmp_path / "rules.yaml")


# ---------------------------------------------------------------- a distorted (wide-angle) camera

LENS_K = np.array([[420.0, 0, 318.0], [0, 415.0, 243.0], [0, 0, 1]])
LENSES = {"pinhole": [-0.32, 0.12, 0.001, -0.0007, -0.02], "fisheye": [0.06, -0.02, 0.005, -0.001]}


def _lens_camera():
    """(rvec, tvec) of a camera 4 m up at (0, -6), looking at the origin (OpenCV extrinsics)."""
    loc = np.array([0.0, -6.0, 4.0])
    f = -loc / np.linalg.norm(loc)
    r = np.cross(f, [0, 0, 1.0])
    r /= np.linalg.norm(r)
    R = np.stack([r, -np.cross(r, f), f])     # camera x right, y down, z forward
    return cv2.Rodrigues(R)[0].ravel(), -R @ loc


def _opencv_pixels(floor, rvec, tvec, model, dist=None):
    """Floor points -> pixels from the top-left corner, by OpenCV's own projection."""
    from helpers_camera import project

    d = LENSES[model] if dist is None else dist
    return project(np.c_[floor, np.zeros(len(floor))], rvec, tvec, LENS_K, d, model) + 0.5


FLOOR_PROBE = np.array([[0.0, 0.0], [1.5, -1.0], [-2.0, 2.5], [-3.2, -2.4], [3.0, 4.0], [2.9, -2.5]])


@pytest.mark.parametrize("model", ["pinhole", "fisheye"])
def test_a_lens_calibration_matches_opencvs_projection_and_round_trips(tmp_path, model):
    from helpers_camera import write_cal

    rvec, tvec = _lens_camera()
    # the same OpenCV file blender's scene.camera.calibration reads: its pose gives the floor
    cal = write_cal(tmp_path / "cam.yaml", K=LENS_K, dist=LENSES[model], size=(640, 480), model=model,
                    pose=(rvec, tvec))
    (tmp_path / "floor.yaml").write_text(yaml.safe_dump({"lens": "cam.yaml"}))
    fm = load_calibration(tmp_path / "floor.yaml")
    assert fm.image_size == (640, 480) and fm.lens.model == model and fm.lens.path == cal
    px = _opencv_pixels(FLOOR_PROBE, rvec, tvec, model)
    assert (px > 0).all() and (px[:, 0] < 640).all() and (px[:, 1] < 480).all()
    # a known floor point lands where OpenCV projects it, and back
    uv, ok = fm.to_image(FLOOR_PROBE)
    assert ok.all()
    np.testing.assert_allclose(uv, px, atol=1e-6)
    np.testing.assert_allclose(fm.to_floor(px), FLOOR_PROBE, atol=1e-6)
    np.testing.assert_allclose(fm.to_floor(fm.to_image(FLOOR_PROBE)[0]), FLOOR_PROBE, atol=1e-6)
    # the lens matters: a plain pinhole puts these points tens of pixels elsewhere
    plain = _opencv_pixels(FLOOR_PROBE, rvec, tvec, "pinhole", np.zeros(5))
    assert np.abs(plain - px).max() > 20
    # the same lens inline (rvec/tvec in a 3x4 camera_matrix instead), and half-size frames
    R = cv2.Rodrigues(rvec)[0]
    P = (np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]]) @ LENS_K) @ np.c_[R, tvec]
    inline = FloorMap.from_config(CalibrationConfig.model_validate({
        "image_size": [640, 480], "camera_matrix": P.tolist(),
        "lens": {"camera_matrix": LENS_K.tolist(), "dist_coeffs": LENSES[model], "distortion_model": model}}))
    np.testing.assert_allclose(inline.to_floor(px), FLOOR_PROBE, atol=1e-6)
    half = inline.for_frame(320, 240)
    np.testing.assert_allclose(half.to_floor(px / 2), FLOOR_PROBE, atol=1e-6)
    np.testing.assert_allclose(half.to_image(FLOOR_PROBE)[0], px / 2, atol=1e-6)
    # measured points are pixels of the distorted frame: the fit undoes the lens first
    pts = [{"pixel": p.tolist(), "floor": f.tolist()} for p, f in zip(px, FLOOR_PROBE, strict=True)]
    measured = FloorMap.from_config(CalibrationConfig.model_validate(
        {"image_size": [640, 480], "points": pts, "lens": inline.lens and {
            "camera_matrix": LENS_K.tolist(), "dist_coeffs": LENSES[model], "distortion_model": model}}))
    probe = np.array([[0.7, 0.3], [-1.1, 1.9]])
    np.testing.assert_allclose(measured.to_floor(_opencv_pixels(probe, rvec, tvec, model)), probe, atol=1e-6)


def test_a_barrel_lens_hides_floor_points_beyond_its_fold():
    # k1 < 0: the polynomial turns back beyond r ~ 1.2 (normalised); such points are not drawn
    rvec, tvec = _lens_camera()
    R = cv2.Rodrigues(rvec)[0]
    P = (np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]]) @ LENS_K) @ np.c_[R, tvec]
    fm = FloorMap.from_config(CalibrationConfig.model_validate({
        "image_size": [640, 480], "camera_matrix": P.tolist(),
        "lens": {"camera_matrix": LENS_K.tolist(), "dist_coeffs": [-0.35, 0.0, 0.0, 0.0, 0.0]}}))
    _, ok = fm.to_image([[0.0, 0.0], [40.0, 0.0], [0.0, -5.9]])
    assert ok.tolist() == [True, False, False]


@pytest.mark.parametrize("lens, field", [
    ("missing.yaml", "missing.yaml: calibration file not found"),
    ({"camera_matrix": [[400, 0, 320], [0, 400, 240]]}, "calibration.lens: Value error, camera_matrix: expected 3x3"),
    ({"camera_matrix": LENS_K.tolist(), "dist_coeffs": [0.1, 0.2, 0.3]}, "dist_coeffs: 3 values"),
    ({"camera_matrix": LENS_K.tolist(), "distortion_model": "kannala"}, "distortion_model: 'kannala'"),
    ({"camera_matrix": LENS_K.tolist(), "image_width": 320, "image_height": 240}, "image_size [640, 480] differs"),
    ({"camera_matrix": LENS_K.tolist(), "rvec": [_lens_camera()[0].tolist()] * 2,
      "tvec": [_lens_camera()[1].tolist()] * 2}, "rvec/tvec: 2 poses; without points or camera_matrix"),
    ({"camera_matrix": LENS_K.tolist(), "rvec": [0.1, 0, 0], "tvec": [0, 0, 5]}, "rvec/tvec: pose 0 puts the camera at height"),
    ({"camera_matrix": LENS_K.tolist(), "focal": 3}, "unknown key 'calibration.lens.focal'"),
])
def test_bad_lens_is_one_line_naming_the_file_and_field(tmp_path, lens, field):
    from helpers_camera import write_cal

    write_cal(tmp_path / "cam.yaml", K=LENS_K, dist=[0.1, 0.2, 0.3], size=(640, 480), pose=None)
    calib = {"image_size": [640, 480], "lens": lens}
    if not isinstance(lens, dict) or "rvec" not in lens:
        calib["camera_matrix"] = [[400, 0, 320, 0], [0, 400, 240, 0], [0, 0, 1, 5]]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(
        {"calibration": calib, "lines": [{"name": "d", "start": [0, 0], "end": [1, 0]}]}))
    with pytest.raises(UserError) as e:
        load_rules(tmp_path / "rules.yaml")
    msg = str(e.value)
    assert "\n" not in msg and "rules.yaml" in msg and field in msg, msg
    # the lens file's own problems name that file and the field inside it
    (tmp_path / "cal.yaml").write_text(yaml.safe_dump({"camera_matrix": calib.get("camera_matrix") or
                                                       [[400, 0, 320, 0], [0, 400, 240, 0], [0, 0, 1, 5]],
                                                       "image_size": [640, 480], "lens": "cam.yaml"}))
    with pytest.raises(UserError, match=r"cal.yaml: lens: .*cam.yaml: dist_coeffs: 3 values; the pinhole model takes"):
        load_calibration(tmp_path / "cal.yaml")
