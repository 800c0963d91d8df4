"""The resumable frame job of blender.render and blender.clip: claim the output folder,
render the frames still missing, merge the parts into annotations.json.

parts/NNNNNN.json are the commit points (blender.writer): a killed job loses at most the
frame in flight, and a rerun renders only what is missing.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from blender import writer
from blender.frames import Frame
from pipeline.common import atomic_write_text

FrameFn = Callable[[int], Frame]
# a frame-function factory: config -> (frame function, close); the real one starts Blender
FrameFactory = Callable[..., tuple[FrameFn, Callable[[], None]]]


@dataclass
class JobRun:
    """What one run of a job rendered."""

    rendered: list[int]
    annotations: list[dict] = field(default_factory=list)
    negatives: int = 0
    stage_seconds: Counter = field(default_factory=Counter)
    elapsed: float = 0.0

    def per_frame(self) -> str:
        """', 4.20 s/frame (build 0.50, render 3.10, annotate 0.60)', or '' when nothing rendered."""
        if not self.rendered:
            return ""
        n = len(self.rendered)
        stages = ", ".join(f"{k} {v / n:.2f}" for k, v in self.stage_seconds.items())
        return f", {self.elapsed / n:.2f} s/frame" + (f" ({stages})" if stages else "")


class FrameJob:
    """One output folder of `num_images` frames, written by any number of runs and shards.

    `manifest_config` is the resolved config with a `dataset` section (name, seed,
    num_images); a folder holding another config hash is refused before anything is written.
    """

    def __init__(self, out: Path, manifest_config: dict, cfg_hash: str, shard: tuple[int, int] = (1, 1)):
        self.out, self.config, self.hash, self.shard = Path(out), manifest_config, cfg_hash, shard
        self.num_images = int(manifest_config["dataset"]["num_images"])
        self.old_manifest = writer.check_folder(self.out, cfg_hash)
        # the Cycles device of the process that writes the manifest (kept from the old
        # manifest when this process renders nothing, e.g. --merge-only)
        self.device = (self.old_manifest or {}).get("device")

    def missing(self, indices: Iterable[int] | None = None) -> list[int]:
        """Indices (default: all) whose image and part are not both on disk."""
        done = writer.done_indices(self.out)
        return [i for i in (range(self.num_images) if indices is None else indices) if i not in done]

    def run(self, todo: list[int], factory: FrameFactory, cfg, config_yaml: str, desc: str, unit: str,
            meta_extra: dict | None = None) -> JobRun:
        """Render `todo` with the frame function `factory(cfg)` makes, committing each frame."""
        # set up the renderer before claiming the folder: a missing asset leaves nothing behind
        frame, close = factory(cfg) if todo else (None, lambda: None)
        if getattr(frame, "device", None) is not None:
            self.device = frame.device.manifest()
        result = JobRun(rendered=list(todo))
        t_start = time.perf_counter()
        if self.old_manifest is None or self.old_manifest.get("num_images") != self.num_images:
            self._write_manifest(complete=False)
        atomic_write_text(self.out / "config.yaml", config_yaml)
        if todo:
            try:
                for index in tqdm(todo, desc=desc, unit=unit, dynamic_ncols=True):
                    rgb, extras, anns, meta = frame(index)
                    meta = {**meta, **(meta_extra or {})}
                    writer.write_image(self.out, index, rgb)
                    image = writer.image_record(index, rgb.shape[1], rgb.shape[0], **extras)
                    writer.write_part(self.out, index, image, anns, meta)
                    result.annotations.extend(anns)
                    result.stage_seconds.update(meta.get("seconds", {}))
                    result.negatives += int(bool(extras.get("negative")))
            finally:
                close()
        result.elapsed = time.perf_counter() - t_start
        return result

    def merge(self, info: dict) -> dict:
        """All parts -> annotations.json (call once `missing()` is empty); returns the COCO dict."""
        coco = writer.merge(self.out, range(self.num_images), info)
        writer.write_annotations(self.out, coco)
        return coco

    def complete(self) -> None:
        """Mark the folder finished: written last, after every other output of the job."""
        self._write_manifest(complete=True)

    def _write_manifest(self, complete: bool) -> None:
        extra = {"device": self.device, "complete": complete}
        writer.write_manifest(self.out, writer.manifest(self.config, self.hash, self.shard, extra))
