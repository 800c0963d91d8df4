"""Where things stand: free floor space for rejection sampling, and the focus point that
labelled objects cluster around."""

from __future__ import annotations

import math

from blender.plan.draw import Rng, pick, uniform
from blender.plan.geometry import Footprint, footprint_corners, footprints_overlap, rack_footprint
from blender.plan.scene_plan import Layout

PLACE_TRIES = 200
# objects in an aisle mostly follow it; this is the yaw noise of "along the aisle" (rad)
ALIGNED_YAW_SIGMA = 0.08
# the focus lands in a rack aisle, else in the cross-aisle, else in the staging area
FOCUS_AISLE_PROB = 0.45
FOCUS_CROSS_AISLE_PROB = 0.2


class FloorSpace:
    """Free-space bookkeeping for 2D footprint rejection sampling; racks start out blocked."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.blocked = [rack_footprint(r) for r in layout.racks]

    def inside(self, fp: Footprint, margin: float = 0.3) -> bool:
        c = footprint_corners(fp)
        return bool((c[:, 0] > margin).all() and (c[:, 0] < self.layout.width - margin).all()
                    and (c[:, 1] > margin).all() and (c[:, 1] < self.layout.length - margin).all())

    def free(self, fp: Footprint, margin: float = 0.15) -> bool:
        return self.inside(fp) and not any(footprints_overlap(fp, b, margin) for b in self.blocked)

    def add(self, fp: Footprint) -> None:
        self.blocked.append(fp)

    def aisle_axis(self, x: float, y: float) -> str | None:
        """'y' inside a rack aisle, 'x' in the cross-aisle, None in open floor."""
        lay = self.layout
        cross = lay.cross_aisle
        if cross and cross.y0 <= y <= cross.y1:
            return "x"
        if lay.rack_y[0] <= y <= lay.rack_y[1] and lay.racks:
            return "y"
        return None

    def place(self, rng: Rng, center: tuple[float, float], radius: float, length: float, width: float,
              align: float = 0.85, tries: int = PLACE_TRIES) -> Footprint | None:
        """A free footprint within `radius` of `center` (blocked from then on), or None.

        `align`: chance that something standing in an aisle turns along it.
        """
        for _ in range(tries):
            r = radius * math.sqrt(rng.random())
            a = rng.uniform(0, 2 * math.pi)
            x, y = center[0] + r * math.cos(a), center[1] + r * math.sin(a)
            axis = self.aisle_axis(x, y)
            if axis is not None and rng.random() < align:
                yaw = (math.pi / 2 if axis == "y" else 0.0) + (math.pi if rng.random() < 0.5 else 0.0)
                yaw += rng.normal(0, ALIGNED_YAW_SIGMA)
            else:
                yaw = rng.uniform(-math.pi, math.pi)
            fp = Footprint(x, y, float(math.remainder(yaw, 2 * math.pi)), length, width)
            if self.free(fp):
                self.add(fp)
                return fp
        return None


def focus_point(layout: Layout, rng: Rng) -> tuple[float, float]:
    """A point in a rack aisle, the cross-aisle or the staging area, 2-3 m off walls and ends."""
    W = layout.width
    choice = rng.random()
    if choice < FOCUS_AISLE_PROB and len(layout.aisles) > 1 and layout.racks:
        a = pick(rng, layout.aisles[1:])
        y0, y1 = layout.rack_y
        return ((a.x0 + a.x1) / 2, uniform(rng, (y0 + 2, max(y0 + 2, y1 - 2))))
    if choice < FOCUS_AISLE_PROB + FOCUS_CROSS_AISLE_PROB and layout.cross_aisle:
        c = layout.cross_aisle
        return (uniform(rng, (2.0, W - 2.0)), (c.y0 + c.y1) / 2)
    oa = layout.open_area
    return (uniform(rng, (3.0, W - 3.0)), uniform(rng, (oa.y0 + 2.0, max(oa.y0 + 2.0, oa.y1 - 1.0))))
