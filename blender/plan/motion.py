"""A scene plan over time, for clips: walking pedestrians move through the walk phases of their
library mesh, pushed pallet jacks roll with their pusher, a robot camera glides forward; the
rest stays put. With `clip.routes` a walker walks from goal to goal over the free floor along
the shortest way (blender.plan.routes): its heading is where that way leads; where other movers
block every way on, it waits, and after ROUTE_PATIENCE_STEPS takes up its next goal. Without
routes a walker keeps its heading and turns back at racks and walls. A walker that sees a
static thing (site asset, prop, standing person, parked jack) or another mover (a walker, a
pushed jack with its pusher) in its way within LOOKAHEAD_M steps around it: it walks at the
smallest deviation from its heading, right side first, whose next step and look-ahead point
are clear, and takes its heading up again once the way is free. It looks ahead at where the
other movers will be, not only where they are (their last step's velocity), so two walkers
heading at each other step aside early. Behind a slower mover it cannot pass it slows down to
that mover's pace (SLOW_STEPS) instead of stopping; wedged against a mover it gives way to (a
pushed jack, a scripted walker, a walker before it in the order) it turns and walks away for a
moment (YIELD_STEPS), so the other can pass. A pushed jack keeps its lane (its pusher would
swing sideways), as do a scenario's scripted walkers; these and a walker with no way around
turn back, and where facing back is blocked too, they wait. All movers step together, one
after another in a fixed order (walkers by index, then pushed jacks), each checked against
where the others stand at that moment: no two movers' footprints overlap in any frame. What it
costs in waiting is measured by bench/crowd.py."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from blender.plan.actors import distractor_footprint, person_footprint
from blender.plan.draw import Rng
from blender.plan.geometry import Footprint, footprints_overlap, jack_footprint
from blender.plan.routes import GOAL_REACHED_M, ROUTE_PATIENCE_STEPS, Routes
from blender.plan.scene_plan import Jack, Layout, Person, ScenePlan
from blender.plan.site import asset_footprint

if TYPE_CHECKING:  # job_config imports the plan package: only the type is needed here
    from blender.job_config import ClipSettings

# what a clip's frames look like depends on the motion model: part of the clip's config hash,
# so a clip folder half-rendered under an older model is refused instead of continued.
# 2: walkers step around what they see in their way (1: they turned back); 3: a walker steps
# through its own body's walk cycle where the library has one (pipeline.humans CYCLE_PHASES),
# and with clip.routes walks from goal to goal along planned routes
# 4: walkers look ahead at where the other movers will be (their last step's velocity), slow
# down behind a mover instead of stopping, and give way (YIELD_STEPS)
MOTION_VERSION = 4

# walkers keep this far from walls and rack faces, and turn around there
WALK_CLEARANCE_M = 0.45
# movers' footprints and static things' footprints are each grown by this before the overlap
# test (a 0.2 m gap): under the planner's placement margin (FloorSpace.free, 0.15), so a
# mover's planned start, rounded as the plan stores it, is clear (of movers' too)
STATIC_CLEARANCE_M = 0.1
# movers' footprints are grown by this against each other's: none (touching, not overlapping).
# A person's walking footprint (0.75 x 0.55 m) already holds its swinging arms and stride, and
# scenario near_miss passes a jack at 0.6 m between centres: a 0.2 m gap would stop that pass
MOVER_CLEARANCE_M = 0.0
# a walker looks this far along its heading for things in its way (two body lengths: enough to
# step aside before touching at walking speed, short enough not to swerve at far-off things)
LOOKAHEAD_M = 1.2
# a walker's deviations from its heading, tried in order: right of way to the right (yaw grows
# counter-clockwise, so right is negative). Not square to it: a walker would pace sideways
# along a wall of crates instead of turning back
STEER_DEG = (0.0, -30.0, 30.0, -60.0, 60.0)
# the look-ahead keeps a walker's footprint this far off others' (each grown by it: 0.2 m apart),
# so it passes a mover coming the other way with room to spare instead of blocking it
STEER_CLEARANCE_M = 0.1
# where a full step is blocked by a mover, a walker tries these shares of it before it waits:
# it follows a slower mover at that mover's pace, as people in a crowd do, instead of stopping
SLOW_STEPS = (0.5, 0.25)
# a walker on a route blocked this many steps by a mover it gives way to (a pushed jack, a
# scripted walker, a walker before it in the order) turns and walks away at half pace for
# YIELD_STEPS steps, then takes its way up again: two movers wedged against each other would
# otherwise both wait until one gives up its goal. Only one of two walkers yields: no dance
YIELD_AFTER_STEPS = 5
YIELD_STEPS = 10


@dataclass
class PhaseMesh:
    id: str
    phase: float           # 0..1 of a full walk cycle (two steps)


@dataclass
class PersonMotion:
    speed: float           # m/s; 0 stands still
    cycle: list[PhaseMesh]  # library meshes to step through; fewer than 2: the mesh stays
    keeps_lane: bool = False   # a scenario's scripted walker: no stepping around (its pass is the point)
    goals: list[tuple[float, float]] = field(default_factory=list)   # clip.routes: where it walks, in turn


@dataclass
class JackMotion:
    speed: float


@dataclass
class Motion:
    pedestrians: list[PersonMotion]
    pallet_jacks: list[JackMotion]
    camera_speed: float
    plan_attempt: int = 0  # which candidate plan (and rng stream) of the clip this is


def _blocked(layout: Layout, x: float, y: float, margin: float = WALK_CLEARANCE_M) -> bool:
    if not (margin <= x <= layout.width - margin and margin <= y <= layout.length - margin):
        return True
    return any(r.x0 - margin <= x <= r.x1 + margin and r.y0 - margin <= y <= r.y1 + margin
               for r in layout.racks)


def phase_cycle(library: list[dict], mesh_id: str | None, pose: str) -> list[dict]:
    """Library meshes of `pose` to cycle through, one per phase: the person's own body when
    the library holds several phases of it, else the closest stature per phase."""
    same_pose = [m for m in library if m["pose"] == pose]
    own = next((m for m in library if m["id"] == mesh_id), None)
    if own is None or not same_pose:
        return []
    body = [m for m in same_pose if m.get("body") == own.get("body")]
    if len({m["phase"] for m in body}) >= 2:
        pool = body
    else:
        pool = []
        for phase in sorted({m["phase"] for m in same_pose}):
            cands = [m for m in same_pose if m["phase"] == phase]
            pool.append(min(cands, key=lambda m: (abs(m["stature"] - own["stature"]), m["id"])))
    return sorted(pool, key=lambda m: m["phase"])


def plan_motion(plan: ScenePlan, cfg: ClipSettings, rng: Rng, library: list[dict] | None,
                plan_attempt: int = 0) -> Motion:
    """Who moves how: speeds per walker / pushed jack and their walk-phase mesh cycles."""
    peds, jacks = [], []
    pushers = {j.pushed_by for j in plan.pallet_jacks if j.pushed_by is not None}
    for i, p in enumerate(plan.pedestrians):
        walking = p.pose == "walk" and i not in pushers
        cycle = phase_cycle(library or [], p.mesh_id, p.pose) if (walking or i in pushers) else []
        peds.append(PersonMotion(speed=float(rng.uniform(*cfg.walk_speed)) if walking else 0.0,
                                 cycle=[PhaseMesh(m["id"], m["phase"]) for m in cycle]))
    for j in plan.pallet_jacks:
        jacks.append(JackMotion(float(rng.uniform(*cfg.push_speed)) if j.pushed_by is not None else 0.0))
    motion = Motion(peds, jacks, cfg.robot_speed if cfg.camera == "robot" else 0.0, plan_attempt)
    if cfg.routes:
        routes = floor_routes(plan.layout, static_footprints(plan, motion))
        for p, pm in zip(plan.pedestrians, peds, strict=True):
            if pm.speed > 0 and not pm.keeps_lane:
                pm.goals = routes.goals(rng, p.x, p.y)
    return motion


def floor_routes(layout: Layout, static: list[Footprint]) -> Routes:
    """The free floor of a clip's hall for its walkers' routes; `static`: static_footprints."""
    return Routes(layout, static, WALK_CLEARANCE_M)


def static_footprints(plan: ScenePlan, motion: Motion) -> list[Footprint]:
    """The floor footprints of everything in `plan` that stays put under `motion`: site assets,
    props, people who neither walk nor push a moving jack, and parked pallet jacks."""
    rolling = [m.speed > 0 for m in motion.pallet_jacks]
    carried = {j.pushed_by for j, r in zip(plan.pallet_jacks, rolling, strict=True) if r}
    return ([asset_footprint(a) for a in plan.assets]
            + [distractor_footprint(d) for d in plan.distractors]
            + [person_footprint(p) for i, (p, m) in enumerate(zip(plan.pedestrians, motion.pedestrians, strict=True))
               if m.speed <= 0 and i not in carried]
            + [jack_footprint(j) for j, r in zip(plan.pallet_jacks, rolling, strict=True) if not r])


Body = Callable[[float, float, float], list[Footprint]]   # a mover's footprints at (x, y, yaw)


def _clear(layout: Layout | None, static: list[Footprint], movers: list[Footprint], body: Body,
           x: float, y: float, yaw: float, mover_clearance: float = MOVER_CLEARANCE_M) -> bool:
    """Whether a mover at (x, y, yaw) keeps clear of walls and racks (its centre; `layout` None:
    not checked), of the static things and of the other movers (`movers`: their footprints; its
    footprints)."""
    if layout is not None and _blocked(layout, x, y):
        return False
    fps = body(x, y, yaw)
    return not any(footprints_overlap(fp, s, STATIC_CLEARANCE_M) for fp in fps for s in static) and not any(
        footprints_overlap(fp, o, mover_clearance) for fp in fps for o in movers)


@dataclass
class _Mover:
    """A walker, or a moving jack with its pusher (one body: its footprints never block it)."""

    body: Body
    x: float
    y: float
    yaw: float          # facing now
    speed: float
    heading: float      # where it is going: its yaw unless it is stepping around something
    steers: bool        # walkers step around things; pushed jacks keep their lane
    dist: float = 0.0   # walked so far
    goals: list[tuple[float, float]] = field(default_factory=list)   # its route's goals (none: keeps its heading)
    goal: int = 0       # the one it walks to
    waited: int = 0     # steps in a row it could not move
    vx: float = 0.0     # its last step's velocity (m/s): what the others anticipate
    vy: float = 0.0
    yielding: int = 0   # steps left of walking away to give way

    def footprints(self) -> list[Footprint]:
        return self.body(self.x, self.y, self.yaw)

    def ahead(self, yaw: float, dist: float) -> tuple[float, float]:
        return self.x + math.cos(yaw) * dist, self.y + math.sin(yaw) * dist

    def footprints_in(self, seconds: float) -> list[Footprint]:
        """Where it will stand `seconds` from now if it keeps its last step's velocity."""
        return self.body(self.x + self.vx * seconds, self.y + self.vy * seconds, self.yaw)


