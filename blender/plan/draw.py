"""Draws from the frame's seeded numpy Generator: the planner's only source of randomness.

Every planner function takes the rng explicitly and draws in a fixed order, so a seed gives
the same plan on every machine; changing the order of draws changes every plan after it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Rng = np.random.Generator


def uniform(rng: Rng, r: tuple[float, float]) -> float:
    """A float in [low, high]; a zero-width range draws nothing."""
    return float(rng.uniform(r[0], r[1])) if r[1] > r[0] else float(r[0])


def integer(rng: Rng, r: tuple[int, int]) -> int:
    """An int in [low, high], both ends included."""
    return int(rng.integers(r[0], r[1] + 1))


def pick(rng: Rng, seq: Sequence):
    return seq[int(rng.integers(len(seq)))]


def jitter(rng: Rng, rgb, amount: float = 0.04) -> list[float]:
    """A colour varied per channel, so no two objects share an exact shade."""
    return [float(np.clip(c + rng.uniform(-amount, amount), 0.0, 1.0)) for c in rgb]


def weighted(rng: Rng, weights: dict[str, float]) -> str:
    keys = list(weights)
    p = np.array([max(0.0, weights[k]) for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]
