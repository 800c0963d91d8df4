"""Where a detection touches the floor in the image: the bottom of its mask, not its box centre.

The lowest mask rows are the feet of a person or the near end of a jack; their mean column at
the mask's bottom edge is the footprint pixel. A box-only detection falls back to the bottom
centre of its box.
"""

from __future__ import annotations

import numpy as np

BOTTOM_BAND = 0.02   # share of the mask's height averaged for the footprint column


def mask_footprint(mask: np.ndarray, box=None) -> tuple[float, float] | None:
    """(u, v) pixel of a mask's footprint, or None for an empty mask.

    v is the bottom edge of the lowest mask row + 0.5 px: a pixel is in the mask when its centre
    is covered, so the object's true bottom lies half a pixel to one and a half below that row's top.
    `box` (x0, y0, x1, y1) only narrows the search.
    """
    m = np.asarray(mask, dtype=bool)
    x_off = y_off = 0
    if box is not None:
        h, w = m.shape
        x0, y0 = max(0, int(np.floor(box[0])) - 1), max(0, int(np.floor(box[1])) - 1)
        x1, y1 = min(w, int(np.ceil(box[2])) + 1), min(h, int(np.ceil(box[3])) + 1)
        if x1 > x0 and y1 > y0 and m[y0:y1, x0:x1].any():
            m, x_off, y_off = m[y0:y1, x0:x1], x0, y0
    rows = np.flatnonzero(m.any(axis=1))
    if len(rows) == 0:
        return None
    top, bottom = rows[0], rows[-1]
    band = max(1, int(round(BOTTOM_BAND * (bottom - top + 1))))
    cols = np.nonzero(m[bottom - band + 1:bottom + 1])[1]
    return float(cols.mean() + 0.5 + x_off), float(bottom + 1.0 + y_off)


def box_footprint(box) -> tuple[float, float]:
    x0, _, x1, y1 = (float(v) for v in box)
    return (x0 + x1) / 2, y1


def footprints(boxes: np.ndarray, masks: np.ndarray | None) -> np.ndarray:
    """(N, 2) footprint pixels of N detections (mask bottom where there is a mask, else box bottom)."""
    out = np.zeros((len(boxes), 2))
    for i, box in enumerate(boxes):
        fp = mask_footprint(masks[i], box) if masks is not None else None
        out[i] = fp if fp is not None else box_footprint(box)
    return out