def _move(m: _Mover, layout: Layout, static: list[Footprint], others: list[Footprint], dt: float,
          yaw: float, shares: tuple[float, ...]) -> bool:
    """Step `m` along `yaw` by the first share of its step that is clear; whether it moved."""
    for share in shares:
        nx, ny = m.ahead(yaw, m.speed * dt * share)
        if _clear(layout, static, others, m.body, nx, ny, yaw):
            m.vx, m.vy = (nx - m.x) / dt, (ny - m.y) / dt
            m.x, m.y, m.yaw = nx, ny, yaw
            m.dist += m.speed * dt * share
            return True
    m.vx = m.vy = 0.0
    return False


def _step(m: _Mover, layout: Layout, static: list[Footprint], others: list[Footprint], dt: float,
          routes: Routes | None, coming: Sequence[Footprint] = (), gives_way: Sequence[Footprint] = ()) -> None:
    """One step of mover `m` (see the module docstring); `others`: the other movers' footprints,
    `coming`: theirs when `m` would reach its look-ahead point (ORCA's anticipation without its
    reciprocity: each walker leaves room for where the others are heading); `gives_way`: the
    footprints of the movers it yields to (YIELD_AFTER_STEPS)."""
    step = m.speed * dt
    if m.yielding:
        m.yielding -= 1
        away = m.heading + math.pi
        for dev in STEER_DEG:
            if _move(m, layout, static, others, dt, away + math.radians(dev), (0.5,)):
                break
        return
    if m.goals and routes is not None:
        if math.hypot(m.x - m.goals[m.goal][0], m.y - m.goals[m.goal][1]) < GOAL_REACHED_M:
            m.goal = (m.goal + 1) % len(m.goals)
        wx, wy = routes.waypoint(m.x, m.y, m.goals[m.goal])
        if math.hypot(wx - m.x, wy - m.y) > 1e-9:
            m.heading = math.atan2(wy - m.y, wx - m.x)
    # a walker on a route always looks for a way on; one without turns back at walls and racks
    if m.steers and (m.goals or not _blocked(layout, *m.ahead(m.heading, step))):
        for dev in STEER_DEG:
            yaw = m.heading + math.radians(dev)
            if (_clear(layout, static, others, m.body, *m.ahead(yaw, step), yaw)
                    and _clear(None, static, [*others, *coming], m.body, *m.ahead(yaw, LOOKAHEAD_M), yaw,
                               STEER_CLEARANCE_M)):
                break
        else:   # no way around in sight: walk on while the next step is clear
            yaw = m.heading
    else:
        yaw = m.heading
    # a walker behind a mover slows down to a share of its step before it stops
    if _move(m, layout, static, others, dt, yaw, (1.0, *SLOW_STEPS) if m.steers else (1.0,)):
        m.waited = 0
    elif m.goals and routes is not None:   # a walker on a route waits for the way to clear ...
        m.waited += 1
        if m.waited >= ROUTE_PATIENCE_STEPS:   # ... or takes up its next goal
            m.goal, m.waited = (m.goal + 1) % len(m.goals), 0
        elif m.waited >= YIELD_AFTER_STEPS and any(   # ... or gives way
                footprints_overlap(fp, o, MOVER_CLEARANCE_M) for fp in m.body(*m.ahead(yaw, step), yaw)
                for o in gives_way):
            m.yielding = YIELD_STEPS
    elif _clear(layout, static, others, m.body, m.x, m.y, m.heading + math.pi):
        m.heading += math.pi
        m.yaw = m.heading


