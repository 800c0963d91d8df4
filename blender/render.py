"""CLI: render config -> images + exact COCO annotations, resumable and shardable.

    python -m blender.render --config configs/render.yaml --out data/synth \
        [--num-images N] [--seed S] [--shard K/N] [--merge-only] [key=value ...]

Image i depends only on (resolved config, seed, i): its randomness comes from
SeedSequence([seed, i]), so shard K of N renders the indices i % N == K-1 and the merged
annotations.json is byte-identical to a single-machine run. Whichever process finds every
part present merges them (or run again with --merge-only).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from blender import writer
from blender.config import RenderJobConfig, config_hash
from pipeline.common import (
    CLASS_NAMES,
    UserError,
    atomic_write_text,
    config_to_dict,
    config_to_yaml,
    ensure_writable_dir,
    load_config,
    run_cli,
)

# A frame function: index -> (rgb HxWx3 uint8, image extras, annotations, meta). The real
# one needs bpy (imported on first use, so config errors come back without starting Blender).
FrameFn = Callable[[int], tuple[np.ndarray, dict, list[dict], dict]]


def image_rngs(seed: int, index: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent streams for (scene plan, render noise seed, post effects) of one image.

    Separate streams keep e.g. the post effects of image i unchanged when the scene planner
    starts drawing more numbers.
    """
    children = np.random.SeedSequence([seed, index]).spawn(3)
    return tuple(np.random.default_rng(c) for c in children)  # type: ignore[return-value]


class BlenderFrames:
    """The Blender-backed frame function, in steps that bench/render.py times separately."""

    def __init__(self, cfg: RenderJobConfig):
        """`cfg` needs .render, .annotation, .scene, .humans_dir (and .dataset.seed for build())."""
        import bpy

        from blender import engine
        from blender.randomize import load_human_index

        self.bpy, self.engine_mod, self.cfg = bpy, engine, cfg
        self.width, self.height = cfg.render.resolution
        # the library is only needed when pedestrians can appear (tests render without it)
        sc = cfg.scene
        people = sc.pedestrians.count[1] > 0 or (sc.pallet_jacks.count[1] > 0 and sc.pallet_jacks.pushed_prob > 0)
        self.humans = load_human_index(cfg.humans_dir) if people else None
        self.engine = engine.Engine(cfg.render)

    def build(self, index: int) -> dict:
        """Plan image `index` from its own rng and build it."""
        from blender.randomize import plan_scene

        scene_rng, seed_rng, post_rng = image_rngs(self.cfg.dataset.seed, index)
        plan = plan_scene(self.cfg.scene, scene_rng, negative=None, humans=self.humans,
                          aspect=self.width / self.height)
        return self.build_plan(plan, seed_rng, post_rng)

    def build_plan(self, plan: dict, seed_rng: np.random.Generator, post_rng: np.random.Generator) -> dict:
        from blender.scene import build_scene, clear_scene

        with self.engine_mod.quiet_blender():
            clear_scene()
            instances = build_scene(plan, self.cfg.humans_dir)
        return {"plan": plan, "instances": instances, "cycles_seed": int(seed_rng.integers(2**31)),
                "post_rng": post_rng}

    def render(self, state: dict) -> tuple[np.ndarray, np.ndarray]:
        rgb, index_map = self.engine.render(self.bpy.context.scene, seed=state["cycles_seed"])
        if rgb.shape[:2] != (self.height, self.width):
            raise RuntimeError(f"rendered {rgb.shape[1]}x{rgb.shape[0]}, expected {self.width}x{self.height}")
        return rgb, index_map

    def annotate(self, state: dict, rgb: np.ndarray, index_map: np.ndarray) -> tuple[np.ndarray, list[dict]]:
        from blender import post
        from blender.annotate import annotate

        a = self.cfg.annotation
        geoms = self.engine_mod.instance_geometry(state["instances"])
        anns = annotate(index_map, geoms, self.engine_mod.camera_projection(self.bpy.context.scene),
                        min_visibility=a.min_visibility, min_area=a.min_area, margin=a.silhouette_margin)
        if self.cfg.render.postprocess and state["plan"].get("post"):
            rgb = post.apply_post(rgb, state["plan"]["post"], state["post_rng"])
        return rgb, anns

    def __call__(self, index: int):
        t0 = time.perf_counter()
        state = self.build(index)
        t1 = time.perf_counter()
        rgb, index_map = self.render(state)
        t2 = time.perf_counter()
        rgb, anns = self.annotate(state, rgb, index_map)
        t3 = time.perf_counter()
        plan = state["plan"]
        # the full plan is reproducible from (config, seed, index): keep only a summary here
        meta = {"seconds": {"build": round(t1 - t0, 3), "render": round(t2 - t1, 3),
                            "annotate": round(t3 - t2, 3)},
                "plan": {"camera": plan["camera"]["kind"], "pedestrians": len(plan["pedestrians"]),
                         "pallet_jacks": len(plan["pallet_jacks"]), "distractors": len(plan["distractors"]),
                         "post": plan.get("post")}}
        return rgb, {"negative": bool(state["plan"]["negative"])}, anns, meta

    def close(self) -> None:
        from blender.scene import clear_scene

        clear_scene()
        self.engine.close()


