"""The Blender-backed frame function of blender.render and blender.clip: a scene plan is
built in bpy, rendered with Cycles and annotated, each stage timed (bench/render.py times
the same steps one by one).

bpy is imported on first use, so config errors come back without starting Blender.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable

import numpy as np

from blender.job_config import SceneJobConfig
from blender.plan import ScenePlan, load_human_index, plan_scene

Rng = np.random.Generator
# what a frame function returns: (rgb HxWx3 uint8, image-record extras, annotations, meta)
Frame = tuple[np.ndarray, dict, list[dict], dict]


def image_rngs(seed: int, index: int) -> tuple[Rng, Rng, Rng]:
    """Independent streams for (scene plan, render noise seed, post effects) of one image.

    Separate streams keep e.g. the post effects of image i unchanged when the scene planner
    starts drawing more numbers.
    """
    children = np.random.SeedSequence([seed, index]).spawn(3)
    return tuple(np.random.default_rng(c) for c in children)  # type: ignore[return-value]


def site_assets(configs) -> list:
    """The `assets:` entries imported (and checked) and measured: the planner's AssetSpecs.
    Imports bpy only when there are some."""
    if not configs:
        return []
    from blender import cycles
    from blender.assets.user import measure_assets

    with cycles.quiet_blender():
        return measure_assets(configs)


class BlenderFrames:
    """Plan -> bpy scene -> Cycles render -> annotations, in steps that can be timed apart."""

    def __init__(self, cfg: SceneJobConfig):
        """`cfg` needs .render, .annotation, .scene, .humans_dir (and .dataset.seed for build())."""
        import bpy

        from blender import cycles

        self.bpy, self.cycles, self.cfg = bpy, cycles, cfg
        self.width, self.height = cfg.render.resolution
        # the library is only needed when pedestrians can appear (tests render without it)
        sc = cfg.scene
        people = sc.pedestrians.count[1] > 0 or (sc.pallet_jacks.count[1] > 0 and sc.pallet_jacks.pushed_prob > 0)
        self.humans = load_human_index(cfg.humans_dir) if people else None
        # a site's own models are imported (and checked) once, before any frame
        self.assets = site_assets(getattr(cfg, "assets", []))
        # a calibrated lens: Cycles renders the larger undistorted view, blender.distort warps it
        self.warp = None
        render_cfg = cfg.render
        if sc.camera.calibration:
            from blender.distort import LensWarp
            from blender.plan.site import site_lens

            self.warp = LensWarp(site_lens(sc.camera.calibration, (self.width, self.height),
                                           cfg.render.lens_pixels))
            render_cfg = cfg.render.model_copy(update={"resolution": tuple(self.warp.lens.render_size)})
        self.renderer = cycles.Renderer(render_cfg)
        self.device = self.renderer.device  # what the manifest and each part record
        print(self.device.log_line(), file=sys.stderr, flush=True)

    def plan(self, index: int) -> tuple[ScenePlan, Rng, Rng]:
        """Image `index` of the dataset: its plan, and the rngs of its render seed and post effects."""
        scene_rng, seed_rng, post_rng = image_rngs(self.cfg.dataset.seed, index)
        plan = plan_scene(self.cfg.scene, scene_rng, negative=None, humans=self.humans,
                          aspect=self.width / self.height, assets=self.assets,
                          image_size=(self.width, self.height), lens_pixels=self.cfg.render.lens_pixels)
        return plan, seed_rng, post_rng

    def build(self, index: int) -> dict:
        """Plan image `index` from its own rng and build it."""
        return self.build_plan(*self.plan(index))

    def build_plan(self, plan: ScenePlan, seed_rng: Rng, post_rng: Rng) -> dict:
        from blender.scene import build_scene, clear_scene

        with self.cycles.quiet_blender():
            clear_scene()
            instances = build_scene(plan, self.cfg.humans_dir)
        return {"plan": plan, "instances": instances, "cycles_seed": int(seed_rng.integers(2**31)),
                "post_rng": post_rng}

    def render(self, state: dict) -> tuple[np.ndarray, np.ndarray]:
        rgb, index_map = self.renderer.render(self.bpy.context.scene, seed=state["cycles_seed"])
        if state["plan"].camera.lens is not None:
            rgb, index_map = self.warp.apply(rgb, index_map)
        if rgb.shape[:2] != (self.height, self.width):
            raise RuntimeError(f"rendered {rgb.shape[1]}x{rgb.shape[0]}, expected {self.width}x{self.height}")
        return rgb, index_map

    def annotate(self, state: dict, rgb: np.ndarray, index_map: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        from blender import post
        from blender.annotate import annotate

        a = self.cfg.annotation
        geoms = self.cycles.instance_geometry(state["instances"])
        P = self.cycles.camera_projection(self.bpy.context.scene)
        sil = None
        if state["plan"].camera.lens is not None:  # silhouettes through the same lens as the masks
            def sil(g):
                return self.warp.silhouette(g.vertices, g.triangles, P, a.silhouette_margin)
        anns = annotate(index_map, geoms, P, min_visibility=a.min_visibility, min_area=a.min_area,
                        margin=a.silhouette_margin, silhouette_fn=sil)
        if self.cfg.render.postprocess:
            rgb = post.apply_post(rgb, state["plan"].post, state["post_rng"])
        return rgb, anns

    def timed(self, make_plan: Callable[[], tuple[ScenePlan, Rng, Rng]]
              ) -> tuple[ScenePlan, np.ndarray, list[dict], dict[str, float]]:
        """One frame from `make_plan()`: (plan, rgb, annotations, seconds per stage); planning
        counts as build time."""
        t0 = time.perf_counter()
        state = self.build_plan(*make_plan())
        t1 = time.perf_counter()
        rgb, index_map = self.render(state)
        t2 = time.perf_counter()
        rgb, anns = self.annotate(state, rgb, index_map)
        t3 = time.perf_counter()
        seconds = {"build": round(t1 - t0, 3), "render": round(t2 - t1, 3), "annotate": round(t3 - t2, 3)}
        return state["plan"], rgb, anns, seconds

    def __call__(self, index: int) -> Frame:
        plan, rgb, anns, seconds = self.timed(lambda: self.plan(index))
        # the full plan is reproducible from (config, seed, index): keep only a summary here
        meta = {"seconds": seconds, "device": self.device.backend,
                "plan": {"camera": plan.camera.kind, "pedestrians": len(plan.pedestrians),
                         "pallet_jacks": len(plan.pallet_jacks), "distractors": len(plan.distractors),
                         "post": dataclasses.asdict(plan.post)}}
        if plan.assets:  # parts of jobs without site assets stay as they were
            meta["plan"]["assets"] = len(plan.assets)
        # camera kind and height ride on the image record so evaluation can slice by them
        extras = {"negative": bool(plan.negative), "camera": plan.camera.kind,
                  "camera_height_m": round(float(plan.camera.location[2]), 3)}
        return rgb, extras, anns, meta

    def close(self) -> None:
        from blender.scene import clear_scene

        clear_scene()
        self.renderer.close()


def make_frame_fn(cfg: SceneJobConfig) -> tuple[Callable[[int], Frame], Callable[[], None]]:
    frames = BlenderFrames(cfg)
    return frames, frames.close