def _walk(layout: Layout, static: list[Footprint], movers: list[_Mover], dt: float, steps: int,
          routes: Routes | None) -> None:
    """Advance `movers` by `steps` steps, one mover after another in list order, each checked
    against the others where they stand then (this step's place for those before it, the last
    step's for those after). Every pose taken is clear of every other mover's pose at the end
    of the step, so no two movers overlap in any frame."""
    placed = [m.footprints() for m in movers]
    for _ in range(steps):
        for i, m in enumerate(movers):
            others = [fp for k, fps in enumerate(placed) if k != i for fp in fps]
            coming, gives_way = [], []
            if m.steers and m.speed > 0:
                ahead_s = LOOKAHEAD_M / m.speed   # when it would reach its look-ahead point
                coming = [fp for k, o in enumerate(movers) if k != i and (o.vx or o.vy)
                          for fp in o.footprints_in(ahead_s)]
                gives_way = [fp for k, fps in enumerate(placed) if k != i and (k < i or not movers[k].steers)
                             for fp in fps]
            _step(m, layout, static, others, dt, routes, coming, gives_way)
            placed[i] = m.footprints()


def _pusher_pose(jack0: Jack, pusher0: Person, x: float, y: float, yaw: float) -> tuple[float, float, float]:
    """Where the pusher of a jack moved from its plan pose to (x, y, yaw) stands: at the same
    offset from the jack, rotated with it when it turned around."""
    ox, oy = pusher0.x - jack0.x, pusher0.y - jack0.y
    turn = yaw - jack0.yaw
    c, s = math.cos(turn), math.sin(turn)
    return x + c * ox - s * oy, y + s * ox + c * oy, pusher0.yaw + turn


