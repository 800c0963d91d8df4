"""Grid of augmented training samples with their targets drawn (for `make preview-aug`).

    python -m pipeline.preview_aug --config configs/train.yaml --data DATASET_DIR --out aug.png \
        [--num 12] [--seed 0] [key=value ...]

The first tile of each row is the unaugmented image, so the effect of `augment.*` is visible.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.common import CLASS_NAMES, UserError, load_config, run_cli
from pipeline.config import TrainConfig
from pipeline.data import CocoDetection
from pipeline.draw import contact_sheet, draw_detections, save_rgb
from pipeline.transforms import Augment, resolved_ops


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pipeline.preview_aug", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--data", help="dataset folder; overrides data.train")
    p.add_argument("--out", required=True, help="output image (.png or .jpg)")
    p.add_argument("--num", type=int, default=12, help="augmented samples (default 12)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", metavar="key=value")
    return p.parse_args(argv)


def render_tile(image, target) -> np.ndarray:
    rgb = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    # crowd targets (data.crowd: ignore) as the report draws crowd regions
    labels = np.where(target["iscrowd"].numpy() > 0, 0, target["labels"].numpy())
    return draw_detections(rgb, target["boxes"].numpy(), labels, masks=target["masks"].numpy(),
                           names=["crowd/ignored", *CLASS_NAMES[1:]])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.num < 1:
        raise UserError(f"--num {args.num}: expected at least 1 sample")
    if Path(args.out).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise UserError(f"--out {args.out}: expected a .png or .jpg file name")
    overrides = list(args.overrides) + ([f"data.train={args.data}"] if args.data else [])
    cfg = load_config(args.config, TrainConfig, overrides)
    if not cfg.data.train:
        raise UserError(f"{args.config}: no dataset (pass --data DATASET_DIR)")
    plain = CocoDetection(Path(cfg.data.train), Path(cfg.data.ann_file) if cfg.data.ann_file else None,
                          None, cfg.data.class_map, cfg.data.skip_bad, crowd=cfg.data.crowd)
    aug = CocoDetection(Path(cfg.data.train), Path(cfg.data.ann_file) if cfg.data.ann_file else None,
                        Augment(cfg.augment), cfg.data.class_map, cfg.data.skip_bad, crowd=cfg.data.crowd)
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(plain), size=min(len(plain), max(1, args.num // 3)), replace=False)
    tiles, captions = [], []
    per = max(1, args.num // len(picks))
    for i in picks:
        tiles.append(render_tile(*plain[int(i)]))
        captions.append(f"id {plain.records[int(i)][0]['id']} original")
        for k in range(per - 1):
            seed = int(rng.integers(2**31))
            tiles.append(render_tile(*aug[(int(i), seed)]))
            captions.append(f"augmented #{k + 1}")
    sheet = contact_sheet(tiles, ncols=per, tile_width=320, captions=captions)
    save_rgb(args.out, sheet)
    ops = ", ".join(f"{k}={v:.2f}" for k, v in resolved_ops(cfg.augment).items())
    print(f"wrote {args.out}: {len(picks)} images x {per} tiles (strength {cfg.augment.strength}: {ops})")
    return 0


if __name__ == "__main__":
    run_cli(main)
