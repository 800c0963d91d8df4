"""How much a rendered set varies: image brightness, contrast and colourfulness, and cameras.

A detector trained on renders transfers to real footage only if the renders vary at least as
much as the footage does, so `make preview` reports the spread (p5..p95) of each per-image
measure next to the object-size statistics. Colourfulness is Hasler and Suesstrunk's (2003)
opponent-colour measure: 0 for a grey image, ~15 for a dull photo, > 100 for saturated ones.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from pipeline.common import UserError
from pipeline.draw import load_rgb

QUANTILES = (5, 25, 50, 75, 95)
SAMPLE_STRIDE = 4  # every 4th pixel per axis: the measures are means and deviations


def quantiles(values) -> dict[str, float] | None:
    v = np.asarray(values, float)
    return {f"p{q}": round(float(np.percentile(v, q)), 2) for q in QUANTILES} if len(v) else None


def image_measures(rgb: np.ndarray) -> dict[str, float]:
    """Mean luma (0-255), RMS contrast (luma std) and colourfulness of an HxWx3 uint8 image."""
    x = rgb[::SAMPLE_STRIDE, ::SAMPLE_STRIDE, :3].astype(np.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    rg, yb = r - g, 0.5 * (r + g) - b
    colourfulness = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    return {"brightness": float(luma.mean()), "contrast": float(luma.std()),
            "colourfulness": float(colourfulness)}


def variety_stats(images: list[dict], images_dir: Path) -> dict:
    """Spread of the per-image measures over `images` (COCO records), camera kinds and heights."""
    measures = []
    for im in images:
        try:
            measures.append(image_measures(load_rgb(images_dir / im["file_name"])))
        except FileNotFoundError as e:
            raise UserError(f"image id {im.get('id')}: {e}") from None
    out: dict = {k: quantiles([m[k] for m in measures]) for k in ("brightness", "contrast", "colourfulness")}
    out["camera_kinds"] = dict(sorted(Counter(im["camera"] for im in images if im.get("camera")).items()))
    out["camera_height_m"] = quantiles([im["camera_height_m"] for im in images if "camera_height_m" in im])
    return out


def variety_markdown(v: dict) -> list[str]:
    lines = ["## Variety", "", "Per-image spread at p5/p25/p50/p75/p95:", ""]
    labels = {"brightness": "brightness (mean luma, 0-255)", "contrast": "contrast (luma std)",
              "colourfulness": "colourfulness (Hasler-Suesstrunk)", "camera_height_m": "camera height (m)"}
    for key, label in labels.items():
        if v.get(key):
            lines.append(f"- {label}: " + "/".join(f"{x:g}" for x in v[key].values()))
    if v.get("camera_kinds"):
        lines.append("- cameras: " + ", ".join(f"{k} {n}" for k, n in v["camera_kinds"].items()))
    return lines + [""]