def _jack_body(jack0: Jack, pusher0: Person | None) -> Body:
    own, person = jack_footprint(jack0), None if pusher0 is None else person_footprint(pusher0)

    def body(x: float, y: float, yaw: float) -> list[Footprint]:
        fps = [replace(own, x=x, y=y, yaw=yaw)]
        if person is not None:
            px, py, pyaw = _pusher_pose(jack0, pusher0, x, y, yaw)
            fps.append(replace(person, x=px, y=py, yaw=pyaw))
        return fps
    return body


def _person_body(p: Person) -> Body:
    own = person_footprint(p)
    return lambda x, y, yaw: [replace(own, x=x, y=y, yaw=yaw)]


def _set_phase(p: Person, cycle: list[PhaseMesh], start: str | None, dist: float, stride_m: float) -> None:
    """The mesh of the phase reached after walking `dist` from the phase of mesh `start`."""
    if len(cycle) < 2:
        return
    phase0 = next((m.phase for m in cycle if m.id == start), 0.0)
    phase = (phase0 + dist / stride_m) % 1.0
    p.mesh_id = min(cycle, key=lambda m: min(abs(m.phase - phase), 1 - abs(m.phase - phase))).id


class MoverStates:
    """Where the movers of one clip stood at the last frame planned. The walk is a step-by-step
    simulation whose only state is the movers' poses, so frame k continues from an earlier
    frame's poses instead of replaying k steps from frame 0 (same floats, same order: the
    same plan). A clip renders its frames in order, so a clip of n frames costs n steps, not
    n^2 / 2. Valid for one (base plan, motion, fps) only."""

    def __init__(self):
        self.frame = 0
        # x, y, yaw, heading, dist, goal, waited, vx, vy, yielding
        self.poses: list[tuple[float, float, float, float, float, int, int, float, float, int]] | None = None
        self.routes: Routes | None = None    # the clip's floor grid and the ways to goals found so far


