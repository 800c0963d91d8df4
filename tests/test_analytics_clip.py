"""The analytics geometry on rendered scenario clips: ground truth fed in as detections must give
every true event and pedestrian floor positions within 5 cm (median). Each test renders its
scenario clip as shipped (640x480, 30 frames, ~1 min on 2 cores), so it runs wherever Blender
does. (At 320x240 the line_cross footprints jitter across the line and one crossing is
counted twice: the rules need the resolution the scenario is made for.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blender import clip as clip_cli
from pipeline.analytics.clip_truth import events_from_rows, read_floor_truth
from pipeline.analytics.events import read_events_csv
from pipeline.analytics.rules_config import load_rules
from pipeline.video import main

pytestmark = pytest.mark.blender
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("scenario", ["near_miss", "zone_entry", "line_cross"])
def test_oracle_detections_give_perfect_events_and_centimetre_floor_positions(tmp_path, scenario):
    clip = tmp_path / f"clip_{scenario}"
    assert clip_cli.main(["--config", str(ROOT / "configs" / "clip_scenario.yaml"), "--out", str(clip),
                          f"clip.scenario={scenario}", f"clip.name=clip_{scenario}",
                          f"humans_dir={ROOT / 'assets_cache' / 'humans'}"]) == 0
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
    print(scenario, json.dumps(a["floor_error_m"]))
    assert per_class and all(v["median"] < 0.05 for v in per_class.values()), per_class
    assert all(v == 0 for v in a["line_count_error"].values())
    assert (tmp_path / "v.events.csv").read_text().count("\n") == a["events"] + 1
