"""Frame sources: a video file, a folder or glob of images, a ground-truth clip, a camera, a stream.

`open_source(spec, ...)` decodes the first frame before returning, so a missing, unreadable
or empty source fails with one clear line before any output file is created. Frames come
out as RGB uint8 with their index in the source (before stride) and a timestamp.
`prefetch()` moves decoding into a thread with a bounded queue so it overlaps inference.
"""

from __future__ import annotations

import configparser
import glob
import queue
import re
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.common import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


@dataclass
class Frame:
    index: int            # position in the source, 0-based, before stride
    timestamp: float      # seconds from the start of the source
    image: np.ndarray     # HxWx3 uint8 RGB (after resize)
    name: str | None = None  # file name for image folders (how ground truth refers to it)


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _read_seqinfo(path: Path) -> dict:
    """MOT Challenge seqinfo.ini -> {frameRate, seqLength, imWidth, imHeight} (whatever is present)."""
    cp = configparser.ConfigParser()
    try:
        cp.read(path)
    except configparser.Error as e:
        raise UserError(f"{path}: not a valid seqinfo.ini ({str(e).splitlines()[0]})") from None
    out = {}
    if cp.has_section("Sequence"):
        for key in ("frameRate", "seqLength", "imWidth", "imHeight"):
            if cp.has_option("Sequence", key):
                try:
                    out[key] = float(cp.get("Sequence", key))
                except ValueError:
                    raise UserError(f"{path}: {key} is not a number") from None
    return out


def resized_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(w, h) scaled so the longer side is at most `max_side`, both even (H.264 wants even sides)."""
    if not max_side or max(width, height) <= max_side:
        return width, height
    s = max_side / max(width, height)
    return max(2, int(round(width * s / 2)) * 2), max(2, int(round(height * s / 2)) * 2)


class FrameSource:
    """Iterate to get `Frame`s; `skipped` counts unreadable frames met so far."""

    kind = "source"

    def __init__(self, spec: str, stride: int = 1, max_side: int | None = None,
                 max_frames: int | None = None, fps: float | None = None):
        if stride < 1:
            raise UserError(f"source.stride must be >= 1 (got {stride})")
        self.spec = spec
        self.stride = stride
        self.max_side = max_side
        self.max_frames = max_frames
        self.fps_override = fps
        self.skipped = 0
        self.skipped_names: list[str] = []
        self.fps = 30.0
        self.src_width = self.src_height = 0
        self.length: int | None = None      # frames in the source, if known

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames this source yields."""
        return resized_size(self.src_width, self.src_height, self.max_side)

    @property
    def scale(self) -> float:
        """Output width / source width (1.0 without resize)."""
        return self.size[0] / self.src_width if self.src_width else 1.0

    @property
    def out_fps(self) -> float:
        return self.fps / self.stride

    def expected_frames(self) -> int | None:
        if self.length is None:
            return self.max_frames
        n = (self.length + self.stride - 1) // self.stride
        return min(n, self.max_frames) if self.max_frames else n

    def _prepare(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        elif bgr.shape[2] == 4:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_BGRA2BGR)
        w, h = self.size
        if (bgr.shape[1], bgr.shape[0]) != (w, h):
            bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def describe(self) -> dict:
        return {"spec": self.spec, "kind": self.kind, "fps": self.fps, "stride": self.stride,
                "source_width": self.src_width, "source_height": self.src_height,
                "width": self.size[0], "height": self.size[1], "length": self.length}

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        pass


class ImageFolderSource(FrameSource):
    """Images in a folder (natural sort) or matching a glob; unreadable ones are skipped and counted."""

    kind = "images"

    def __init__(self, spec: str, files: list[Path], **kw):
        super().__init__(spec, **kw)
        if not files:
            raise UserError(f"{spec}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) found")
        self.files = files
        self.length = len(files)
        self.fps = float(self.fps_override or 30.0)
        first = None
        for p in files[::self.stride]:  # the size comes from the first frame we will really use
            first = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if first is not None:
                break
        if first is None:
            raise UserError(f"{spec}: none of the {len(files)} image files is readable")
        self.src_height, self.src_width = first.shape[:2]

    def __iter__(self) -> Iterator[Frame]:
        produced = 0
        for i in range(0, len(self.files), self.stride):
            if self.max_frames and produced >= self.max_frames:
                return
            p = self.files[i]
            bgr = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if bgr is None or bgr.shape[:2] != (self.src_height, self.src_width):
                self.skipped += 1
                self.skipped_names.append(p.name)
                why = "unreadable" if bgr is None else f"size {bgr.shape[1]}x{bgr.shape[0]} differs"
                warnings.warn(f"{p}: {why}, frame skipped", stacklevel=2)
                continue
            produced += 1
            yield Frame(i, i / self.fps, self._prepare(bgr), p.name)


