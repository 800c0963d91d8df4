"""The analytics drawn on the video: zones, lines, counts, and a red link with the distance
between every pair that is too close. Zones and lines are projected to the image once."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from pipeline.analytics.calibration import FloorMap
from pipeline.analytics.rules_config import RulesConfig

ZONE_COLOR = (255, 200, 0)      # RGB: amber, red while someone is inside
ALERT_COLOR = (230, 30, 30)
LINE_COLOR = (60, 220, 255)
FLOOR_STEPS = 20                # points per zone edge: straight floor edges stay straight, but clipping needs them


@dataclass
class OverlayFrame:
    """What one frame adds to the static drawing (built by the main thread, drawn by the writer)."""

    zone_text: list[str]
    zone_alert: list[bool]
    line_text: list[str]
    links: list[tuple[tuple[float, float], tuple[float, float], float]] = field(default_factory=list)


class Overlay:
    def __init__(self, rules: RulesConfig, floor: FloorMap):
        self.zones = []
        for z in rules.zones:
            p = np.asarray(z.polygon, dtype=np.float64)
            dense = np.concatenate([np.linspace(p[i], p[(i + 1) % len(p)], FLOOR_STEPS, endpoint=False)
                                    for i in range(len(p))])
            uv, front = floor.to_image(dense)
            self.zones.append(np.round(uv[front]).astype(np.int32) if front.sum() >= 3 else None)
        self.lines = []
        for r in rules.lines:
            uv, front = floor.to_image(np.linspace(r.start, r.end, FLOOR_STEPS))
            self.lines.append(np.round(uv[front]).astype(np.int32) if front.sum() >= 2 else None)

    def draw(self, img: np.ndarray, f: OverlayFrame) -> np.ndarray:
        out = img
        h, w = out.shape[:2]
        scale = max(0.4, min(h, w) / 900)
        font = cv2.FONT_HERSHEY_SIMPLEX
        layer = out.copy()
        for poly, alert in zip(self.zones, f.zone_alert, strict=True):
            if poly is not None:
                cv2.fillPoly(layer, [poly], ALERT_COLOR if alert else ZONE_COLOR)
        cv2.addWeighted(layer, 0.25, out, 0.75, 0, dst=out)
        for poly, text, alert in zip(self.zones, f.zone_text, f.zone_alert, strict=True):
            if poly is not None:
                c = ALERT_COLOR if alert else ZONE_COLOR
                cv2.polylines(out, [poly], True, c, 2, cv2.LINE_AA)
                x, y = poly[:, 0].min(), poly[:, 1].min()
                cv2.putText(out, text, (int(x), int(max(12, y - 4))), font, scale, c, 1, cv2.LINE_AA)
        for pts, text in zip(self.lines, f.line_text, strict=True):
            if pts is not None:
                cv2.polylines(out, [pts], False, LINE_COLOR, 2, cv2.LINE_AA)
                cv2.putText(out, text, (int(pts[-1][0]) + 4, int(pts[-1][1])), font, scale, LINE_COLOR, 1, cv2.LINE_AA)
        for a, b, d in f.links:
            pa, pb = tuple(int(round(v)) for v in a), tuple(int(round(v)) for v in b)
            cv2.line(out, pa, pb, ALERT_COLOR, 3, cv2.LINE_AA)
            mid = ((pa[0] + pb[0]) // 2, (pa[1] + pb[1]) // 2 - 6)
            cv2.putText(out, f"{d:.2f} m", mid, font, scale * 1.1, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(out, f"{d:.2f} m", mid, font, scale * 1.1, ALERT_COLOR, 1, cv2.LINE_AA)
        return out
