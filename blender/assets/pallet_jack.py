"""Pallet jacks (manual and electric walkie) built from parts into one mesh per jack.

Local frame: origin at the centre of the footprint on the floor, forks point to +X, the
tiller is at -X (see blender.plan.geometry.jack_extent / jack_grip). A load on the forks is
NOT part of the jack (it is an unlabelled load object), matching how a person would
outline "the pallet jack".
"""

from __future__ import annotations

import math

from blender.assets.loads import LoadMeshes
from blender.materials import Materials, slot
from blender.meshes import MeshBuilder, add_object, rot_y
from blender.plan.geometry import JACK_PIVOT_Z, PLATFORM_LENGTH_M, PLATFORM_TOP_M, jack_extent
from blender.plan.scene_plan import Jack

PAINT, RUBBER, STEEL, CHROME = range(4)


def jack_mesh(j: Jack) -> MeshBuilder:
    mb = MeshBuilder()
    x_min, x_max = jack_extent(j)
    fl, bl, W, fh = j.fork_length, j.body_length, j.width, j.fork_height
    fork_x0 = x_max - fl
    body_x0 = fork_x0 - bl
    pivot_x = fork_x0 - bl * 0.5
    for side in (-1, 1):
        yc = side * (W / 2 - 0.08)
        mb.box_span((fork_x0, yc - 0.08, fh - 0.055), (x_max - 0.04, yc + 0.08, fh), PAINT)
        mb.box((x_max - 0.02, yc, fh - 0.035), (0.04, 0.14, 0.04), PAINT)  # tapered tip
        mb.cylinder((x_max - 0.14, yc, 0.042), 0.04, 0.1, RUBBER, axis="y", segments=10)
        # push rod under the fork, down to the load roller
        mb.box_span((fork_x0 + 0.1, yc - 0.02, 0.06), (x_max - 0.16, yc + 0.02, fh - 0.055), STEEL)
    if j.kind == "manual":
        mb.box_span((fork_x0 - 0.06, -W / 2, fh - 0.07), (fork_x0 + 0.12, W / 2, fh + 0.03), PAINT)
        mb.box_span((body_x0, -0.14, fh - 0.05), (fork_x0, 0.14, fh + 0.05), PAINT)
        mb.cylinder((pivot_x, 0, fh + 0.09), 0.075, 0.18, PAINT, segments=12)
        mb.cylinder((pivot_x, 0, fh + 0.2), 0.04, 0.08, CHROME, segments=10)
        mb.cylinder((pivot_x, 0, JACK_PIVOT_Z["manual"] - 0.04), 0.06, 0.08, PAINT, segments=12)
        for s in (-1, 1):
            mb.cylinder((pivot_x, s * 0.09, 0.085), 0.085, 0.05, RUBBER, axis="y", segments=14)
    else:
        top = JACK_PIVOT_Z["electric"]
        mb.box_span((body_x0, -W / 2 - 0.05, 0.06), (fork_x0 + 0.05, W / 2 + 0.05, top - 0.08), PAINT)
        mb.box_span((body_x0 + 0.03, -W / 2 - 0.03, top - 0.08), (fork_x0, W / 2 + 0.03, top), RUBBER)
        mb.box_span((body_x0 - 0.03, -W / 2 - 0.06, 0.06), (body_x0 + 0.05, W / 2 + 0.06, 0.3), RUBBER)
        mb.cylinder((pivot_x, 0, 0.12), 0.12, 0.08, RUBBER, axis="y", segments=14)
        for s in (-1, 1):
            mb.cylinder((body_x0 + 0.1, s * (W / 2 - 0.05), 0.05), 0.05, 0.05, RUBBER, axis="y", segments=10)
        if j.platform:
            x0 = body_x0 - PLATFORM_LENGTH_M
            mb.box_span((x0, -0.3, 0.1), (body_x0, 0.3, PLATFORM_TOP_M), RUBBER)   # deck
            mb.box_span((x0, -0.3, 0.06), (body_x0 - 0.4, 0.3, 0.1), STEEL)        # its rear edge
    # tiller: a rod tilted back by handle_angle_deg, ending in a grip
    a = math.radians(j.handle_angle_deg)
    pz = JACK_PIVOT_Z[j.kind]
    L = j.handle_length
    R = rot_y(-a)
    d = (-math.sin(a), 0.0, math.cos(a))
    mid = (pivot_x + d[0] * L / 2, 0.0, pz + d[2] * L / 2)
    if j.kind == "manual":
        mb.box(mid, (0.035, 0.05, L), PAINT, R=R)
        for s in (-1, 1):  # loop grip
            c = (pivot_x + d[0] * (L - 0.12), s * 0.14, pz + d[2] * (L - 0.12))
            mb.box(c, (0.03, 0.03, 0.26), PAINT, R=R)
        top_c = (pivot_x + d[0] * L, 0.0, pz + d[2] * L)
        mb.box(top_c, (0.04, 0.32, 0.04), RUBBER, R=R)
        low_c = (pivot_x + d[0] * (L - 0.25), 0.0, pz + d[2] * (L - 0.25))
        mb.box(low_c, (0.03, 0.3, 0.03), PAINT, R=R)
    else:
        mb.box(mid, (0.06, 0.08, L), RUBBER, R=R)
        head = (pivot_x + d[0] * L, 0.0, pz + d[2] * L)
        mb.box(head, (0.14, 0.42, 0.1), PAINT, R=R)
        for s in (-1, 1):
            mb.box((head[0], s * 0.2, head[2]), (0.1, 0.06, 0.14), RUBBER, R=R)
    return mb


def build_pallet_jack(j: Jack, index: int, instance_id: int, mats: Materials,
                      loads: LoadMeshes) -> tuple[list, list]:
    """-> (parts of the labelled instance, unlabelled objects it carries)."""
    paint = (mats.surface(f"jack_paint_{index}", slot(j.surfaces, 0))
             or mats.plain(f"jack_paint_{index}", j.color, roughness=0.35, coat=0.3))
    rubber = (mats.surface(f"jack_rubber_{index}", slot(j.surfaces, 1))
              or mats.plain("jack_rubber", (0.04, 0.04, 0.04), roughness=0.8))
    materials = [paint, rubber,
                 mats.plain("jack_steel", (0.5, 0.5, 0.52), roughness=0.4, metallic=0.8),
                 mats.plain("jack_chrome", (0.9, 0.9, 0.9), roughness=0.1, metallic=1.0)]
    mesh = jack_mesh(j).build(f"pallet_jack_{index}", materials)
    ob = add_object(f"pallet_jack_{index}", mesh, location=(j.x, j.y, 0.0), yaw=j.yaw,
                    pass_index=instance_id)
    carried = []
    if j.load is not None:
        x_min, x_max = jack_extent(j)
        cx = x_max - 0.6  # pallet heel against the fork heel (forks enter between the blocks)
        mesh = loads.get(j.load.kind, j.load.variant, j.load.height, 1.2, 0.8)
        c, s = math.cos(j.yaw), math.sin(j.yaw)
        carried.append(loads.dress(add_object(f"jack_load_{index}", mesh,
                                              location=(j.x + c * cx, j.y + s * cx, j.fork_height - 0.085),
                                              yaw=j.yaw), j.load.look))
    return [ob], carried
