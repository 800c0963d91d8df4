"""Pallets and what sits on them (carton stacks, stretch-wrapped loads, plastic crates).

One mesh per (kind, variant, height to 10 cm, footprint) per frame; every rack slot holding
the same load is a linked duplicate of it, so hundreds of loads cost a few meshes. A look is
one set of load materials (plan.materials.loads; plans without materials have one): the mesh
carries look 0, `dress()` gives an object another look through object-linked material slots,
so looks cost no extra meshes.
"""

from __future__ import annotations

import bpy

from blender.materials import Materials, slot
from blender.meshes import MeshBuilder
from blender.plan.scene_plan import LOAD_SLOTS, ScenePlan

PALLET_H = 0.144
GRIDS = [(2, 2), (3, 2), (2, 3), (3, 3)]  # cartons per layer, by variant
WOOD, CARDBOARD, WRAP, CRATE, CARDBOARD_DARK = range(5)


def add_pallet(mb: MeshBuilder, length: float, width: float, z: float = 0.0, mat: int = WOOD,
               x: float = 0.0, y: float = 0.0) -> None:
    """Block pallet, deck boards along x, origin at the bottom centre."""
    for i in (-1, 0, 1):  # bottom runners
        mb.box((x, y + i * (width / 2 - 0.05), z + 0.011), (length, 0.1, 0.022), mat)
    for i in (-1, 0, 1):
        for k in (-1, 0, 1):
            mb.box((x + i * (length / 2 - 0.075), y + k * (width / 2 - 0.05), z + 0.022 + 0.039),
                   (0.15, 0.1, 0.078), mat)
    n = 5
    for k in range(n):  # top deck boards
        yy = y - width / 2 + (k + 0.5) * width / n
        mb.box((x, yy, z + PALLET_H - 0.011), (length, width / n - 0.03, 0.022), mat)


def add_load(mb: MeshBuilder, kind: str, variant: int, height: float, length: float,
             width: float, z: float = 0.0) -> None:
    """A pallet with `kind` on top; total height `height` (pallet included)."""
    add_pallet(mb, length, width, z)
    if kind == "pallet":
        return
    h = max(0.1, height - PALLET_H)
    z0 = z + PALLET_H
    if kind == "wrapped":
        mb.box((0, 0, z0 + h / 2), (length - 0.02, width - 0.02, h), WRAP)
        mb.box((0, 0, z0 + h + 0.005), (length - 0.08, width - 0.08, 0.01), CARDBOARD)
        return
    nx, ny = GRIDS[variant % len(GRIDS)] if kind == "boxes" else (3, 2)
    layer_h = 0.3 if kind == "crate" else [0.25, 0.3, 0.35, 0.4][variant % 4]
    layers = max(1, round(h / layer_h))
    bx, by, bz = length / nx, width / ny, h / layers
    mat = CRATE if kind == "crate" else CARDBOARD
    for layer in range(layers):
        for i in range(nx):
            for j in range(ny):
                m = mat if kind == "crate" or (i + j + layer + variant) % 5 else CARDBOARD_DARK
                mb.box((-length / 2 + (i + 0.5) * bx, -width / 2 + (j + 0.5) * by, z0 + (layer + 0.5) * bz),
                       (bx - 0.012, by - 0.012, bz - 0.006), m)


class LoadMeshes:
    """Per-frame cache of load meshes sharing one material list."""

    def __init__(self, plan: ScenePlan, mats: Materials):
        sc = plan.stock_colors
        plain = [
            mats.textured("pallet_wood", (0.62, 0.48, 0.32), (0.50, 0.38, 0.25), scale=8.0, roughness=0.85),
            mats.textured("cardboard", sc.cardboard[0], sc.cardboard[1], scale=2.0, roughness=0.8),
            mats.plain("stretch_wrap", sc.wrap, roughness=0.22, coat=0.6),
            mats.plain("crate_plastic", sc.crate, roughness=0.45),
            mats.plain("cardboard_dark", sc.cardboard[3], roughness=0.8),
        ]
        looks = plan.materials.loads if plan.materials else [[]]
        self.looks = [[mats.surface(f"{name}_{k}", slot(look, i)) or plain[i]
                       for i, name in enumerate(LOAD_SLOTS)] for k, look in enumerate(looks)]
        self.materials = self.looks[0]
        self._cache: dict[tuple, bpy.types.Mesh] = {}

    def get(self, kind: str, variant: int, height: float, length: float = 1.2,
            width: float = 0.8) -> bpy.types.Mesh:
        key = (kind, variant % 4, round(height * 10) / 10, round(length, 2), round(width, 2))
        mesh = self._cache.get(key)
        if mesh is None:
            mb = MeshBuilder()
            add_load(mb, kind, key[1], key[2], key[3], key[4])
            mesh = mb.build(f"load_{kind}", self.materials)
            self._cache[key] = mesh
        return mesh

    def dress(self, ob: bpy.types.Object, look: int) -> bpy.types.Object:
        """Give a load object look `look` (its mesh keeps look 0 for every other object)."""
        look %= len(self.looks)
        if look:
            for slot, mat in zip(ob.material_slots, self.looks[look], strict=True):
                slot.link = "OBJECT"
                slot.material = mat
        return ob
