"""The building of a frame: hall size, rack rows and aisles, stock on the racks, dock doors,
floor paint and wall colours.

World frame: metres, Z up. The hall spans x in [0, width], y in [0, length]; dock doors are
in the wall y = 0, in front of an open staging area; double-sided rack rows run along +y
separated by aisles, split by an optional cross-aisle.
"""

from __future__ import annotations

from blender.palettes import CARDBOARD, LINE_COLORS, PAINT, RACK_BEAM, RACK_FRAME, WALLS
from blender.plan.draw import Rng, integer, jitter, pick, uniform
from blender.plan.scene_config import LayoutConfig, MaterialConfig
from blender.plan.scene_plan import (
    Door,
    Floor,
    FloorLine,
    Layout,
    RackColors,
    RackRow,
    StockColors,
    StockItem,
    Walls,
    XSpan,
    YSpan,
)

# Racks: the top beam stays this far under the ceiling (sprinklers, lights, trusses).
RACK_CEILING_CLEARANCE_M = 1.5
# a beam level is only added with room for a load between it and the top beam
MIN_LOAD_ROOM_M = 1.0
# the gap between the two halves of a back-to-back row (fire code flue space)
FLUE_M = 0.25
# rows end this far from the back wall: a service aisle along it
BACK_AISLE_M = (1.5, 3.0)
# a cross-aisle only splits rows long enough to still hold bays on both sides ...
CROSS_AISLE_MIN_RUN_M = 14.0
# ... and sits in the middle part of the run, as a fire/escape route does
CROSS_AISLE_AT = (0.35, 0.65)
# no new row unless it leaves this much floor to the far side wall
FAR_WALL_MIN_GAP_M = 1.5

# Stock on the racks: draw table (repeats are weights), two pallet slots per bay and level.
STOCK_DRAW = ("boxes", "boxes", "wrapped", "wrapped", "crate", "pallet")
EMPTY_PALLET_H = 0.14
LOAD_HEIGHT_M = (0.5, 1.5)     # goods on a pallet, pallet included ...
LOAD_MIN_TOP_M = 0.55          # ... at least this high even under a low beam
LOAD_UNDER_BEAM_M = 0.3        # a forklift needs this much lift room under the next beam
TOP_LEVEL_ROOM_M = 1.8         # room above the top beam counts as one more level gap
BEAM_HEIGHT_M = 0.12           # loads on an upper level stand on the beam top
SLOT_JITTER_M = (0.04, 0.05)   # hand-placed pallets: off the slot centre in x, y
PALLET_LENGTH_M = 1.2          # EUR pallet, capped by the rack depth (+ overhang) ...
PALLET_WIDTH_M = 1.0           # ... and by the slot width less the gap between pallets
PALLET_OVERHANG_M = 0.05
PALLET_GAP_M = 0.15

# Dock doors are spread along the wall y = 0 at a random offset from an even pitch.
DOOR_PITCH_JITTER = 0.2        # share of the pitch
DOOR_MIN_GAP_M = 0.6           # wall between two doors
DOOR_CORNER_MARGIN_M = 0.5     # wall between a door and a corner

# Floor paint: the usual markings of a warehouse.
LANE_YELLOW_PROB = 0.8         # else white
WALKWAY_PROB = 0.7             # a pedestrian walkway along one side wall
WALKWAY_WIDTH_M = 1.2
LINE_WIDTH_M = 0.1
STAGING_LINE_WIDTH_M = 0.12
RACK_LINE_OFFSET_M = 0.15      # lines along rack faces keep trucks off the uprights
STAGING_LINE_SETBACK_M = 0.6   # the staging-area line runs this far before the racks
KEEP_CLEAR_DEPTH_M = 4.0       # keep-clear box in front of each dock door
WALL_BAND_HEIGHT_M = (1.0, 2.5)
WRAP_RGB = (0.85, 0.87, 0.88)  # stretch film
CRATE_PAINTS = ("blue", "grey", "red", "green")


