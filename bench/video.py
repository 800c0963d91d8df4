"""Video pipeline throughput: end-to-end fps against the bare model's fps on the same frames.

    python -m bench.video [--checkpoint CKPT] [--frames 12] [--threads 2] [--batch-size 2]

End to end = decode (reader thread) + inference + tracking + JSONL + drawing and H.264
encoding (writer thread), as `pipeline.video` runs it. Bare = the predictor alone on frames
already decoded in memory. ratio = end_to_end_fps / bare_model_fps (target >= 0.9 on CPU:
the threads should hide everything but inference); pipeline_inference_share = inference time /
pipeline time, the same question without the run-to-run noise of a shared machine. Frames are
640x480; the config measured is configs/video_demo.yaml unless --config says otherwise. Without --checkpoint
a random-init checkpoint is made (min_size 480, at most 20 detections per frame, roughly a
trained model's load). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def synthetic_frames(n: int, w: int = 640, h: int = 480, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 140, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    frames = []
    for i in range(n):
        f = base.copy()
        f[100:300, 40 + 12 * i: 120 + 12 * i] = (220, 120, 40)
        f[330:420, 520 - 10 * i: 620 - 10 * i] = (40, 170, 220)
        frames.append(f)
    return frames


def random_checkpoint(path: Path, min_size: int) -> Path:
    import torch

    from pipeline.common import CATEGORIES, config_to_dict
    from pipeline.config import TrainConfig
    from pipeline.model import ModelConfig, build_model

    cfg = TrainConfig(model=ModelConfig(weights="none", min_size=min_size, max_size=max(min_size, 640),
                                        box_detections_per_img=20))
    torch.manual_seed(0)
    model, init = build_model(cfg.model)
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg), "categories": CATEGORIES,
                "init": init}, path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--config", default="configs/video_demo.yaml", help="video config measured")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--min-size", type=int, default=480, help="test-time size of the random model")
    args = ap.parse_args(argv)

    import torch

    from pipeline.common import load_config
    from pipeline.video import VideoConfig, batched, load_predictor, run
    from pipeline.videowriter import VideoWriter

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = Path(args.checkpoint) if args.checkpoint else random_checkpoint(tmp / "random.pt", args.min_size)
        frames = synthetic_frames(args.frames)
        src = tmp / "in.mp4"
        w = VideoWriter(src, 30, (640, 480), crf=18)
        for f in frames:
            w.write(f)
        w.close()
        cfg = load_config(args.config, VideoConfig, [f"model.threads={args.threads}",
                                                     f"model.batch_size={args.batch_size}", "source.max_side=640"])
        predictor = load_predictor(ckpt, cfg.model)
        # the decoded frames, as the pipeline sees them (H.264 round trip), for the bare timing
        from pipeline.sources import open_source

        decoded = [fr.image for fr in open_source(str(src))]
        predictor(decoded[:args.batch_size])  # warm-up (allocator, kernels)

        def bare() -> tuple[float, int]:
            t0 = time.perf_counter()
            n = 0
            for batch in batched(iter(decoded), args.batch_size):
                n += sum(len(p) for p in predictor(batch))
            return len(decoded) / (time.perf_counter() - t0), n

        # bare, pipeline, bare again: on a shared machine the two bare runs show the noise
        bare_fps_1, n_dets = bare()
        summary = run(cfg, ckpt, str(src), tmp / "out.mp4", quiet=True, predictor=predictor)
        bare_fps_2, _ = bare()
        bare_fps = (bare_fps_1 + bare_fps_2) / 2
        e2e_fps = summary["frames"] / summary["seconds"]
        print(json.dumps({
            "benchmark": "video", "frames": len(decoded), "size": [640, 480], "threads": args.threads,
            "batch_size": args.batch_size, "config": args.config,
            "rpn_post_nms_top_n": cfg.model.rpn_post_nms_top_n, "checkpoint": str(args.checkpoint or f"random init, min_size {args.min_size}"),
            "predictor": summary["predictor"], "encoder": summary["video"]["encoder"],
            "detections_per_frame": round(n_dets / len(decoded), 1),
            "bare_model_fps": round(bare_fps, 3), "bare_model_fps_runs": [round(bare_fps_1, 3), round(bare_fps_2, 3)], "end_to_end_fps": round(e2e_fps, 3),
            "ratio": round(e2e_fps / bare_fps, 3),
            "pipeline_inference_share": round(summary["inference_seconds"] / summary["seconds"], 3), "device": str(getattr(predictor, "device", "cpu")),
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
