"""Drawing detections and ground truth: one look for previews, reports and video.

Pure numpy/cv2 (no torch): arrays in, a new RGB uint8 array out.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.common import CLASS_NAMES, atomic_write_with

# RGB per model label; pedestrians orange, pallet jacks cyan: readable over grey warehouse tones.
CLASS_COLORS: dict[int, tuple[int, int, int]] = {
    0: (160, 160, 160),
    1: (255, 120, 20),
    2: (20, 200, 255),
}


def color_for(label: int, track_id: int | None = None) -> tuple[int, int, int]:
    """Class colour, or a stable per-track hue so neighbouring tracks stay distinguishable."""
    if track_id is None or track_id < 0:
        return CLASS_COLORS.get(int(label), (255, 255, 0))
    hue = (int(track_id) * 47) % 180
    hsv = np.uint8([[[hue, 200, 255]]])
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def _text_with_background(img: np.ndarray, text: str, x: int, y: int, color, scale: float) -> None:
    font = cv2.FONT_HERSHEY_SIMPLEX
    thick = max(1, int(round(scale * 2)))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    h, w = img.shape[:2]
    x = int(np.clip(x, 0, max(0, w - tw - 2)))
    top = y - th - base - 2
    if top < 0:  # no room above the box: put the label inside it
        top = y
    cv2.rectangle(img, (x, top), (x + tw + 2, top + th + base + 2), color, -1)
    lum = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    cv2.putText(img, text, (x + 1, top + th + 1), font, scale, (0, 0, 0) if lum > 128 else (255, 255, 255),
                thick, cv2.LINE_AA)


def draw_detections(
    image: np.ndarray,
    boxes_xyxy: np.ndarray | Sequence,
    labels: np.ndarray | Sequence[int],
    scores: np.ndarray | Sequence[float] | None = None,
    masks: np.ndarray | None = None,
    track_ids: Sequence[int | None] | None = None,
    alpha: float = 0.45,
    names: Sequence[str] = CLASS_NAMES,
    dashed: bool = False,
) -> np.ndarray:
    """Translucent masks, boxes and "name score #id" labels over a copy of `image` (HxWx3 RGB uint8).

    `dashed=True` draws boxes as corner marks, used for ground truth next to predictions.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"draw_detections: expected HxWx3 uint8 RGB, got {image.dtype} {image.shape}")
    out = image.copy()
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    n = len(boxes)
    if len(labels) != n:
        raise ValueError(f"draw_detections: {n} boxes but {len(labels)} labels")
    h, w = out.shape[:2]
    scale = max(0.35, min(h, w) / 900)
    colors = [color_for(labels[i], None if track_ids is None else track_ids[i]) for i in range(n)]

    if masks is not None and n:
        masks = np.asarray(masks).astype(bool).reshape(n, h, w)
        overlay = out.astype(np.float32)
        for i in range(n):
            m = masks[i]
            if m.any():
                overlay[m] = overlay[m] * (1 - alpha) + np.array(colors[i], np.float32) * alpha
        out = overlay.round().astype(np.uint8)
        for i in range(n):
            contours, _ = cv2.findContours(masks[i].astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, colors[i], 1, cv2.LINE_AA)

    thick = max(1, int(round(scale * 2.5)))
    for i in range(n):
        x0, y0, x1, y1 = (int(round(v)) for v in boxes[i])
        if dashed:
            k = max(4, int(0.25 * min(x1 - x0, y1 - y0)))
            for (cx, cy, dx, dy) in ((x0, y0, 1, 1), (x1, y0, -1, 1), (x0, y1, 1, -1), (x1, y1, -1, -1)):
                cv2.line(out, (cx, cy), (cx + dx * k, cy), colors[i], thick, cv2.LINE_AA)
                cv2.line(out, (cx, cy), (cx, cy + dy * k), colors[i], thick, cv2.LINE_AA)
        else:
            cv2.rectangle(out, (x0, y0), (x1, y1), colors[i], thick, cv2.LINE_AA)
        lab = int(labels[i])
        text = names[lab] if 0 <= lab < len(names) else str(lab)
        if scores is not None:
            text += f" {float(scores[i]):.2f}"
        if track_ids is not None and track_ids[i] is not None and track_ids[i] >= 0:
            text += f" #{int(track_ids[i])}"
        _text_with_background(out, text, x0, y0, colors[i], scale)
    return out


def put_banner(image: np.ndarray, text: str) -> np.ndarray:
    """A line of text on a dark strip at the top-left (fps/count overlay, tile captions)."""
    out = image.copy()
    scale = max(0.4, min(out.shape[:2]) / 800)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(out, (0, 0), (tw + 8, th + base + 8), (0, 0, 0), -1)
    cv2.putText(out, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def contact_sheet(images: Sequence[np.ndarray], ncols: int = 4, tile_width: int = 320,
                  captions: Sequence[str] | None = None, pad: int = 4) -> np.ndarray:
    """Tiles of equal width in a grid on a dark background; each tile keeps its aspect ratio."""
    if not images:
        raise ValueError("contact_sheet: no images")
    tiles = []
    for i, im in enumerate(images):
        scale = tile_width / im.shape[1]
        t = cv2.resize(im, (tile_width, max(1, int(round(im.shape[0] * scale)))), interpolation=cv2.INTER_AREA)
        if captions is not None:
            t = put_banner(t, captions[i])
        tiles.append(t)
    tile_h = max(t.shape[0] for t in tiles)
    ncols = max(1, min(ncols, len(tiles)))
    nrows = (len(tiles) + ncols - 1) // ncols
    sheet = np.full((nrows * (tile_h + pad) + pad, ncols * (tile_width + pad) + pad, 3), 24, np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, ncols)
        y, x = pad + r * (tile_h + pad), pad + c * (tile_width + pad)
        sheet[y:y + t.shape[0], x:x + tile_width] = t
    return sheet


def save_rgb(path: str | Path, image: np.ndarray) -> Path:
    """Atomic PNG/JPG write of an RGB array (cv2 wants BGR)."""
    def write(tmp: Path) -> None:
        if not cv2.imwrite(str(tmp), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise OSError(f"cv2 could not write {path}")
    return atomic_write_with(path, write)


def load_rgb(path: str | Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"{path}: not a readable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
