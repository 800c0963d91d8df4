"""Pallet racking: uprights and beams merged into one mesh per row, stock as linked duplicates."""

from __future__ import annotations

from blender.assets.loads import LoadMeshes
from blender.materials import Materials, slot
from blender.meshes import MeshBuilder, add_object
from blender.plan.layout import BEAM_HEIGHT_M
from blender.plan.scene_plan import RackRow, ScenePlan


def build_racks(plan: ScenePlan, mats: Materials, loads: LoadMeshes) -> list:
    painted = plan.materials.racks if plan.materials else []
    frame = (mats.surface("rack_frame", slot(painted, 0))
             or mats.plain("rack_frame", plan.rack_colors.frame, roughness=0.45, metallic=0.3))
    beam = (mats.surface("rack_beam", slot(painted, 1))
            or mats.plain("rack_beam", plan.rack_colors.beam, roughness=0.4, metallic=0.3))
    objs = []
    for i, row in enumerate(plan.layout.racks):
        objs.append(add_object(f"rack_{i}", _row_mesh(row, i).build(f"rack_{i}", [frame, beam])))
    for k, s in enumerate(plan.stock):
        mesh = loads.get(s.kind, s.variant, s.height, s.length, s.width)
        objs.append(loads.dress(add_object(f"stock_{k}", mesh, location=(s.x, s.y, s.z)), s.look))
    return objs


def _row_mesh(row: RackRow, i: int) -> MeshBuilder:
    mb = MeshBuilder()
    d, top = row.depth, row.height
    xs = [row.x0 + 0.045, row.x0 + d - 0.045, row.x1 - d + 0.045, row.x1 - 0.045]
    ys = [row.y0 + b * row.bay_width for b in range(row.n_bays + 1)]
    for x in xs:
        for y in ys:
            mb.box((x, y, top / 2 + 0.05), (0.09, 0.08, top + 0.1), 0)
    for side in (0, 1):  # frame ties between the front and back upright of each side
        xa, xb = xs[2 * side], xs[2 * side + 1]
        for y in ys:
            z = 0.3
            while z < top:
                mb.box(((xa + xb) / 2, y, z), (xb - xa, 0.03, 0.03), 0)
                z += 1.1
    beam_levels = [z for z in row.levels[1:]] + [top - BEAM_HEIGHT_M]
    for x in xs:
        for b in range(row.n_bays):
            y0, y1 = ys[b] + 0.04, ys[b + 1] - 0.04
            for z in beam_levels:
                mb.box_span((x - 0.03, y0, z), (x + 0.03, y1, z + BEAM_HEIGHT_M), 1)
    return mb