def make_frame_fn(cfg: RenderJobConfig) -> tuple[FrameFn, Callable[[], None]]:
    frames = BlenderFrames(cfg)
    return frames, frames.close


def parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 1, 1
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UserError(f"--shard {text!r}: expected K/N with integers, e.g. 2/4") from None
    if not (n >= 1 and 1 <= k <= n):
        raise UserError(f"--shard {text!r}: need 1 <= K <= N")
    return k, n


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m blender.render", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="render config YAML (configs/render.yaml)")
    ap.add_argument("--out", required=True, help="dataset folder (images/, parts/, annotations.json)")
    ap.add_argument("--num-images", type=int, help="override dataset.num_images")
    ap.add_argument("--seed", type=int, help="override dataset.seed")
    ap.add_argument("--shard", help="K/N: render only indices i with i %% N == K-1 (1-based K)")
    ap.add_argument("--merge-only", action="store_true", help="render nothing; merge parts if all exist")
    ap.add_argument("overrides", nargs="*", help="config overrides key=value, e.g. render.preset=fast")
    return ap.parse_args(argv)


def summarize(coco_like_anns: list[dict], negatives: int) -> str:
    per_class = Counter(a["category_id"] for a in coco_like_anns if not a["iscrowd"])
    crowd = sum(1 for a in coco_like_anns if a["iscrowd"])
    cls = ", ".join(f"{per_class.get(i, 0)} {CLASS_NAMES[i]}" for i in range(1, len(CLASS_NAMES)))
    return f"{cls} ({crowd} crowd), {negatives} negative"


def main(argv: Sequence[str] | None = None, frame_factory=make_frame_fn) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides)
    if args.num_images is not None:
        overrides.append(f"dataset.num_images={args.num_images}")
    if args.seed is not None:
        overrides.append(f"dataset.seed={args.seed}")
    cfg = load_config(args.config, RenderJobConfig, overrides)
    shard = parse_shard(args.shard)
    out = ensure_writable_dir(args.out)
    resolved = config_to_dict(cfg)
    cfg_hash = config_hash(resolved)
    old_manifest = writer.check_folder(out, cfg_hash)
    n_images = cfg.dataset.num_images

    done = writer.done_indices(out)
    todo = [] if args.merge_only else [i for i in range(n_images)
                                       if i % shard[1] == shard[0] - 1 and i not in done]
    rendered_anns: list[dict] = []
    negatives = 0
    stage_s: Counter = Counter()
    # set up the renderer before claiming the folder: a missing asset leaves nothing behind
    frame, close = frame_factory(cfg) if todo else (None, lambda: None)
    t_start = time.perf_counter()
    if old_manifest is None or old_manifest.get("num_images") != n_images:
        writer.write_manifest(out, writer.manifest(resolved, cfg_hash, shard, {"complete": False}))
    atomic_write_text(out / "config.yaml", config_to_yaml(cfg))
    if todo:
        try:
            for index in tqdm(todo, desc=f"render {shard[0]}/{shard[1]}", unit="img", dynamic_ncols=True):
                rgb, extras, anns, meta = frame(index)
                meta = {**meta, "shard": f"{shard[0]}/{shard[1]}"}
                writer.write_image(out, index, rgb)
                image = writer.image_record(index, rgb.shape[1], rgb.shape[0], **extras)
                writer.write_part(out, index, image, anns, meta)
                rendered_anns.extend(anns)
                stage_s.update(meta.get("seconds", {}))
                negatives += int(bool(extras.get("negative")))
        finally:
            close()
    elapsed = time.perf_counter() - t_start

    done = writer.done_indices(out)
    missing = [i for i in range(n_images) if i not in done]
    skipped = len([i for i in range(n_images) if i % shard[1] == shard[0] - 1]) - len(todo)
    if missing:
        if args.merge_only:
            raise UserError(f"{out}: {len(missing)} of {n_images} images are not rendered yet "
                            f"(first missing index {missing[0]}); run the remaining shards first")
        status = f"{len(missing)} of {n_images} images still missing (other shards); no merge yet"
    else:
        info = {"description": f"{cfg.dataset.name}: synthetic warehouse (blender.render)",
                "version": "1", "seed": cfg.dataset.seed, "config_hash": cfg_hash}
        coco = writer.merge(out, range(n_images), info)
        writer.write_annotations(out, coco)
        writer.write_manifest(out, writer.manifest(resolved, cfg_hash, shard, {"complete": True}))
        if not todo:  # a pure merge: describe the whole dataset
            rendered_anns = coco["annotations"]
            negatives = sum(1 for im in coco["images"] if im.get("negative"))
        status = f"annotations.json holds {len(coco['images'])} images, {len(coco['annotations'])} annotations"
    per_frame = ""
    if todo:
        stages = ", ".join(f"{k} {v / len(todo):.2f}" for k, v in stage_s.items())
        per_frame = f", {elapsed / len(todo):.2f} s/frame" + (f" ({stages})" if stages else "")
    print(f"render: {len(todo)} rendered, {skipped} already done in {out}{per_frame}; "
          f"{'these' if todo else 'all'}: {summarize(rendered_anns, negatives)}; {status}")
    return 0


if __name__ == "__main__":
    run_cli(main)
