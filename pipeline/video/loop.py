"""The video job: source -> batched inference -> tracking -> JSONL, annotated video, scores, summary.

Three threads overlap: the reader decodes (sources.prefetch), the main thread runs batched
inference and tracking and writes OUT.jsonl line by line, the writer draws and encodes.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.analytics.oracle import GT_CHECKPOINT, GroundTruthPredictor
from pipeline.common import (
    CLASS_NAMES,
    UserError,
    atomic_write_json,
    atomic_write_text,
    config_to_dict,
    config_to_yaml,
    package_versions,
    sha256_file,
)
from pipeline.predictors import Predictor, load_predictor
from pipeline.sources import ClipSource, Frame, FrameSource, open_source, prefetch
from pipeline.tracking import MultiClassTracker, TrackLog
from pipeline.video.config import VideoConfig
from pipeline.video.records import frame_record, output_paths
from pipeline.video.scoring import Scorer
from pipeline.video.stop import GracefulStop
from pipeline.video.writer import AnnotatedWriter
from pipeline.videowriter import check_output_path


def batched(frames: Iterator[Frame], n: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for f in frames:
        batch.append(f)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def run(cfg: VideoConfig, checkpoint: str | Path, source_spec: str, out: str | Path,
        quiet: bool = False, predictor: Predictor | None = None, rules: str | Path | None = None) -> dict:
    """The whole job; returns the summary (also written to OUT.summary.json).

    `predictor` (optional) is one already loaded from `checkpoint` (benchmarks reuse a warm one).
    `rules`: a rules file (pipeline.analytics): events, OUT.events.csv, overlay, summary `analytics`.
    `checkpoint` "gt" on a clip feeds its ground-truth boxes and masks in as detections.
    """
    from tqdm import tqdm

    out = check_output_path(out)
    paths = output_paths(out)
    src = open_source(source_spec, stride=cfg.source.stride, max_side=cfg.source.max_side,
                      max_frames=cfg.source.max_frames, fps=cfg.source.fps)
    try:
        score_on = cfg.scoring.enabled
        has_gt = isinstance(src, ClipSource) and (src.annotations or src.mot_gt)
        if score_on and not has_gt:
            raise UserError(f"scoring.enabled=true but {source_spec} has no annotations.json or gt/gt.txt")
        scorer = Scorer(src, cfg.scoring) if has_gt and score_on is not False else None
        analytics = None
        if rules is not None:
            from pipeline.analytics.video import VideoAnalytics

            analytics = VideoAnalytics(rules, src, src.size)
        if str(checkpoint) == GT_CHECKPOINT:
            predictor = predictor or GroundTruthPredictor(src)
            ckpt_info = {"path": GT_CHECKPOINT, "sha256": None}
        else:
            predictor = predictor or load_predictor(checkpoint, cfg.model)
            ckpt_info = {"path": str(checkpoint), "sha256": sha256_file(checkpoint)}
        # nothing is written before this point: bad input leaves no half-made outputs
        paths["summary"].unlink(missing_ok=True)  # a stale summary must not vouch for a new video
        atomic_write_text(paths["config"], config_to_yaml(cfg))
        if analytics is not None:
            paths["events"] = Path(f"{out.with_suffix('')}.events.csv")
            analytics.open(paths["events"])
        return _process(cfg, src, predictor, ckpt_info, scorer, paths, quiet, tqdm, analytics)
    finally:
        src.close()


def _process(cfg: VideoConfig, src: FrameSource, predictor: Predictor, ckpt_info: dict,
             scorer: Scorer | None, paths: dict[str, Path], quiet: bool, tqdm, analytics=None) -> dict:
    tracker = MultiClassTracker(cfg.tracking, src.out_fps)
    jsonl = open(paths["jsonl"], "w", buffering=1)  # line-buffered: a kill loses at most one line
    writer = AnnotatedWriter(paths["video"], src.out_fps, src.size, cfg.output,
                             overlay=analytics.overlay if analytics is not None else None)
    header = {"type": "header", "checkpoint": ckpt_info, "predictor": predictor.name,
              "source": src.describe(), "fps": src.out_fps, "width": src.size[0], "height": src.size[1],
              "classes": CLASS_NAMES, "coordinates": "pixels of the processed frame (width x height)"}
    counts: Counter = Counter()
    tracks = TrackLog()
    status, error = "complete", None
    frames_done, t_start = 0, time.perf_counter()
    infer_s = 0.0
    reader = prefetch(iter(src), cfg.source.queue_size)
    bar = tqdm(total=src.expected_frames(), unit="frame", disable=quiet, dynamic_ncols=True)
    stop = GracefulStop().__enter__()
    try:
        jsonl.write(json.dumps(header) + "\n")
        for batch in batched(reader, cfg.model.batch_size):
            t0 = time.perf_counter()
            preds = predictor.frames(batch) if getattr(predictor, "takes_frames", False) \
                else predictor([f.image for f in batch])
            infer_s += time.perf_counter() - t0
            # the end-to-end rate (not the model's alone): what a viewer of the video wants to know
            fps_e2e = (frames_done + len(batch)) / max(time.perf_counter() - t_start, 1e-9)
            for frame, dets in zip(batch, preds, strict=True):
                dets = dets.above(cfg.model.score_threshold)
                dets = dets.with_tracks(tracker.update(dets.boxes, dets.scores, dets.labels))
                jsonl.write(json.dumps(frame_record(frame, dets, cfg.output.jsonl_masks)) + "\n")
                overlay = None
                if analytics is not None:  # events right after the frame's record: no added delay
                    events, overlay = analytics.update(frame, dets)
                    for ev in events:
                        jsonl.write(json.dumps(ev.record()) + "\n")
                frame_counts = Counter(CLASS_NAMES[int(lab)] for lab in dets.labels)
                counts.update(frame_counts)
                for lab, tid in zip(dets.labels, dets.track_ids, strict=True):
                    if tid >= 0:
                        tracks.add(CLASS_NAMES[int(lab)], int(tid), frames_done)
                banner = f"{fps_e2e:.1f} fps  " + "  ".join(f"{n} {frame_counts.get(n, 0)}" for n in CLASS_NAMES[1:])
                writer.put(frame.image, dets, banner, overlay)
                if scorer is not None:
                    scorer.add(frame, dets)
                frames_done += 1
            bar.update(len(batch))
            bar.set_postfix(fps=f"{frames_done / (time.perf_counter() - t_start):.2f}")
            if stop.requested:
                status = "interrupted"
                break
    except KeyboardInterrupt:
        status = "interrupted"
    except BaseException as e:
        status, error = "failed", f"{type(e).__name__}: {e}"
        raise
    finally:
        bar.close()
        reader.close()
        if analytics is not None and not jsonl.closed:
            for ev in analytics.close():
                jsonl.write(json.dumps(ev.record()) + "\n")
        jsonl.close()
        stop.__exit__()
        try:
            video_info = writer.close()
        except OSError as e:
            if status == "complete":
                status, error = "failed", str(e)
            video_info = {"path": str(paths["video"]), "error": str(e)}
        elapsed = time.perf_counter() - t_start
        if analytics is not None:
            analytics.draw_seconds = writer.overlay_seconds
        summary = {"status": status, "error": error, "checkpoint": ckpt_info, "predictor": predictor.name,
                   "source": src.describe(), "frames": frames_done, "skipped_frames": src.skipped,
                   "skipped_files": src.skipped_names[:50], "seconds": round(elapsed, 3),
                   "fps": round(frames_done / elapsed, 3) if elapsed > 0 else None,
                   "inference_seconds": round(infer_s, 3),  # the rest is decode/track/draw/encode not hidden
                   # stable: lasting >= 3 s / 5 s, detected in >= 80 % of its frames (pipeline.tracking)
                   "per_class": {n: {"detections": counts.get(n, 0), **tracks.summary(n, src.out_fps)}
                                 for n in CLASS_NAMES[1:]},
                   "outputs": {k: str(v) for k, v in paths.items()}, "video": video_info,
                   "config": config_to_dict(cfg), "versions": package_versions()}
        if status != "failed" and frames_done == 0:
            summary.update(status="failed", error="no frame could be processed")
        if scorer is not None and frames_done:
            from pipeline.mot import write_mot

            write_mot(paths["mot"], np.asarray(scorer.mot_rows).reshape(-1, 9))
            if status != "failed":
                try:
                    summary["metrics"] = scorer.score()
                except UserError as e:  # bad ground truth must not cost the video and detections
                    summary["metrics_error"] = str(e)
        if analytics is not None:
            summary["analytics"] = analytics.summary(elapsed)
        atomic_write_json(paths["summary"], summary, indent=2)
    if summary["status"] == "failed":
        raise UserError(f"{paths['video']}: {summary['error']} (partial outputs kept, see {paths['summary']})")
    return summary
