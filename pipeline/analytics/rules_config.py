"""The rules file (RULES.yaml): polygon zones, counting lines and proximity rules in floor metres.

Validated with pydantic like every config of this project, so a bad file is one line naming
the file and the field. Format: docs/DESIGN.md (rules file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from pipeline.analytics.calibration import CalibrationConfig, FloorMap, load_calibration
from pipeline.common import StrictModel, UserError, load_config, mapping_or

ClassName = Literal["pedestrian", "pallet_jack"]
Point = tuple[float, float]


class ZoneRule(StrictModel):
    """People (or `classes`) inside the polygon raise `enter`; `exit` carries the dwell time."""

    name: str = Field(min_length=1)
    polygon: list[Point] = Field(min_length=3)   # floor (x, y) metres, in order around the zone
    classes: list[ClassName] = ["pedestrian"]
    release_m: float = Field(0.2, ge=0)          # leaving needs this far outside: no flicker at the edge
    max_dwell_s: float | None = Field(None, gt=0)  # also raise `dwell` once a visit lasts this long

    @field_validator("polygon")
    @classmethod
    def _area(cls, v):
        p = np.asarray(v, dtype=np.float64)
        area = 0.5 * abs(np.dot(p[:, 0], np.roll(p[:, 1], 1)) - np.dot(p[:, 1], np.roll(p[:, 0], 1)))
        if area < 1e-4:
            raise ValueError("expected 3 or more floor points enclosing an area (metres)")
        return v


class LineRule(StrictModel):
    """Crossings of the segment start -> end, `in` and `out` per class (supervision's LineZone sides)."""

    name: str = Field(min_length=1)
    start: Point
    end: Point
    classes: list[ClassName] = ["pedestrian", "pallet_jack"]

    @model_validator(mode="after")
    def _length(self) -> LineRule:
        if np.hypot(self.end[0] - self.start[0], self.end[1] - self.start[1]) < 1e-3:
            raise ValueError("start and end: expected two different floor points (metres)")
        return self


class ProximityRule(StrictModel):
    """An `a` within max_distance_m of a `b` (footprint to footprint) starts one event per pass."""

    name: str = Field(min_length=1)
    a: ClassName = "pedestrian"
    b: ClassName = "pallet_jack"
    max_distance_m: float = Field(gt=0)
    release_m: float = Field(0.3, ge=0)           # the pass ends beyond max_distance_m + release_m
    min_speed_mps: float | None = Field(None, ge=0)  # only while the `b` moves at least this fast


class RulesConfig(StrictModel):
    # a calibration file (relative to the rules file) or the calibration itself
    calibration: str | CalibrationConfig
    zones: list[ZoneRule] = []
    lines: list[LineRule] = []
    proximity: list[ProximityRule] = []
    lost_s: float = Field(1.0, ge=0)          # a track unseen this long has left (closes its zone visits and passes)
    speed_window_s: float = Field(0.5, gt=0)  # speeds from the floor positions over this past window

    @field_validator("calibration", mode="wrap")
    @classmethod
    def _file_or_inline(cls, v, handler):
        return mapping_or(CalibrationConfig, v, handler)

    @model_validator(mode="after")
    def _names(self) -> RulesConfig:
        names = [r.name for r in (*self.zones, *self.lines, *self.proximity)]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dup)}")
        if not names:
            raise ValueError("expected at least one rule under zones, lines or proximity")
        return self


def load_rules(path: str | Path) -> tuple[RulesConfig, FloorMap]:
    """RULES.yaml -> (rules, floor map); the calibration path is relative to the rules file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: rules file not found")
    rules = load_config(path, RulesConfig)
    if isinstance(rules.calibration, str):
        floor = load_calibration(path.parent / rules.calibration)
    else:
        floor = FloorMap.from_config(rules.calibration, f"{path}: calibration", path.parent)
    return rules, floor
