"""Unlabelled props that look like the classes or sit next to them: forklifts, pallets,
loads, carts, cones, barriers, bins. pass_index stays 0 on all of them."""

from __future__ import annotations

import math

from blender.assets.loads import LoadMeshes, add_pallet
from blender.materials import Materials, slot
from blender.meshes import MeshBuilder, add_object, rot_z
from blender.plan.scene_plan import Barrier, Bin, Cart, Cone, Distractor, Forklift

PAINT, DARK, STEEL, ACCENT = range(4)


def _forklift(d: Forklift) -> MeshBuilder:
    mb = MeshBuilder()
    L, W, mh = d.length, d.width, d.mast_height
    x0, x1 = -L / 2 - 0.55, L / 2 - 0.55  # forks stick out to +X beyond the body
    mb.box_span((x0 + 0.45, -W / 2, 0.2), (x1, W / 2, 0.8), PAINT)                 # chassis
    mb.box_span((x0, -W / 2, 0.2), (x0 + 0.5, W / 2, 1.15), DARK)                  # counterweight
    mb.box_span((x0 + 0.55, -0.3, 0.8), (x0 + 1.0, 0.3, 1.2), DARK)                # seat
    for s in (-1, 1):  # overhead guard posts and roof
        mb.box_span((x0 + 0.5, s * W / 2 - 0.04, 0.8), (x0 + 0.58, s * W / 2 + 0.04, 2.1), DARK)
        mb.box_span((x1 - 0.5, s * W / 2 - 0.04, 0.8), (x1 - 0.42, s * W / 2 + 0.04, 2.1), DARK)
    for k in range(5):
        y = -W / 2 + (k + 0.5) * W / 5
        mb.box_span((x0 + 0.5, y - 0.02, 2.08), (x1 - 0.42, y + 0.02, 2.14), DARK)
    mb.cylinder((x1 - 0.65, 0, 1.15), 0.17, 0.04, DARK, axis="z", segments=12)      # steering wheel
    for s in (-1, 1):  # mast rails
        mb.box_span((x1, s * 0.32 - 0.05, 0.1), (x1 + 0.12, s * 0.32 + 0.05, mh), STEEL)
    mb.box_span((x1, -0.35, mh - 0.1), (x1 + 0.12, 0.35, mh), STEEL)
    fh = d.fork_height
    mb.box_span((x1 + 0.12, -W / 2 + 0.1, fh), (x1 + 0.18, W / 2 - 0.1, fh + 0.5), DARK)  # carriage
    for s in (-1, 1):
        mb.box_span((x1 + 0.12, s * 0.3 - 0.05, fh), (x1 + 1.22, s * 0.3 + 0.05, fh + 0.045), STEEL)
        mb.cylinder((x1 - 0.3, s * (W / 2 - 0.1), 0.28), 0.28, 0.22, DARK, axis="y", segments=14)
        mb.cylinder((x0 + 0.35, s * (W / 2 - 0.12), 0.22), 0.22, 0.2, DARK, axis="y", segments=14)
    mb.box_span((x0 + 0.1, -0.05, 1.15), (x0 + 0.2, 0.05, 1.25), ACCENT)          # beacon
    return mb


def _cart(d: Cart) -> MeshBuilder:
    mb = MeshBuilder()
    L, W = d.length, d.width
    mb.box_span((-L / 2, -W / 2, 0.15), (L / 2, W / 2, 0.2), PAINT)
    for s in (-1, 1):
        mb.box_span((-L / 2 - 0.03, s * (W / 2 - 0.02) - 0.015, 0.2), (-L / 2, s * (W / 2 - 0.02) + 0.015, 0.95), STEEL)
    mb.box_span((-L / 2 - 0.03, -W / 2, 0.92), (-L / 2, W / 2, 0.95), STEEL)
    for sx in (-1, 1):
        for sy in (-1, 1):
            mb.cylinder((sx * (L / 2 - 0.1), sy * (W / 2 - 0.08), 0.065), 0.065, 0.04, DARK, axis="y", segments=10)
    for k in range(d.boxes):
        mb.box((-L / 4 + k * 0.3 - 0.1, 0, 0.2 + 0.15 + 0.001), (0.35, W * 0.7, 0.3), ACCENT)
    return mb