class ClipSource(ImageFolderSource):
    """A ground-truth clip folder: images/ + annotations.json and/or gt/gt.txt (+ seqinfo.ini)."""

    kind = "clip"

    def __init__(self, spec: str, root: Path, **kw):
        self.root = root
        files = sorted((p for p in (root / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
                       key=_natural_key)
        seq = _read_seqinfo(root / "seqinfo.ini") if (root / "seqinfo.ini").is_file() else {}
        if kw.get("fps") is None and seq.get("frameRate"):
            kw["fps"] = seq["frameRate"]
        super().__init__(spec, files, **kw)

    @property
    def annotations(self) -> Path | None:
        p = self.root / "annotations.json"
        return p if p.is_file() else None

    @property
    def mot_gt(self) -> Path | None:
        p = self.root / "gt" / "gt.txt"
        return p if p.is_file() else None


class CaptureSource(FrameSource):
    """Anything cv2.VideoCapture opens: a video file, a camera index, a stream URL."""

    def __init__(self, spec: str, target: str | int, kind: str, **kw):
        super().__init__(spec, **kw)
        self.kind = kind
        self.target = target
        self.cap = self._open()
        ok, bgr = self.cap.read()
        if not ok or bgr is None:
            self.cap.release()
            raise UserError(f"{spec}: opened but no frame could be decoded (empty or corrupt {kind})")
        self._first = bgr
        self.src_height, self.src_width = bgr.shape[:2]
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(self.fps_override or (fps if 0 < fps < 1000 else 30.0))
        n = int(self.cap.get(cv2.CAP_PROP_FRAME_COUNT))
        self.length = n if kind == "video" and n > 0 else None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.target, cv2.CAP_ANY if isinstance(self.target, int) else cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            what = {"camera": "camera index", "stream": "stream URL", "video": "video file"}[self.kind]
            raise UserError(f"{self.spec}: cannot open {what} (no OpenCV/FFmpeg backend could read it)")
        return cap

    def __iter__(self) -> Iterator[Frame]:
        live = self.kind in ("camera", "stream")
        bgr, self._first = self._first, None
        if bgr is None:  # iterated a second time: start over
            self.cap.release()
            self.cap = self._open()
            bgr = self._read()
        t0 = time.monotonic()
        produced, i = 0, 0
        while bgr is not None:
            if self.max_frames and produced >= self.max_frames:
                return
            if bgr.shape[:2] != (self.src_height, self.src_width):
                self.skipped += 1
            else:
                produced += 1
                yield Frame(i, self._timestamp(i, t0) if live else i / self.fps, self._prepare(bgr))
            for _ in range(self.stride - 1):  # dropped frames are demuxed, not decoded
                if not self.cap.grab():
                    return
                i += 1
            bgr = self._read()
            i += 1

    def _timestamp(self, i: int, t0: float) -> float:
        """Streams carry media time; cameras only have the wall clock."""
        if self.kind == "stream":
            ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            if ms > 0:
                return ms / 1000.0
        return time.monotonic() - t0

    def _read(self) -> np.ndarray | None:
        ok, bgr = self.cap.read()
        if ok:
            return bgr
        # A failed read before the container's frame count is a damaged frame, not the end:
        # try a few more, counting what we skip.
        pos = int(self.cap.get(cv2.CAP_PROP_POS_FRAMES))
        if self.length is None or pos >= self.length - 1:
            return None
        for _ in range(5):
            self.skipped += 1
            ok, bgr = self.cap.read()
            if ok:
                return bgr
        return None

    def close(self) -> None:
        self.cap.release()


def open_source(spec: str, stride: int = 1, max_side: int | None = None,
                max_frames: int | None = None, fps: float | None = None) -> FrameSource:
    """SOURCE string -> a source whose first frame is known to decode (else UserError)."""
    spec = str(spec).strip()
    kw = dict(stride=stride, max_side=max_side, max_frames=max_frames, fps=fps)
    if not spec:
        raise UserError("--source: empty (expected a video file, image folder or glob, camera index or URL)")
    if spec.isdigit():
        return CaptureSource(spec, int(spec), "camera", **kw)
    if "://" in spec:
        return CaptureSource(spec, spec, "stream", **kw)
    path = Path(spec)
    if path.is_dir():
        if (path / "images").is_dir():
            return ClipSource(spec, path, **kw)
        files = sorted((p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                       key=_natural_key)
        return ImageFolderSource(spec, files, **kw)
    if any(c in spec for c in "*?["):
        files = sorted((Path(p) for p in glob.glob(spec) if Path(p).suffix.lower() in IMAGE_SUFFIXES),
                       key=_natural_key)
        if not files:
            raise UserError(f"{spec}: the glob matches no image files")
        return ImageFolderSource(spec, files, **kw)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageFolderSource(spec, [path], **kw)
        return CaptureSource(spec, str(path), "video", **kw)
    raise UserError(f"{spec}: source not found (expected a video file, image folder or glob, "
                    f"camera index or stream URL)")


# ---------------------------------------------------------------- background decoding

_END = object()


class prefetch:
    """Iterate `iterable` in a daemon thread through a bounded queue (decoding overlaps inference).

    Exceptions raised by the producer re-raise in the consumer; `close()` stops the producer.
    """

    def __init__(self, iterable, maxsize: int = 8):
        self._q: queue.Queue = queue.Queue(maxsize=max(1, maxsize))
        self._stop = threading.Event()
        self._it = iterable
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._it:
                if not self._put(item):
                    return
            self._put(_END)
        except BaseException as e:  # handed to the consumer
            self._put(e)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._q.get()
        if item is _END:
            raise StopIteration
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
