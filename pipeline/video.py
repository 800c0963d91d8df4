"""Detector + tracker on video: annotated H.264 video, per-frame JSONL, summary, optional scoring.

    python -m pipeline.video --checkpoint CKPT --source SOURCE --out OUT.mp4 \
        [--config configs/video.yaml] [key=value ...]

SOURCE: a video file, a folder or glob of frames, a ground-truth clip folder (images/ +
annotations.json / gt/gt.txt, then the run is scored), a camera index or a stream URL.
CKPT: a checkpoint of this project (.pt) or an ONNX export of one (.onnx).

Three threads overlap: the reader decodes (sources.prefetch), the main thread runs batched
inference and tracking and writes OUT.jsonl line by line, the writer draws and encodes.
Ctrl-C / SIGTERM stop cleanly: frames already inferred are drawn, the video is finalised
and the summary says "interrupted". A kill -9 still leaves a playable (fragmented) MP4 and
a JSONL whose lines are all complete except perhaps the last.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from pipeline.common import (
    CLASS_NAMES,
    StrictModel,
    UserError,
    atomic_write_json,
    atomic_write_text,
    config_to_dict,
    config_to_yaml,
    load_config,
    package_versions,
    run_cli,
    sha256_file,
)
from pipeline.draw import draw_detections, put_banner
from pipeline.sources import ClipSource, Frame, FrameSource, open_source, prefetch
from pipeline.tracking import MultiClassTracker, TrackingConfig
from pipeline.videowriter import VideoWriter, check_output_path

# ---------------------------------------------------------------- config


class InferenceConfig(StrictModel):
    score_threshold: float = Field(0.3, ge=0, le=1)   # detections below are dropped before tracking
    mask_threshold: float = Field(0.5, gt=0, lt=1)
    batch_size: int = Field(2, ge=1)
    device: str = "auto"          # auto | cpu | cuda | cuda:N
    half: bool = True             # fp16 autocast on CUDA; ignored on CPU
    threads: int | None = Field(None, ge=1)   # torch / onnxruntime CPU threads (None: library default)
    min_size: int | None = Field(None, ge=32)  # override the checkpoint's test-time resize
    max_size: int | None = Field(None, ge=32)
    # RPN proposals kept per image at test time (None: torchvision's 1000). On CPU the box head
    # over the proposals dominates; 300 measured ~4x faster per frame at 640x480.
    rpn_post_nms_top_n: int | None = Field(None, ge=1)


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
    model: InferenceConfig = InferenceConfig()
    source: SourceConfig = SourceConfig()
    tracking: TrackingConfig = TrackingConfig()
    output: OutputConfig = OutputConfig()
    scoring: ScoringConfig = ScoringConfig()


def output_paths(out: Path) -> dict[str, Path]:
    stem = out.with_suffix("")
    return {"video": out, "jsonl": Path(f"{stem}.jsonl"), "summary": Path(f"{stem}.summary.json"),
            "mot": Path(f"{stem}.mot.txt"), "config": Path(f"{stem}.config.yaml")}


# ---------------------------------------------------------------- predictors

class TorchPredictor:
    """Batched torchvision Mask R-CNN: RGB uint8 frames -> dicts of numpy arrays (boxes xyxy,
    labels, scores, masks as HxW bool)."""

    def __init__(self, model, device, half: bool, mask_threshold: float):
        import torch

        self.torch = torch
        self.model = model
        self.device = device
        self.half = half and device.type == "cuda"
        self.mask_threshold = mask_threshold
        self.name = f"torch {device}{' fp16' if self.half else ''}"

    def __call__(self, images: Sequence[np.ndarray]) -> list[dict]:
        torch = self.torch
        tensors = [torch.from_numpy(im).to(self.device, non_blocking=True).permute(2, 0, 1).float().div_(255)
                   for im in images]
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=self.half):
            outs = self.model(tensors)
        res = []
        for o in outs:
            masks = o["masks"][:, 0] > self.mask_threshold if "masks" in o else None
            res.append({"boxes": o["boxes"].float().cpu().numpy(), "labels": o["labels"].cpu().numpy(),
                        "scores": o["scores"].float().cpu().numpy(),
                        "masks": None if masks is None else masks.cpu().numpy()})
        return res


def load_predictor(checkpoint: str | Path, cfg: InferenceConfig):
    """A .pt checkpoint -> TorchPredictor; a .onnx file -> export.OnnxPredictor (same interface)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise UserError(f"{checkpoint}: checkpoint not found")
    if checkpoint.suffix.lower() == ".onnx":
        from pipeline.export import OnnxPredictor

        baked = [k for k in ("min_size", "max_size", "rpn_post_nms_top_n") if getattr(cfg, k) is not None]
        if baked:
            warnings.warn(f"model.{', model.'.join(baked)} ignored for {checkpoint.name}: an ONNX graph has "
                          f"them baked in (set them when running pipeline.export)", stacklevel=2)

        return OnnxPredictor(checkpoint, device=cfg.device, mask_threshold=cfg.mask_threshold,
                             score_threshold=cfg.score_threshold, threads=cfg.threads)
    import torch

    from pipeline.model import model_from_checkpoint, set_inference_options

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(cfg.device)
        except RuntimeError:
            raise UserError(f"model.device: {cfg.device!r} is not a torch device (auto, cpu, cuda, cuda:N)") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"model.device={cfg.device} but CUDA is not available here (use auto or cpu)")
    model, _ = model_from_checkpoint(checkpoint, device=device)
    # Fewer low-score boxes means fewer masks pasted at full resolution: the costly part on CPU.
    set_inference_options(model, score_threshold=cfg.score_threshold, min_size=cfg.min_size,
                          max_size=cfg.max_size, rpn_post_nms_top_n=cfg.rpn_post_nms_top_n)
    return TorchPredictor(model, device, cfg.half, cfg.mask_threshold)