def _cone(d: Cone) -> MeshBuilder:
    h = d.height
    mb = MeshBuilder().box((0, 0, 0.015), (0.36, 0.36, 0.03), DARK)
    mb.cylinder((0, 0, 0.03 + h * 0.3), 0.14, h * 0.6, PAINT, radius_top=0.14 - 0.11 * 0.6, segments=14)
    mb.cylinder((0, 0, 0.03 + h * 0.65), 0.14 - 0.11 * 0.6, h * 0.1, ACCENT, radius_top=0.14 - 0.11 * 0.7, segments=14)
    mb.cylinder((0, 0, 0.03 + h * 0.85), 0.14 - 0.11 * 0.7, h * 0.3, PAINT, radius_top=0.02, segments=14)
    return mb


def _barrier(d: Barrier) -> MeshBuilder:
    L, h = d.length, d.height
    mb = MeshBuilder()
    for s in (-1, 1):
        mb.box((s * (L / 2 - 0.05), 0, h / 2), (0.05, 0.05, h), STEEL)
        mb.box((s * (L / 2 - 0.05), 0, 0.02), (0.08, 0.45, 0.04), DARK)
    n = max(4, int(L / 0.25))
    for k in range(n):  # striped rails
        x = -L / 2 + 0.05 + (k + 0.5) * (L - 0.1) / n
        for z in (h * 0.55, h * 0.9):
            mb.box((x, 0, z), ((L - 0.1) / n, 0.04, 0.12), PAINT if k % 2 else DARK)
    return mb


def _bin(d: Bin) -> MeshBuilder:
    s, h = d.size, d.height
    mb = MeshBuilder()
    # a 4-sided "cylinder" turned 45 degrees is a tapered square tub
    mb.cylinder((0, 0, h / 2), s * 0.62, h, PAINT, radius_top=s * 0.7, segments=4, R=rot_z(math.pi / 4))
    mb.box((0, 0, h + 0.02), (s * 1.02, s * 1.02, 0.04), PAINT)
    mb.box((0, s * 0.52, h - 0.05), (s * 0.6, 0.05, 0.04), DARK)
    return mb


def build_distractor(d: Distractor, index: int, mats: Materials, loads: LoadMeshes) -> list:
    kind = d.kind
    loc = (d.x, d.y, 0.0)
    if kind == "load":
        return [loads.dress(add_object(f"distractor_{index}_load", loads.get(d.load, d.variant, d.height),
                                       location=loc, yaw=d.yaw), d.look)]
    if kind == "pallet_stack":
        mb = MeshBuilder()
        for k in range(d.count):
            add_pallet(mb, 1.2, 0.8, z=k * 0.146, mat=0)
        mat = (mats.surface(f"pallets_{index}", slot(d.surfaces, 0))
               or (mats.plain("plastic_pallet", (0.15, 0.25, 0.5), roughness=0.5) if d.plastic
                   else loads.materials[0]))
        return [add_object(f"distractor_{index}_pallets", mb.build(f"pallets_{index}", [mat]),
                           location=loc, yaw=d.yaw)]
    color = d.color or (0.5, 0.5, 0.5)
    plain = [mats.plain(f"{kind}_paint_{index}", color, roughness=0.4, coat=0.2),
             mats.plain("prop_dark", (0.05, 0.05, 0.05), roughness=0.7),
             mats.plain("prop_steel", (0.55, 0.55, 0.57), roughness=0.35, metallic=0.8),
             mats.plain(f"{kind}_accent", {"cone": (0.95, 0.95, 0.95), "cart": (0.65, 0.5, 0.3),
                                           "forklift": (1.0, 0.55, 0.05)}.get(kind, (0.9, 0.9, 0.9)),
                        roughness=0.5, emission=1.0 if kind == "forklift" else 0.0)]
    materials = [mats.surface(f"{kind}_{i}_{index}", slot(d.surfaces, i)) or m for i, m in enumerate(plain)]
    builder = {"forklift": _forklift, "cart": _cart, "cone": _cone, "barrier": _barrier, "bin": _bin}[kind]
    mb = builder(d)
    return [add_object(f"distractor_{index}_{kind}", mb.build(f"{kind}_{index}", materials),
                       location=loc, yaw=d.yaw)]
