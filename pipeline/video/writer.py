"""The annotated video, drawn and encoded in its own thread so inference never waits on x264."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path

import numpy as np

from pipeline.detections import Detections
from pipeline.draw import draw_detections, put_banner
from pipeline.video.config import OutputConfig
from pipeline.videowriter import VideoWriter


class AnnotatedWriter:
    """`put()` blocks when `queue_size` frames are waiting."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], cfg: OutputConfig, overlay=None):
        self.cfg = cfg
        self.overlay = overlay          # pipeline.analytics Overlay: zones, lines, near-pass links
        self.overlay_seconds = 0.0
        self.video = VideoWriter(path, fps, size, codec=cfg.codec, crf=cfg.crf, preset=cfg.preset,
                                 keyframe_interval=cfg.keyframe_interval, threads=cfg.encoder_threads)
        self.q: queue.Queue = queue.Queue(maxsize=cfg.queue_size)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self.thread.start()

    def put(self, image: np.ndarray, dets: Detections, banner: str, extra=None) -> None:
        while True:
            if self.error is not None:
                raise OSError(f"video writer failed: {self.error}") from self.error
            try:
                self.q.put((image, dets, banner, extra), timeout=0.2)
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
                image, dets, banner, extra = item
                ids = dets.track_ids if dets.track_ids is not None else np.full(len(dets), -1)
                out = draw_detections(image, dets.boxes, dets.labels, dets.scores,
                                      masks=dets.masks if self.cfg.draw_masks else None,
                                      track_ids=[int(i) if i >= 0 else None for i in ids],
                                      alpha=self.cfg.alpha)
                if self.overlay is not None and extra is not None:
                    t0 = time.perf_counter()
                    out = self.overlay.draw(out, extra)
                    self.overlay_seconds += time.perf_counter() - t0
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
