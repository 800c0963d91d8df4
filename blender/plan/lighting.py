"""Ceiling fixtures on a grid, their colour temperature, and daylight through the dock doors."""

from __future__ import annotations

import math

import numpy as np

from blender.plan.draw import Rng, uniform
from blender.plan.scene_config import LightConfig
from blender.plan.scene_plan import Daylight, Door, Fixture, Layout, Lights

FIXTURE_DROP_M = (0.3, 1.2)        # fixtures hang this far under the roof
FIXTURE_POWER_SPREAD = (0.85, 1.15)  # ageing lamps: each one a bit off the drawn level
LINEAR_PROB = 0.5                  # linear (tube) fixtures, else round high-bays
# the sun stands outside the dock wall (y < 0) and shines in through the doors
SUN_AZIMUTH_DEG = (45.0, 135.0)
SKY_STRENGTH = (1.0, 4.0)


def kelvin_to_rgb(kelvin: float) -> list[float]:
    """Black-body colour (Tanner Helland's fit), normalized so the largest channel is 1."""
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = np.clip(np.array([r, g, b]) / 255.0, 0.0, 1.0)
    return [float(c) for c in rgb / rgb.max()]


def plan_lights(layout: Layout, doors: list[Door], cfg: LightConfig, rng: Rng) -> Lights:
    spacing = uniform(rng, cfg.fixture_spacing)
    W, L, H = layout.width, layout.length, layout.height
    nx, ny = max(1, round(W / spacing)), max(1, round(L / spacing))
    temp = uniform(rng, cfg.color_temp_k)
    power = uniform(rng, cfg.fixture_power_w)
    kind = "linear" if rng.random() < LINEAR_PROB else "highbay"
    fixtures = []
    for i in range(nx):
        for j in range(ny):
            fixtures.append(Fixture(x=(i + 0.5) * W / nx, y=(j + 0.5) * L / ny, z=H - uniform(rng, FIXTURE_DROP_M),
                                    power=power * uniform(rng, FIXTURE_POWER_SPREAD),
                                    on=bool(rng.random() >= cfg.fixture_off_prob)))
    daylight = None
    if rng.random() < cfg.daylight_prob or any(d.open for d in doors):
        daylight = Daylight(strength=uniform(rng, cfg.sun_strength),
                            elevation_deg=uniform(rng, cfg.sun_elevation_deg),
                            azimuth_deg=uniform(rng, SUN_AZIMUTH_DEG),
                            sky_strength=uniform(rng, SKY_STRENGTH))
    return Lights(kind=kind, fixtures=fixtures, color_temp_k=temp, color=kelvin_to_rgb(temp),
                  world_strength=uniform(rng, cfg.world_strength), daylight=daylight)
