"""The video job's config: the sections of configs/video*.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pipeline.common import StrictModel
from pipeline.inference_settings import InferenceSettings
from pipeline.tracking import TrackingConfig


class VideoInference(InferenceSettings):
    # always set here: ByteTrack needs the low-score detections (0.3..0.5) to continue tracks
    score_threshold: float = Field(0.3, ge=0, le=1)


class SourceConfig(StrictModel):
    stride: int = Field(1, ge=1)               # process every n-th frame
    max_side: int | None = Field(None, ge=32)  # downscale frames so the longer side is at most this
    max_frames: int | None = Field(None, ge=1)
    fps: float | None = Field(None, gt=0)      # frame rate of image folders (default: seqinfo.ini, else 30)
    queue_size: int = Field(16, ge=1)          # decoded frames buffered ahead of inference


class OutputConfig(StrictModel):
    codec: Literal["h264", "mp4v"] = "h264"
    crf: int = Field(23, ge=0, le=51)
    preset: str = "veryfast"
    keyframe_interval: int | None = Field(None, ge=1)  # frames per MP4 fragment (default: 1 s)
    encoder_threads: int = Field(1, ge=0)   # x264 threads (0 = auto); inference needs the cores more
    draw_masks: bool = True
    alpha: float = Field(0.45, ge=0, le=1)
    overlay: bool = True                    # fps and per-class counts in the corner
    jsonl_masks: bool = True                # RLE masks in OUT.jsonl
    queue_size: int = Field(16, ge=1)       # inferred frames waiting for the encoder


class ScoringConfig(StrictModel):
    enabled: bool | None = None             # None: score when the source has ground truth
    iou_types: list[Literal["bbox", "segm"]] = ["bbox", "segm"]


class VideoConfig(StrictModel):
    model: VideoInference = VideoInference()
    source: SourceConfig = SourceConfig()
    tracking: TrackingConfig = TrackingConfig()
    output: OutputConfig = OutputConfig()
    scoring: ScoringConfig = ScoringConfig()