# ---------------------------------------------------------------- per-frame records

def rle_encode(mask: np.ndarray) -> dict:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def frame_record(frame: Frame, pred: dict, track_ids: np.ndarray, with_masks: bool) -> dict:
    dets = []
    for i in range(len(pred["boxes"])):
        label = int(pred["labels"][i])
        d = {"box": [round(float(v), 2) for v in pred["boxes"][i]],
             "score": round(float(pred["scores"][i]), 4),
             "label": label, "class": CLASS_NAMES[label] if 0 <= label < len(CLASS_NAMES) else str(label),
             "track_id": int(track_ids[i]) if track_ids[i] >= 0 else None}
        if with_masks and pred.get("masks") is not None:
            d["mask"] = rle_encode(pred["masks"][i])
        dets.append(d)
    return {"type": "frame", "frame_index": frame.index, "timestamp": round(frame.timestamp, 4),
            "file_name": frame.name, "detections": dets}


def keep_above(pred: dict, threshold: float) -> dict:
    keep = pred["scores"] >= threshold
    return {k: (v[keep] if v is not None else None) for k, v in pred.items()}


# ---------------------------------------------------------------- writer thread

class AnnotatedWriter:
    """Draws and encodes in its own thread; `put()` blocks when `queue_size` frames are waiting."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], cfg: OutputConfig):
        self.cfg = cfg
        self.video = VideoWriter(path, fps, size, codec=cfg.codec, crf=cfg.crf, preset=cfg.preset,
                                 keyframe_interval=cfg.keyframe_interval, threads=cfg.encoder_threads)
        self.q: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self.thread.start()

    def put(self, image: np.ndarray, pred: dict, track_ids: np.ndarray, banner: str) -> None:
        while True:
            if self.error is not None:
                raise OSError(f"video writer failed: {self.error}") from self.error
            try:
                self.q.put((image, pred, track_ids, banner), timeout=0.2)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is not None:
                continue  # keep draining so put() never blocks forever
            try:
                image, pred, ids, banner = item
                out = draw_detections(image, pred["boxes"], pred["labels"], pred["scores"],
                                      masks=pred["masks"] if self.cfg.draw_masks else None,
                                      track_ids=[int(i) if i >= 0 else None for i in ids],
                                      alpha=self.cfg.alpha)
                if self.cfg.overlay and banner:
                    out = put_banner(out, banner)
                self.video.write(out)
            except BaseException as e:  # reported to the main thread on its next put()
                self.error = e

    def close(self) -> dict:
        self.q.put(None)
        self.thread.join()
        info = self.video.close()
        if self.error is not None:
            raise OSError(f"video writer failed: {self.error}") from self.error
        return info


# ---------------------------------------------------------------- scoring

def _scaled_prediction(pred: dict, scale: float, src_size: tuple[int, int]) -> dict:
    """Processed-frame coordinates -> source coordinates (ground truth lives there)."""
    if scale == 1.0:
        return pred
    w, h = src_size
    masks = pred.get("masks")
    if masks is not None and len(masks):
        masks = np.stack([cv2.resize(m.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
                          for m in masks])
    return {**pred, "boxes": pred["boxes"] / scale, "masks": masks}


class Scorer:
    """Collects COCO results and MOT rows per processed frame; scores them at the end."""

    def __init__(self, source: ClipSource, cfg: ScoringConfig):
        from pipeline.coco_eval import load_ground_truth

        self.source = source
        self.cfg = cfg
        self.gt = load_ground_truth(source.annotations) if source.annotations else None
        images = self.gt.coco["images"] if self.gt else []
        self.name_to_id = {im["file_name"]: im["id"] for im in images}
        # gt.txt frame numbers are frame_index + 1; without frame_index, the position in images/
        self.frame_of_name = {im["file_name"]: im["frame_index"] for im in images if "frame_index" in im}
        self.results: list[dict] = []
        self.mot_rows: list[list[float]] = []
        self.frames: list[int] = []
        self.image_ids: list[int] = []

    def add(self, frame: Frame, pred: dict, track_ids: np.ndarray) -> None:
        pred = _scaled_prediction(pred, self.source.scale, (self.source.src_width, self.source.src_height))
        mot_frame = self.frame_of_name.get(frame.name, frame.index) + 1
        self.frames.append(mot_frame)
        image_id = self.name_to_id.get(frame.name)
        if image_id is not None:
            self.image_ids.append(image_id)
        for i in range(len(pred["boxes"])):
            x0, y0, x1, y1 = (float(v) for v in pred["boxes"][i])
            label, score = int(pred["labels"][i]), float(pred["scores"][i])
            if image_id is not None:
                r = {"image_id": image_id, "category_id": label, "score": score,
                     "bbox": [x0, y0, x1 - x0, y1 - y0]}
                if pred.get("masks") is not None:
                    r["segmentation"] = rle_encode(pred["masks"][i])
                self.results.append(r)
            if track_ids[i] >= 0:
                self.mot_rows.append([mot_frame, int(track_ids[i]), x0, y0, x1 - x0, y1 - y0,
                                      score, label, 1.0])

    def gt_mot_rows(self) -> np.ndarray | None:
        from pipeline.mot import read_mot

        if self.source.mot_gt:
            return read_mot(self.source.mot_gt)
        if self.gt is None:
            return None
        # annotations.json with track ids is enough: rebuild the MOT rows from it
        frame_of = {im["id"]: im.get("frame_index") for im in self.gt.coco["images"]}
        rows = []
        for a in self.gt.coco["annotations"]:
            if a.get("track_id") is None or frame_of.get(a["image_id"]) is None:
                continue
            x, y, w, h = a["bbox"]
            rows.append([frame_of[a["image_id"]] + 1, a["track_id"], x, y, w, h,
                         0 if a.get("iscrowd") else 1, a["category_id"], a.get("visibility", 1.0)])
        return np.asarray(rows, dtype=np.float64).reshape(-1, 9) if rows else None

    def score(self) -> dict:
        from pipeline.coco_eval import evaluate_coco
        from pipeline.mot import evaluate_tracking

        out: dict = {}
        if self.gt is not None and self.image_ids:
            gt = self.gt.subset(sorted(set(self.image_ids)))
            types = tuple(t for t in self.cfg.iou_types if t != "segm" or gt.has_masks)
            if types and gt.present_category_ids:
                res = evaluate_coco(gt, self.results, types)
                out["detection"] = {t: {k: v for k, v in r.to_json().items() if k != "summary_text"}
                                    for t, r in res.items()}
                out["detection"]["images"] = len(gt.image_ids)
        gt_rows = self.gt_mot_rows()
        if gt_rows is not None and len(gt_rows):
            out["tracking"] = evaluate_tracking(gt_rows, np.asarray(self.mot_rows).reshape(-1, 9), self.frames)
        return out


# ---------------------------------------------------------------- the run

def batched(frames: Iterator[Frame], n: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for f in frames:
        batch.append(f)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


class GracefulStop:
    """First Ctrl-C / SIGTERM: finish the batch in flight, then stop (video, JSONL and summary then
    hold the same frames). A second one interrupts at once."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, object] = {}

    def _handle(self, signum, _frame):
        if self.requested:
            raise KeyboardInterrupt(f"signal {signum}")
        self.requested = True
        print(f"\n{signal.Signals(signum).name}: stopping after the current batch "
              f"(again to stop at once)", file=sys.stderr, flush=True)

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():  # signals only reach the main thread
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run(cfg: VideoConfig, checkpoint: str | Path, source_spec: str, out: str | Path,
        quiet: bool = False, predictor=None) -> dict:
    """The whole job; returns the summary (also written to OUT.summary.json).

    `predictor` (optional) is one already loaded from `checkpoint` (benchmarks reuse a warm one).
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
        predictor = predictor or load_predictor(checkpoint, cfg.model)
        ckpt_info = {"path": str(checkpoint), "sha256": sha256_file(checkpoint)}
        # nothing is written before this point: bad input leaves no half-made outputs
        paths["summary"].unlink(missing_ok=True)  # a stale summary must not vouch for a new video
        atomic_write_text(paths["config"], config_to_yaml(cfg))
        return _process(cfg, src, predictor, ckpt_info, scorer, paths, quiet, tqdm)
    finally:
        src.close()


def _process(cfg, src: FrameSource, predictor, ckpt_info: dict, scorer: Scorer | None,
             paths: dict[str, Path], quiet: bool, tqdm) -> dict:
    tracker = MultiClassTracker(cfg.tracking, src.out_fps)
    jsonl = open(paths["jsonl"], "w", buffering=1)  # line-buffered: a kill loses at most one line
    writer = AnnotatedWriter(paths["video"], src.out_fps, src.size, cfg.output)
    header = {"type": "header", "checkpoint": ckpt_info, "predictor": predictor.name,
              "source": src.describe(), "fps": src.out_fps, "width": src.size[0], "height": src.size[1],
              "classes": CLASS_NAMES, "coordinates": "pixels of the processed frame (width x height)"}
    counts: Counter = Counter()
    tracks: dict[str, set] = {n: set() for n in CLASS_NAMES[1:]}
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
            preds = predictor([f.image for f in batch])
            infer_s += time.perf_counter() - t0
            # the end-to-end rate (not the model's alone): what a viewer of the video wants to know
            fps_e2e = (frames_done + len(batch)) / max(time.perf_counter() - t_start, 1e-9)
            for frame, pred in zip(batch, preds, strict=True):
                pred = keep_above(pred, cfg.model.score_threshold)
                ids = tracker.update(pred["boxes"], pred["scores"], pred["labels"])
                jsonl.write(json.dumps(frame_record(frame, pred, ids, cfg.output.jsonl_masks)) + "\n")
                frame_counts = Counter(CLASS_NAMES[int(lab)] for lab in pred["labels"])
                counts.update(frame_counts)
                for lab, tid in zip(pred["labels"], ids, strict=True):
                    if tid >= 0:
                        tracks[CLASS_NAMES[int(lab)]].add(int(tid))
                banner = f"{fps_e2e:.1f} fps  " + "  ".join(f"{n} {frame_counts.get(n, 0)}" for n in CLASS_NAMES[1:])
                writer.put(frame.image, pred, ids, banner)
                if scorer is not None:
                    scorer.add(frame, pred, ids)
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
        jsonl.close()
        stop.__exit__()
        try:
            video_info = writer.close()
        except OSError as e:
            if status == "complete":
                status, error = "failed", str(e)
            video_info = {"path": str(paths["video"]), "error": str(e)}
        elapsed = time.perf_counter() - t_start
        summary = {"status": status, "error": error, "checkpoint": ckpt_info, "predictor": predictor.name,
                   "source": src.describe(), "frames": frames_done, "skipped_frames": src.skipped,
                   "skipped_files": src.skipped_names[:50], "seconds": round(elapsed, 3),
                   "fps": round(frames_done / elapsed, 3) if elapsed > 0 else None,
                   "inference_seconds": round(infer_s, 3),  # the rest is decode/track/draw/encode not hidden
                   "per_class": {n: {"detections": counts.get(n, 0), "tracks": len(tracks[n])}
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
        atomic_write_json(paths["summary"], summary, indent=2)
    if summary["status"] == "failed":
        raise UserError(f"{paths['video']}: {summary['error']} (partial outputs kept, see {paths['summary']})")
    return summary


def summary_line(s: dict) -> str:
    cls = ", ".join(f"{n} {v['detections']} dets/{v['tracks']} tracks" for n, v in s["per_class"].items())
    line = (f"video {s['status']}: {s['frames']} frames in {s['seconds']:.1f} s ({s['fps'] or 0:.2f} fps), "
            f"{cls}; skipped {s['skipped_frames']} -> {s['outputs']['video']}")
    m = s.get("metrics", {})
    parts = []
    for t, r in m.get("detection", {}).items():
        if isinstance(r, dict) and r.get("AP") is not None:
            parts.append(f"{t} AP {r['AP']:.3f}")
    if "tracking" in m:
        c = m["tracking"]["combined"]
        parts.append(f"HOTA {c['HOTA']:.3f} MOTA {c['MOTA']:.3f} IDF1 {c['IDF1']:.3f}")
    return line + (f" [{', '.join(parts)}]" if parts else "")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.video", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=None, help="YAML config (default: built-in defaults)")
    ap.add_argument("--checkpoint", required=True, help="checkpoint .pt of this project or an .onnx export")
    ap.add_argument("--source", required=True,
                    help="video file, image folder or glob, ground-truth clip folder, camera index or URL")
    ap.add_argument("--out", required=True, help="annotated video (.mp4/.mkv/.mov H.264, .avi MJPG)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. source.stride=2)")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, VideoConfig, args.overrides)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*frame skipped")  # counted in the summary instead
        summary = run(cfg, args.checkpoint, args.source, args.out, quiet=args.quiet)
    print(summary_line(summary))
    return 130 if summary["status"] == "interrupted" else 0


if __name__ == "__main__":
    run_cli(main)
