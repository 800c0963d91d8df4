"""Safety events: one record per zone entry/exit, line crossing and near pass, and OUT.events.csv.

`SCORED` events open something (a visit, a pass) or are instantaneous (a crossing): those are
matched against the ground truth. `exit` and `end` close what was opened and carry its
duration (dwell) or closest distance.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass, fields
from pathlib import Path

SCORED = ("enter", "dwell", "in", "out", "start")


@dataclass
class Event:
    rule: str
    kind: str                  # zone | line | proximity
    event: str                 # enter / dwell / exit (zone), in / out (line), start / end (proximity)
    frame_index: int
    timestamp: float
    track_id: int
    cls: str
    x: float                   # floor position of track_id, metres
    y: float
    other_track_id: int | None = None   # proximity: the `b` object
    other_cls: str | None = None
    distance_m: float | None = None     # proximity: at start; the closest at end
    speed_mps: float | None = None      # proximity: the `b` object's speed at start
    dwell_s: float | None = None        # zone exit/dwell; proximity end: the pass's duration

    def record(self) -> dict:
        d = {"type": "event", **asdict(self)}
        for k in ("timestamp", "x", "y", "distance_m", "speed_mps", "dwell_s"):
            if d[k] is not None:
                d[k] = round(float(d[k]), 4 if k == "timestamp" else 3)
        d["class"] = d.pop("cls")
        d["other_class"] = d.pop("other_cls")
        return d


COLUMNS = [f.name if f.name not in ("cls", "other_cls") else f.name.replace("cls", "class")
           for f in fields(Event)]


class EventsCsv:
    """OUT.events.csv, line-buffered like OUT.jsonl: a kill loses at most the last line."""

    def __init__(self, path: str | Path):
        self.f = open(path, "w", newline="", buffering=1)
        self.w = csv.DictWriter(self.f, fieldnames=COLUMNS, lineterminator="\n")
        self.w.writeheader()

    def write(self, ev: Event) -> None:
        rec = ev.record()
        self.w.writerow({k: ("" if rec[k] is None else rec[k]) for k in COLUMNS})

    def close(self) -> None:
        self.f.close()


def write_events_csv(path: str | Path, events: list[Event]) -> None:
    from pipeline.common import atomic_write_with

    def write(tmp: Path) -> None:
        out = EventsCsv(tmp)
        for ev in events:
            out.write(ev)
        out.close()
    atomic_write_with(path, write)


def read_events_csv(path: str | Path) -> list[Event]:
    out = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            def num(k, t=float, row=row):
                return None if row[k] in ("", None) else t(row[k])
            out.append(Event(rule=row["rule"], kind=row["kind"], event=row["event"],
                             frame_index=int(row["frame_index"]), timestamp=float(row["timestamp"]),
                             track_id=int(row["track_id"]), cls=row["class"], x=float(row["x"]), y=float(row["y"]),
                             other_track_id=num("other_track_id", int), other_cls=row["other_class"] or None,
                             distance_m=num("distance_m"), speed_mps=num("speed_mps"), dwell_s=num("dwell_s")))
    return out