def plan_layout(cfg: LayoutConfig, rng: Rng) -> Layout:
    width, length, height = uniform(rng, cfg.width), uniform(rng, cfg.length), uniform(rng, cfg.height)
    rack_h = min(uniform(rng, cfg.rack_height), height - RACK_CEILING_CLEARANCE_M)
    step = uniform(rng, cfg.level_step)
    levels = [0.0]
    while levels[-1] + step + MIN_LOAD_ROOM_M < rack_h:
        levels.append(round(levels[-1] + step, 3))
    depth, bay_w = uniform(rng, cfg.rack_depth), uniform(rng, cfg.bay_width)
    row_w = 2 * depth + FLUE_M
    open_d = uniform(rng, cfg.open_area_depth)
    y_lo, y_hi = open_d, length - uniform(rng, BACK_AISLE_M)
    cross = None
    if rng.random() < cfg.cross_aisle_prob and y_hi - y_lo > CROSS_AISLE_MIN_RUN_M:
        cw = uniform(rng, cfg.cross_aisle_width)
        run = y_hi - y_lo
        yc = uniform(rng, (y_lo + CROSS_AISLE_AT[0] * run, y_lo + CROSS_AISLE_AT[1] * run))
        cross = YSpan(yc - cw / 2, yc + cw / 2)
    segments = [(y_lo, y_hi)] if cross is None else [(y_lo, cross.y0), (cross.y1, y_hi)]

    rows, aisles = [], []
    x = uniform(rng, cfg.aisle_width)  # aisle along the side wall
    aisles.append(XSpan(0.0, x))
    while True:
        aisle = uniform(rng, cfg.aisle_width)
        if x + row_w + FAR_WALL_MIN_GAP_M > width:
            break
        for s0, s1 in segments:
            n_bays = int((s1 - s0) // bay_w)
            if n_bays < 1:
                continue
            rows.append(RackRow(x0=round(x, 4), x1=round(x + row_w, 4), y0=round(s0, 4),
                                y1=round(s0 + n_bays * bay_w, 4), depth=depth, flue=FLUE_M,
                                bay_width=bay_w, n_bays=n_bays, levels=levels, height=rack_h))
        aisles.append(XSpan(x + row_w, min(width, x + row_w + aisle)))
        x += row_w + aisle
    return Layout(width=width, length=length, height=height, racks=rows, aisles=aisles,
                  rack_y=[y_lo, y_hi], cross_aisle=cross, open_area=YSpan(0.0, open_d))


def plan_stock(layout: Layout, cfg: LayoutConfig, rng: Rng) -> list[StockItem]:
    fill = uniform(rng, cfg.stock_fill)
    out = []
    for row in layout.racks:
        levels = row.levels
        gaps = [b - a for a, b in zip(levels, levels[1:] + [row.height + TOP_LEVEL_ROOM_M], strict=True)]
        for side in (0, 1):
            cx = row.x0 + row.depth / 2 if side == 0 else row.x1 - row.depth / 2
            for b in range(row.n_bays):
                for li, z in enumerate(levels):
                    for k in range(2):
                        if rng.random() > fill:
                            continue
                        kind = pick(rng, STOCK_DRAW)
                        h = EMPTY_PALLET_H if kind == "pallet" else uniform(
                            rng, (LOAD_HEIGHT_M[0], max(LOAD_MIN_TOP_M, min(LOAD_HEIGHT_M[1], gaps[li] - LOAD_UNDER_BEAM_M))))
                        slot = row.bay_width / 2
                        x = round(cx + rng.uniform(-SLOT_JITTER_M[0], SLOT_JITTER_M[0]), 4)
                        y = round(row.y0 + b * row.bay_width + (k + 0.5) * slot
                                  + rng.uniform(-SLOT_JITTER_M[1], SLOT_JITTER_M[1]), 4)
                        out.append(StockItem(
                            kind=kind, x=x, y=y, z=z + (0.0 if li == 0 else BEAM_HEIGHT_M),
                            length=min(PALLET_LENGTH_M, row.depth + PALLET_OVERHANG_M),
                            width=min(PALLET_WIDTH_M, slot - PALLET_GAP_M),
                            height=round(h, 3), variant=int(rng.integers(4))))
    return out


def plan_doors(layout: Layout, cfg: LayoutConfig, rng: Rng) -> list[Door]:
    n = integer(rng, cfg.dock_doors)
    width = layout.width
    pitch = width / (n + 1)
    doors = []
    for i in range(n):
        w = uniform(rng, cfg.dock_door_width)
        x = (i + 1) * pitch + rng.uniform(-DOOR_PITCH_JITTER, DOOR_PITCH_JITTER) * pitch
        doors.append(Door(x=x, width=w, height=uniform(rng, cfg.dock_door_height),
                          open=bool(rng.random() < cfg.dock_open_prob)))
    doors.sort(key=lambda d: d.x)
    for i in range(1, n):
        min_x = doors[i - 1].x + (doors[i - 1].width + doors[i].width) / 2 + DOOR_MIN_GAP_M
        doors[i].x = max(doors[i].x, min_x)
    return [d for d in doors if d.x + d.width / 2 < width - DOOR_CORNER_MARGIN_M
            and d.x - d.width / 2 > DOOR_CORNER_MARGIN_M]


def plan_walls(cfg: MaterialConfig, rng: Rng) -> Walls:
    return Walls(lower=jitter(rng, pick(rng, WALLS[:cfg.wall_palettes])[0], 0.03),
                 upper=jitter(rng, pick(rng, WALLS[:cfg.wall_palettes])[1], 0.03),
                 band_height=uniform(rng, WALL_BAND_HEIGHT_M))


def plan_rack_colors(rng: Rng) -> RackColors:
    return RackColors(frame=jitter(rng, pick(rng, RACK_FRAME), 0.03), beam=jitter(rng, pick(rng, RACK_BEAM), 0.03))


def plan_stock_colors(rng: Rng) -> StockColors:
    return StockColors(cardboard=[jitter(rng, c, 0.03) for c in CARDBOARD], wrap=jitter(rng, WRAP_RGB, 0.04),
                       crate=jitter(rng, PAINT[pick(rng, CRATE_PAINTS)], 0.03))


def plan_floor(layout: Layout, doors: list[Door], cfg: MaterialConfig, rng: Rng) -> Floor:
    lines = []

    def line(x0, y0, x1, y1, width, color):
        lines.append(FloorLine(round(x0, 4), round(y0, 4), round(x1, 4), round(y1, 4), width,
                               list(LINE_COLORS[color])))

    lane = "yellow" if rng.random() < LANE_YELLOW_PROB else "white"
    off = RACK_LINE_OFFSET_M
    for row in layout.racks:
        line(row.x0 - off, row.y0, row.x0 - off, row.y1, LINE_WIDTH_M, lane)
        line(row.x1 + off, row.y0, row.x1 + off, row.y1, LINE_WIDTH_M, lane)
    oy = layout.open_area.y1
    line(0.3, oy - STAGING_LINE_SETBACK_M, layout.width - 0.3, oy - STAGING_LINE_SETBACK_M, STAGING_LINE_WIDTH_M, lane)
    if rng.random() < WALKWAY_PROB:
        walk = "green" if rng.random() < 0.5 else "yellow"
        wx = 1.0 if rng.random() < 0.5 else layout.width - 2.2  # 1 m off either side wall
        line(wx, 0.3, wx, layout.length - 0.3, LINE_WIDTH_M, walk)
        line(wx + WALKWAY_WIDTH_M, 0.3, wx + WALKWAY_WIDTH_M, layout.length - 0.3, LINE_WIDTH_M, walk)
    for d in doors:
        x0, x1, y1 = d.x - d.width / 2 - 0.2, d.x + d.width / 2 + 0.2, KEEP_CLEAR_DEPTH_M
        for seg in ((x0, 0.2, x0, y1), (x1, 0.2, x1, y1), (x0, y1, x1, y1)):
            line(*seg, LINE_WIDTH_M, lane)
    return Floor(value=uniform(rng, cfg.floor_value), stains=uniform(rng, cfg.floor_stains),
                 roughness=uniform(rng, cfg.floor_roughness), tint=jitter(rng, (0.5, 0.5, 0.5), 0.03),
                 lines=lines)
