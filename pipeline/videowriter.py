"""Annotated-video encoding: H.264 MP4 through the ffmpeg binary of `imageio-ffmpeg`, cv2 as fallback.

Why this shape:
- Browsers and common players want H.264; the opencv wheels only encode mp4v/MJPG. The PyPI
  package imageio-ffmpeg ships a static ffmpeg with libx264, so we pipe raw RGB frames into it.
- The MP4 is fragmented (`frag_keyframe+empty_moov`) with a keyframe every `keyframe_interval`
  frames: a process killed with -9 still leaves a file that plays up to its last fragment.
- ffmpeg runs in its own session, so a Ctrl-C in the terminal reaches only us; we then close
  its stdin and it finalises the file itself. If we die, its stdin closes and it finalises too.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np

from pipeline.common import UserError

FFMPEG_SUFFIXES = {".mp4", ".mkv", ".mov"}
CV2_FOURCC = {".mp4": "mp4v", ".avi": "MJPG"}


def ffmpeg_exe() -> str | None:
    """Path of the ffmpeg binary shipped by imageio-ffmpeg (or on PATH), None if there is none."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # package missing or its binary unusable on this platform
        return shutil.which("ffmpeg")


def _h264_encoder(exe: str) -> str | None:
    try:
        out = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for name in ("libx264", "libopenh264"):  # x264 is better per bit; openh264 is the BSD fallback
        if f" {name} " in out:
            return name
    return None


def check_output_path(path: str | Path) -> Path:
    """Fail early (before any work) on an output path we could not write or encode."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FFMPEG_SUFFIXES | set(CV2_FOURCC):
        raise UserError(f"{path}: unsupported video suffix {suffix or '(none)'!r}; "
                        f"expected one of {sorted(FFMPEG_SUFFIXES | set(CV2_FOURCC))}")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, expected a video file name")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{path.parent}: cannot create output folder ({e.strerror})") from None
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as e:
        raise UserError(f"{path.parent}: output folder is not writable ({e.strerror})") from None
    return path


class VideoWriter:
    """`write(rgb)` frames of one size, `close()` -> facts about the file (frames, codec, encoder).

    codec: "h264" (ffmpeg; falls back to cv2 mp4v with a warning if no H.264 encoder is found)
    or "mp4v" (cv2). `.avi` always goes through cv2 as MJPG.
    """

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int], codec: str = "h264",
                 crf: int = 23, preset: str = "veryfast", keyframe_interval: int | None = None,
                 threads: int = 0):
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self.width, self.height = int(size[0]), int(size[1])
        self.frames = 0
        self.encoder = ""
        self.warning: str | None = None
        self._proc: subprocess.Popen | None = None
        self._cv2: cv2.VideoWriter | None = None
        self._stderr = None
        suffix = self.path.suffix.lower()
        if codec not in ("h264", "mp4v"):
            raise UserError(f"output.codec: {codec!r} is not one of ['h264', 'mp4v']")
        exe = ffmpeg_exe() if codec == "h264" and suffix in FFMPEG_SUFFIXES else None
        enc = _h264_encoder(exe) if exe else None
        if enc:
            self._open_ffmpeg(exe, enc, crf, preset, keyframe_interval, threads)
        else:
            if codec == "h264" and suffix in FFMPEG_SUFFIXES:
                self.warning = (f"no H.264 encoder found (imageio-ffmpeg missing or without libx264/"
                                f"libopenh264): writing {self.path.name} as mp4v, which browsers do not play")
                warnings.warn(self.warning, stacklevel=2)
            self._open_cv2(suffix)

    # ------------------------------------------------------------ backends

    def _open_ffmpeg(self, exe: str, enc: str, crf: int, preset: str, gop: int | None, threads: int):
        gop = gop or max(1, int(round(self.fps)))
        cmd = [exe, "-hide_banner", "-loglevel", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
               "-r", f"{self.fps:.6g}", "-i", "-", "-an",
               # yuv420p needs even sides; pad by one pixel rather than fail on odd frames
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
               "-c:v", enc, "-pix_fmt", "yuv420p", "-g", str(gop)]
        if enc == "libx264":
            cmd += ["-preset", preset, "-crf", str(crf), "-threads", str(threads)]
        else:
            cmd += ["-b:v", f"{max(1, self.width * self.height * 4 // 1000)}k"]
        cmd += ["-movflags", "+frag_keyframe+empty_moov+default_base_moof", "-flush_packets", "1",
                str(self.path)]
        self._stderr = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                      stderr=self._stderr, start_new_session=True)
        self.encoder = f"ffmpeg {enc}"

    def _open_cv2(self, suffix: str):
        fourcc = CV2_FOURCC.get(suffix, "mp4v")
        self._cv2 = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*fourcc), self.fps,
                                    (self.width, self.height))
        if not self._cv2.isOpened():
            raise UserError(f"{self.path}: cv2 cannot open a {fourcc} video writer here")
        self.encoder = f"cv2 {fourcc}"

    # ------------------------------------------------------------ API

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"VideoWriter: expected {self.height}x{self.width}x3 uint8, got "
                             f"{rgb.dtype} {rgb.shape}")
        if self._proc is not None:
            try:
                self._proc.stdin.write(np.ascontiguousarray(rgb).tobytes())
            except BrokenPipeError:
                raise OSError(f"ffmpeg stopped while writing {self.path}: {self._ffmpeg_error()}") from None
        else:
            self._cv2.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> dict:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            rc = proc.wait()
            err = self._ffmpeg_error()
            self._stderr.close()
            if rc != 0:
                raise OSError(f"ffmpeg failed on {self.path} (exit {rc}): {err}")
        elif self._cv2 is not None:
            self._cv2.release()
            self._cv2 = None
        return {"path": str(self.path), "frames": self.frames, "encoder": self.encoder,
                "fps": self.fps, "width": self.width, "height": self.height,
                "warning": self.warning}

    def abort(self) -> None:
        """Stop without caring about errors (used while unwinding another exception)."""
        proc = self._proc
        try:
            self.close()
        except Exception:
            if proc is not None and proc.poll() is None:
                proc.kill()

    def _ffmpeg_error(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        return text.splitlines()[-1] if text else "(no message)"

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def count_frames(path: str | Path) -> int:
    """Frames cv2 can actually decode from `path` (not the container's claim)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    try:
        while cap.isOpened():
            ok, _ = cap.read()
            if not ok:
                break
            n += 1
    finally:
        cap.release()
    return n