def frame_plan(base: ScenePlan, motion: Motion, frame: int, fps: float, stride_m: float,
               states: MoverStates | None = None) -> ScenePlan:
    """The plan of frame `frame`: the base plan with movers advanced by frame/fps seconds.
    `states` (one per clip) lets frames planned in order continue from the previous one."""
    plan = copy.deepcopy(base)
    dt = 1.0 / fps
    lay = plan.layout
    static = static_footprints(base, motion)
    walkers = [k for k, m in enumerate(motion.pedestrians) if m.speed > 0]
    rolling = [ji for ji, m in enumerate(motion.pallet_jacks) if m.speed > 0]
    movers = []
    for k in walkers:
        p = base.pedestrians[k]
        pm = motion.pedestrians[k]
        movers.append(_Mover(_person_body(p), p.x, p.y, p.yaw, pm.speed, p.yaw, steers=not pm.keeps_lane,
                             goals=list(pm.goals)))
    for ji in rolling:
        j, pi = base.pallet_jacks[ji], base.pallet_jacks[ji].pushed_by   # pi None: a scenario's jack drives on its own
        body = _jack_body(j, None if pi is None else base.pedestrians[pi])
        movers.append(_Mover(body, j.x, j.y, j.yaw, motion.pallet_jacks[ji].speed, j.yaw, steers=False))
    routes = None
    if any(m.goals for m in movers):
        routes = states.routes if states is not None and states.routes is not None else floor_routes(lay, static)
        if states is not None:
            states.routes = routes
    start = 0
    if states is not None and states.poses is not None and states.frame <= frame:
        start = states.frame
        for m, pose in zip(movers, states.poses, strict=True):
            m.x, m.y, m.yaw, m.heading, m.dist, m.goal, m.waited, m.vx, m.vy, m.yielding = pose
    _walk(lay, static, movers, dt, frame - start, routes)
    if states is not None:
        states.frame = frame
        states.poses = [(m.x, m.y, m.yaw, m.heading, m.dist, m.goal, m.waited, m.vx, m.vy, m.yielding)
                        for m in movers]
    for k, m in zip(walkers, movers[:len(walkers)], strict=True):
        p = plan.pedestrians[k]
        p.x, p.y, p.yaw = m.x, m.y, m.yaw
        _set_phase(p, motion.pedestrians[k].cycle, base.pedestrians[k].mesh_id, m.dist, stride_m)
    for ji, m in zip(rolling, movers[len(walkers):], strict=True):
        j = plan.pallet_jacks[ji]
        j.x, j.y, j.yaw = m.x, m.y, m.yaw
        pi = j.pushed_by
        if pi is None:
            continue
        pusher0 = base.pedestrians[pi]
        p = plan.pedestrians[pi]
        p.x, p.y, p.yaw = _pusher_pose(base.pallet_jacks[ji], pusher0, j.x, j.y, j.yaw)
        _set_phase(p, motion.pedestrians[pi].cycle, pusher0.mesh_id, m.dist, stride_m)
    if motion.camera_speed > 0:
        cam = plan.camera
        fwd = -np.asarray(cam.matrix, float)[:, 2]
        fwd[2] = 0.0
        n = np.linalg.norm(fwd)
        if n > 1e-6:
            cam.location = (np.asarray(cam.location) + fwd / n * motion.camera_speed * frame * dt).tolist()
    return plan
