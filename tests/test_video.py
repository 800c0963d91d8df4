"""Frame sources, the video writer (H.264, kill-safety) and the video CLI end to end."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers_clip import make_clip, save_tiny_checkpoint

from pipeline import video
from pipeline.common import UserError
from pipeline.sources import open_source, prefetch, resized_size
from pipeline.videowriter import VideoWriter, check_output_path, count_frames

ROOT = Path(__file__).resolve().parents[1]
FAST = ["model.threads=1", "model.batch_size=2", "tracking.activation_threshold=0.2"]


def moving_frames(n: int, w: int = 96, h: int = 64) -> list[np.ndarray]:
    out = []
    for i in range(n):
        f = np.full((h, w, 3), 40, np.uint8)
        f[10:30, 4 + 4 * i: 20 + 4 * i] = (250, 120, 20)
        out.append(f)
    return out


def jsonl_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------- writer

def test_h264_writer_round_trip(tmp_path):
    frames = moving_frames(12, w=97, h=63)  # odd sides: padded to even for yuv420p
    w = VideoWriter(tmp_path / "a.mp4", 10, (97, 63))
    for f in frames:
        w.write(f)
    info = w.close()
    assert info["frames"] == 12 and "264" in info["encoder"]
    cap = cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert cap.get(cv2.CAP_PROP_FOURCC) and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 98
    ok, first = cap.read()
    cap.release()
    assert ok and count_frames(tmp_path / "a.mp4") == 12
    # H.264 is lossy but a flat frame with one box comes back close to what went in
    assert np.abs(cv2.cvtColor(first, cv2.COLOR_BGR2RGB)[:63, :97].astype(int) - frames[0]).mean() < 6
    with pytest.raises(ValueError, match="expected 63x97x3"):
        VideoWriter(tmp_path / "b.mp4", 10, (97, 63)).write(frames[0][:10])


def test_mp4v_and_avi_fallbacks(tmp_path):
    for name, codec in (("m.mp4", "mp4v"), ("m.avi", "h264")):
        w = VideoWriter(tmp_path / name, 10, (96, 64), codec=codec)
        for f in moving_frames(5):
            w.write(f)
        assert w.close()["encoder"].startswith("cv2")
        assert count_frames(tmp_path / name) == 5


def test_no_h264_encoder_falls_back_to_mp4v_with_warning(tmp_path, monkeypatch):
    import pipeline.videowriter as vw

    monkeypatch.setattr(vw, "ffmpeg_exe", lambda: None)
    with pytest.warns(UserWarning, match="no H.264 encoder found"):
        w = VideoWriter(tmp_path / "f.mp4", 10, (96, 64))
    for f in moving_frames(3):
        w.write(f)
    info = w.close()
    assert info["encoder"] == "cv2 mp4v" and "browsers" in info["warning"]
    assert count_frames(tmp_path / "f.mp4") == 3


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    from pipeline.videowriter import VideoWriter
    w = VideoWriter(sys.argv[1], 10, (160, 120), keyframe_interval=5)
    rng = np.random.default_rng(0)
    for i in range(40):
        w.write(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    w._proc.stdin.flush()
    if sys.argv[2] == "both":  # the encoder dies too: only the fragments on disk remain
        time.sleep(1.0)
        os.kill(w._proc.pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("who", ["writer", "both"])
def test_killed_writer_leaves_playable_mp4(tmp_path, who):
    script = tmp_path / "kill.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT)))
    out = tmp_path / "k.mp4"
    r = subprocess.run([sys.executable, str(script), str(out), who], timeout=60)
    assert r.returncode == -signal.SIGKILL
    deadline = time.time() + 10
    n = 0
    while time.time() < deadline:  # the orphaned encoder finishes on its own
        n = count_frames(out)
        if who == "both" or n == 40:
            break
        time.sleep(0.2)
    if who == "writer":
        assert n == 40
    else:
        assert 5 <= n < 40  # whole fragments up to the encoder's lookahead


def test_output_path_errors(tmp_path):
    with pytest.raises(UserError, match="unsupported video suffix"):
        check_output_path(tmp_path / "x.gif")
    (tmp_path / "d.mp4").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        check_output_path(tmp_path / "d.mp4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot create output folder"):
        check_output_path(tmp_path / "file" / "out.mp4")


# ---------------------------------------------------------------- sources

@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("vid") / "moving.mp4"
    w = VideoWriter(p, 20, (96, 64))
    for f in moving_frames(10):
        w.write(f)
    w.close()
    return p


def test_video_source_stride_resize_and_prefetch(video_file):
    src = open_source(str(video_file), stride=3, max_side=48)
    assert src.kind == "video" and src.fps == pytest.approx(20)
    assert (src.src_width, src.src_height) == (96, 64) and src.size == (48, 32)
    frames = list(prefetch(iter(src), maxsize=2))
    assert [f.index for f in frames] == [0, 3, 6, 9]
    assert [f.timestamp for f in frames] == pytest.approx([0, 0.15, 0.3, 0.45])
    assert frames[0].image.shape == (32, 48, 3) and frames[0].image.dtype == np.uint8
    assert src.expected_frames() == 4 and src.out_fps == pytest.approx(20 / 3)
    # RGB order: the orange box is red-heavy
    r, g, b = frames[0].image[10, 6].astype(int)
    assert r > 200 and b < 80
    assert len(list(open_source(str(video_file), max_frames=3))) == 3


def test_stream_url_source(video_file):
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(video_file.parent))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = open_source(f"http://127.0.0.1:{server.server_port}/{video_file.name}")
        frames = list(src)
    finally:
        server.shutdown()
    assert src.kind == "stream" and len(frames) == 10 and frames[0].image.shape == (64, 96, 3)
    assert frames[-1].timestamp == pytest.approx(9 / 20, abs=0.06)  # media time, not the wall clock


def test_folder_glob_and_corrupt_frames(tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    for i, f in enumerate(moving_frames(5)):
        cv2.imwrite(str(d / f"f{i}.png"), f)
    (d / "f2.png").write_bytes(b"\x89PNG not really")
    (d / "notes.txt").write_text("ignored")
    src = open_source(str(d), fps=5)
    with pytest.warns(UserWarning, match="f2.png: unreadable, frame skipped"):
        frames = list(src)
    assert [f.name for f in frames] == ["f0.png", "f1.png", "f3.png", "f4.png"]
    assert src.skipped == 1 and src.skipped_names == ["f2.png"]
    assert frames[2].index == 3 and frames[2].timestamp == pytest.approx(0.6)
    g = open_source(str(d / "f[01].png"))
    assert [f.name for f in g] == ["f0.png", "f1.png"]
    assert len(list(open_source(str(d / "f4.png")))) == 1


def test_source_errors(tmp_path):
    with pytest.raises(UserError, match="source not found"):
        open_source(str(tmp_path / "nope.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no image files"):
        open_source(str(tmp_path / "empty"))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"junk")
    with pytest.raises(UserError, match="none of the 1 image files is readable"):
        open_source(str(tmp_path / "bad"))
    (tmp_path / "junk.mp4").write_bytes(os.urandom(2048))
    with pytest.raises(UserError, match="junk.mp4"):
        open_source(str(tmp_path / "junk.mp4"))
    with pytest.raises(UserError, match="glob matches no image"):
        open_source(str(tmp_path / "*.png"))
    with pytest.raises(UserError, match="cannot open camera index"):
        open_source("97")
    with pytest.raises(UserError, match="stride"):
        open_source(str(tmp_path / "bad"), stride=0)


def test_prefetch_forwards_errors():
    def gen():
        yield 1
        raise RuntimeError("decoder broke")
    it = prefetch(gen(), maxsize=1)
    assert next(it) == 1
    with pytest.raises(RuntimeError, match="decoder broke"):
        next(it)


def test_resized_size_is_even():
    assert resized_size(768, 576, 640) == (640, 480)
    assert resized_size(101, 51, 50) == (50, 26)
    assert resized_size(100, 50, None) == (100, 50)


# ---------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("run") / "best.pt", min_size=64, max_size=96, max_dets=8)


def test_config_errors_are_one_line(tmp_path, checkpoint):
    with pytest.raises(UserError, match=r"unknown key 'source.strid'; did you mean 'stride'"):
        video.main(["--checkpoint", str(checkpoint), "--source", "x", "--out", str(tmp_path / "o.mp4"),
                    "source.strid=2"])


def test_predictor_applies_inference_overrides(checkpoint):
    cfg = video.VideoInference(score_threshold=0.4, min_size=80, max_size=120, rpn_post_nms_top_n=50,
                                threads=1, mask_threshold=0.6, nms_threshold=0.3)
    p = video.load_predictor(checkpoint, cfg)
    m = p.model
    assert m.rpn.post_nms_top_n() == 50 and not m.training
    assert m.transform.min_size == (80,) and m.transform.max_size == 120
    assert m.roi_heads.score_thresh == 0.4 and p.mask_threshold == 0.6 and m.roi_heads.nms_thresh == 0.3
    (out,) = p([np.zeros((70, 90, 3), np.uint8)])
    assert out.masks.dtype == bool and out.masks.shape[1:] == (70, 90)
    assert (out.scores >= 0.4).all() and out.boxes.shape == (len(out.scores), 4)
    # unset, the checkpoint keeps torchvision's per-class NMS at 0.5
    assert video.load_predictor(checkpoint, video.VideoInference(threads=1)).model.roi_heads.nms_thresh == 0.5


def test_predictor_masks_at_the_threshold_training_chose(checkpoint, tmp_path):
    chosen = save_tiny_checkpoint(tmp_path / "chosen.pt", min_size=64, max_size=96, max_dets=8, mask_threshold=0.35)
    assert video.load_predictor(chosen, video.VideoInference(threads=1)).mask_threshold == 0.35
    assert video.load_predictor(chosen, video.VideoInference(threads=1, mask_threshold=0.6)).mask_threshold == 0.6
    # a checkpoint from before the choice (or without masks in validation): torchvision's 0.5
    assert video.load_predictor(checkpoint, video.VideoInference(threads=1)).mask_threshold == 0.5


def test_unavailable_device_is_user_error(checkpoint):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="CUDA is not available"):
        video.load_predictor(checkpoint, video.VideoInference(device="cuda"))
    with pytest.raises(UserError, match="not a torch device"):
        video.load_predictor(checkpoint, video.VideoInference(device="tpu9"))


def test_bad_inputs_write_nothing(tmp_path, checkpoint):
    clip = make_clip(tmp_path / "clip", num_frames=2)
    out = tmp_path / "out" / "o.mp4"
    cases = [
        (["--checkpoint", str(checkpoint), "--source", str(tmp_path / "missing"), "--out", str(out)], "source not found"),
        (["--checkpoint", str(tmp_path / "no.pt"), "--source", str(clip), "--out", str(out)], "checkpoint not found"),
        (["--checkpoint", str(checkpoint), "--source", str(clip), "--out", str(tmp_path / "o.gif")], "suffix"),
        (["--checkpoint", str(checkpoint), "--source", str(tmp_path), "--out", str(out)], "no image files"),
        (["--checkpoint", str(checkpoint), "--source", str(clip / "images"), "--out", str(out),
          "scoring.enabled=true"], "has no annotations.json"),
    ]
    for argv, msg in cases:
        with pytest.raises(UserError, match=msg):
            video.main(argv)
    assert not out.parent.exists() or not any(out.parent.iterdir())


@pytest.mark.slow
def test_cli_end_to_end_on_clip_with_corrupt_frame(tmp_path, checkpoint, capsys):
    clip = make_clip(tmp_path / "clip", num_frames=6)
    (clip / "images" / "000003.png").write_bytes(b"broken")
    out = tmp_path / "out" / "clip.mp4"
    rc = video.main(["--checkpoint", str(checkpoint), "--source", str(clip), "--out", str(out), "--quiet",
                     *FAST])
    assert rc == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("video complete: 5 frames") and "skipped 1" in line and "HOTA" in line

    lines = jsonl_lines(out.with_suffix(".jsonl"))
    header, frames = lines[0], lines[1:]
    sha = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert header["checkpoint"] == {"path": str(checkpoint), "sha256": sha}
    assert [f["frame_index"] for f in frames] == [0, 1, 2, 4, 5]
    assert [f["timestamp"] for f in frames] == pytest.approx([0, 0.1, 0.2, 0.4, 0.5])
    for f in frames:
        for d in f["detections"]:
            assert d["class"] in ("pedestrian", "pallet_jack") and d["label"] in (1, 2)
            assert d["score"] >= 0.3 and len(d["box"]) == 4
            assert d["mask"]["size"] == [120, 160] and isinstance(d["mask"]["counts"], str)
            assert d["track_id"] is None or d["track_id"] >= 1

    assert count_frames(out) == 5
    cap = cv2.VideoCapture(str(out))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 120)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    cap.release()

    s = json.loads(out.with_suffix(".summary.json").read_text())
    assert s["status"] == "complete" and s["frames"] == 5 and s["skipped_frames"] == 1
    assert s["skipped_files"] == ["000003.png"] and s["checkpoint"]["sha256"] == sha
    n_dets = sum(len(f["detections"]) for f in frames)
    assert sum(v["detections"] for v in s["per_class"].values()) == n_dets
    n_ids = len({d["track_id"] for f in frames for d in f["detections"] if d["track_id"] is not None})
    assert sum(v["tracks"] for v in s["per_class"].values()) == n_ids
    # 5 frames at 10 fps last 0.5 s: no track can count as stable
    assert all(v["stable_tracks"] == {"3s": 0, "5s": 0} for v in s["per_class"].values())
    assert s["video"]["encoder"] == "ffmpeg libx264" and s["video"]["frames"] == 5
    det, trk = s["metrics"]["detection"], s["metrics"]["tracking"]
    assert set(det) == {"bbox", "segm", "images"} and det["images"] == 5
    assert 0.0 <= det["bbox"]["AP"] <= 1.0
    assert trk["frames"] == 5 and trk["combined"]["num_gt_ids"] == 2
    n_tracked = sum(1 for f in frames for d in f["detections"] if d["track_id"] is not None)
    assert len(out.with_suffix(".mot.txt").read_text().split()) == n_tracked
    assert "tracking:" in out.with_suffix(".config.yaml").read_text()


INTERRUPT_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from pipeline.common import run_cli
    from pipeline.video import main
    run_cli(main)
""")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_interrupted_run_leaves_playable_video(tmp_path, checkpoint, sig):
    clip = make_clip(tmp_path / "clip", num_frames=200)
    out = tmp_path / "o.mp4"
    script = tmp_path / "run.py"
    script.write_text(INTERRUPT_SCRIPT.format(root=str(ROOT)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), "--checkpoint", str(checkpoint), "--source", str(clip),
                             "--out", str(out), "--quiet", *FAST, "output.keyframe_interval=2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    jsonl = out.with_suffix(".jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if jsonl.exists() and jsonl.read_text().count("\n") >= 5:  # header + 4 frames
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    time.sleep(1.0)  # a SIGKILLed parent's encoder finalises on its own
    text = jsonl.read_text()
    frames = [json.loads(line) for line in text.splitlines()[1:] if line.endswith("}")]
    n_video = count_frames(out)
    assert 4 <= len(frames) < 200 and n_video >= 1
    if sig == signal.SIGINT:
        assert proc.returncode == 130, err
        s = json.loads(out.with_suffix(".summary.json").read_text())
        assert s["status"] == "interrupted" and s["frames"] == len(frames) == n_video
    else:
        assert proc.returncode == -signal.SIGKILL
        assert not out.with_suffix(".summary.json").exists()
        assert n_video <= len(frames)


@pytest.mark.parametrize("name", ["video.yaml", "video_demo.yaml"])
def test_shipped_configs_load(name):
    from pipeline.common import load_config

    cfg = load_config(ROOT / "configs" / name, video.VideoConfig, ["source.stride=3"])
    assert cfg.source.stride == 3 and cfg.output.codec == "h264" and cfg.tracking.lost_track_buffer >= 10


def test_predictor_is_chosen_by_file_type(tmp_path, checkpoint):
    from pipeline.predictors import TorchPredictor, load_predictor

    assert isinstance(load_predictor(checkpoint, video.VideoInference(threads=1)), TorchPredictor)
    (tmp_path / "m.onnx").write_bytes(b"not a graph")
    with pytest.raises(UserError, match="onnxruntime cannot load it"):  # the ONNX backend was picked
        load_predictor(tmp_path / "m.onnx", video.VideoInference())
    (tmp_path / "m.tflite").write_bytes(b"x")
    with pytest.raises(UserError, match=r"unknown checkpoint type '.tflite' \(expected one of .pt, .pth, .onnx\)"):
        load_predictor(tmp_path / "m.tflite", video.VideoInference())


def test_one_device_rule():
    import torch

    from pipeline.devices import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(UserError, match="not a torch device"):
        resolve_device("gpu0")
