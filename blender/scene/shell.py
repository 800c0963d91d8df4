"""The building: concrete floor with painted lines, walls with dock doors, roof and trusses."""

from __future__ import annotations

import math
from collections import defaultdict

from blender.materials import Materials, slot
from blender.meshes import MeshBuilder, add_object, rot_z
from blender.plan.scene_plan import ScenePlan

WALL_T = 0.3


def build_floor(plan: ScenePlan, mats: Materials) -> list:
    lay, fl = plan.layout, plan.floor
    W, L = lay.width, lay.length
    v = fl.value
    base = [v * 2 * c for c in fl.tint]
    m = plan.materials
    concrete = (mats.surface("concrete", m.floor if m else None)
                or mats.textured("concrete", base, [c * 0.8 for c in base], scale=1.5,
                                 roughness=fl.roughness, stains=fl.stains, stain_scale=0.35))
    floor = MeshBuilder().box_span((-WALL_T, -WALL_T, -0.2), (W + WALL_T, L + WALL_T, 0.0))
    objs = [add_object("floor", floor.build("floor", [concrete]))]
    yard = MeshBuilder().box_span((-20, -40, -0.25), (W + 20, -WALL_T, -0.05))
    asphalt = mats.textured("asphalt", (0.22, 0.22, 0.23), (0.16, 0.16, 0.17), scale=3.0, roughness=0.9)
    objs.append(add_object("yard", yard.build("yard", [asphalt])))
    by_color = defaultdict(list)
    for ln in fl.lines:
        by_color[tuple(ln.color)].append(ln)
    for k, (color, lines) in enumerate(by_color.items()):
        mb = MeshBuilder()
        for ln in lines:
            dx, dy = ln.x1 - ln.x0, ln.y1 - ln.y0
            length = math.hypot(dx, dy)
            mb.box(((ln.x0 + ln.x1) / 2, (ln.y0 + ln.y1) / 2, 0.002),
                   (length + ln.width, ln.width, 0.004), R=rot_z(math.atan2(dy, dx)))
        paint = mats.plain(f"floor_paint_{k}", color, roughness=0.5)
        objs.append(add_object(f"floor_lines_{k}", mb.build(f"floor_lines_{k}", [paint])))
    return objs


def build_walls(plan: ScenePlan, mats: Materials) -> list:
    lay, walls = plan.layout, plan.walls
    W, L, H = lay.width, lay.length, lay.height
    band = walls.band_height
    painted = plan.materials.walls if plan.materials else []
    upper = mats.surface("wall", slot(painted, 0)) or mats.plain("wall", walls.upper, roughness=0.85)
    lower = mats.surface("wall_band", slot(painted, 1)) or mats.plain("wall_band", walls.lower, roughness=0.7)
    steel = mats.plain("roof_steel", (0.55, 0.56, 0.58), roughness=0.5, metallic=0.6)
    roof = mats.plain("roof", (0.62, 0.63, 0.64), roughness=0.8)
    mb = MeshBuilder()
    t = WALL_T
    # side and back walls (inner faces at x=0, x=W, y=L), each with a painted lower band
    mb.box_span((-t, -t, 0), (0, L + t, H), 0).box_span((W, -t, 0), (W + t, L + t, H), 0)
    mb.box_span((-t, L, 0), (W + t, L + t, H), 0)
    mb.box_span((0, 0, 0), (0.02, L, band), 1).box_span((W - 0.02, 0, 0), (W, L, band), 1)
    mb.box_span((0, L - 0.02, 0), (W, L, band), 1)
    # dock wall y=0 with openings
    x = -t
    for d in plan.doors:
        x0, x1 = d.x - d.width / 2, d.x + d.width / 2
        mb.box_span((x, -t, 0), (x0, 0, H), 0).box_span((x, 0, 0), (x0, 0.02, band), 1)
        mb.box_span((x0, -t, d.height), (x1, 0, H), 0)
        x = x1
    mb.box_span((x, -t, 0), (W + t, 0, H), 0).box_span((x, 0, 0), (W + t, 0.02, band), 1)
    # roof slab and trusses across the hall
    mb.box_span((-t, -t, H), (W + t, L + t, H + 0.3), 3)
    n_truss = max(2, int(L // 6))
    for i in range(n_truss):
        y = (i + 0.5) * L / n_truss
        mb.box_span((0, y - 0.1, H - 0.55), (W, y + 0.1, H - 0.45), 2)
        mb.box_span((0, y - 0.03, H - 0.45), (W, y + 0.03, H), 2)
    for i in range(max(2, int(W // 5))):  # purlins along y
        x = (i + 0.5) * W / max(2, int(W // 5))
        mb.box_span((x - 0.05, 0, H - 0.15), (x + 0.05, L, H), 2)
    objs = [add_object("walls", mb.build("walls", [upper, lower, steel, roof]))]
    objs += _doors(plan, mats)
    return objs


def _doors(plan: ScenePlan, mats: Materials) -> list:
    shutter = mats.textured("roller_door", (0.70, 0.72, 0.74), (0.60, 0.62, 0.64), scale=6.0, roughness=0.5)
    rubber = mats.plain("dock_rubber", (0.03, 0.03, 0.03), roughness=0.9)
    frame = mats.plain("dock_frame", (0.95, 0.75, 0.05), roughness=0.5)
    mb = MeshBuilder()
    for d in plan.doors:
        x0, x1, h = d.x - d.width / 2, d.x + d.width / 2, d.height
        if not d.open:
            mb.box_span((x0, -0.2, 0), (x1, -0.12, h), 0)
        else:  # rolled-up shutter under the lintel
            mb.box_span((x0, -0.2, h - 0.5), (x1, -0.05, h), 0)
        for xs in (x0, x1 - 0.12):  # bumpers and frame posts
            mb.box_span((xs, 0.0, 0.6), (xs + 0.12, 0.18, 1.0), 1)
            mb.box_span((xs, 0.0, 0.0), (xs + 0.12, 0.04, h), 2)
    if not plan.doors:
        return []
    return [add_object("dock_doors", mb.build("dock_doors", [shutter, rubber, frame]))]
