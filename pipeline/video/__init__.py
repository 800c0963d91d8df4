"""Detector + tracker on video: annotated H.264 video, per-frame JSONL, summary, optional scoring.

    python -m pipeline.video --checkpoint CKPT --source SOURCE --out OUT.mp4 \\
        [--config configs/video.yaml] [key=value ...]

SOURCE: a video file, a folder or glob of frames, a ground-truth clip folder (images/ +
annotations.json / gt/gt.txt, then the run is scored), a camera index or a stream URL.
CKPT: a checkpoint of this project (.pt) or an ONNX export of one (.onnx).

Ctrl-C / SIGTERM stop cleanly: frames already inferred are drawn, the video is finalised
and the summary says "interrupted". A kill -9 still leaves a playable (fragmented) MP4 and
a JSONL whose lines are all complete except perhaps the last.

Modules: config (the YAML sections), loop (the job), records (OUT.jsonl), writer (drawing and
encoding thread), scoring (AP and HOTA on ground-truth clips), stop (signals), cli.
"""

from pipeline.predictors import load_predictor
from pipeline.video.cli import main, summary_line
from pipeline.video.config import (
           OutputConfig,
           ScoringConfig,
           SourceConfig,
           VideoConfig,
           VideoInference,
)
from pipeline.video.loop import batched, run
from pipeline.video.records import frame_record, output_paths
from pipeline.video.scoring import Scorer

__all__ = ["OutputConfig", "Scorer", "ScoringConfig", "SourceConfig", "VideoConfig", "VideoInference",
           "batched", "frame_record", "load_predictor", "main", "output_paths", "run", "summary_line"]
