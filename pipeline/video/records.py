"""OUT.jsonl: one header line, then one line per processed frame."""

from __future__ import annotations

from pathlib import Path

from pipeline import rle
from pipeline.common import CLASS_NAMES
from pipeline.detections import Detections
from pipeline.sources import Frame


def output_paths(out: Path) -> dict[str, Path]:
    stem = out.with_suffix("")
    return {"video": out, "jsonl": Path(f"{stem}.jsonl"), "summary": Path(f"{stem}.summary.json"),
            "mot": Path(f"{stem}.mot.txt"), "config": Path(f"{stem}.config.yaml")}


def class_name(label: int) -> str:
    return CLASS_NAMES[label] if 0 <= label < len(CLASS_NAMES) else str(label)


def frame_record(frame: Frame, dets: Detections, with_masks: bool) -> dict:
    dets_out = []
    for i in range(len(dets)):
        label = int(dets.labels[i])
        tid = -1 if dets.track_ids is None else int(dets.track_ids[i])
        d = {"box": [round(float(v), 2) for v in dets.boxes[i]],
             "score": round(float(dets.scores[i]), 4),
             "label": label, "class": class_name(label),
             "track_id": tid if tid >= 0 else None}
        if with_masks and dets.masks is not None:
            d["mask"] = rle.encode(dets.masks[i])
        dets_out.append(d)
    return {"type": "frame", "frame_index": frame.index, "timestamp": round(frame.timestamp, 4),
            "file_name": frame.name, "detections": dets_out}
