"""Headless Cycles rendering: RGB + exact object-index map per frame, camera projection, meshes.

With blender/scene/, blender/assets/ and blender/meshes.py, the only code that touches bpy. In background
mode the Render Result holds no pixels, so the compositor writes both outputs to a private
temp folder (PNG with the view transform for RGB, uncompressed float EXR for the index
pass) and they are read back with cv2 / OpenEXR.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import bpy
import cv2
import numpy as np
import OpenEXR

from blender.annotate import InstanceGeometry, index_map_from_pass
from blender.render_device import AUTO_ORDER, DeviceChoice, choose_device

if TYPE_CHECKING:  # job_config imports the scene schema; rendering needs only the values
    from blender.job_config import RenderConfig

_TREE = "warehouse_synth_outputs"


def gpu_devices() -> dict[str, list[str]]:
    """backend (optix, cuda, hip, metal) -> names of the GPUs Cycles finds for it."""
    prefs = bpy.context.preferences.addons["cycles"].preferences
    found = {}
    with quiet_blender():  # probing a backend whose driver is absent warns on stderr
        for backend in AUTO_ORDER:
            try:
                entries = prefs.get_devices_for_type(backend.upper())
            except (TypeError, ValueError):  # a backend this build of Cycles does not know
                entries = []
            found[backend] = [d.name for d in entries if d.type == backend.upper()]
    return found


def select_device(requested: str) -> DeviceChoice:
    """Resolve render.device against this machine and switch Cycles' preferences to it: every
    GPU of the chosen backend on (multi-device), the CPU off beside them (it would slow them)."""
    choice = choose_device(requested, gpu_devices() if requested != "cpu" else {})
    prefs = bpy.context.preferences.addons["cycles"].preferences
    if choice.is_gpu:
        prefs.compute_device_type = choice.backend.upper()
        for d in prefs.get_devices_for_type(choice.backend.upper()):
            d.use = d.type == choice.backend.upper()
    return choice


def configure_scene(scene: bpy.types.Scene, cfg: RenderConfig, seed: int = 0, gpu: bool = False) -> None:
    """Cycles settings from a resolved RenderConfig (idempotent; cheap to call per frame).
    `gpu`: render on the devices select_device() switched on, else on the CPU."""
    r = scene.render
    r.engine = "CYCLES"
    r.resolution_x, r.resolution_y = cfg.resolution
    r.resolution_percentage = 100
    r.pixel_aspect_x = r.pixel_aspect_y = 1.0
    r.use_border = False
    r.film_transparent = False
    r.use_motion_blur = False  # motion blur is a cheap 2D post effect (blender/post.py)
    r.use_persistent_data = False  # every frame is a new scene: nothing to reuse
    r.threads_mode = "FIXED" if cfg.threads else "AUTO"
    if cfg.threads:
        r.threads = cfg.threads
    c = scene.cycles
    c.device = "GPU" if gpu else "CPU"
    c.samples = cfg.samples
    c.use_adaptive_sampling = cfg.adaptive_threshold > 0
    if cfg.adaptive_threshold > 0:
        c.adaptive_threshold = cfg.adaptive_threshold
        c.adaptive_min_samples = 0
    c.seed = int(seed) % (2**31)
    c.use_animated_seed = False
    c.use_denoising = cfg.denoise
    if cfg.denoise:
        c.denoiser = "OPENIMAGEDENOISE"
        c.denoising_prefilter = "FAST"
        c.denoising_quality = cfg.denoise_quality
        c.denoising_input_passes = cfg.denoise_passes
    c.max_bounces = cfg.max_bounces
    c.diffuse_bounces = cfg.diffuse_bounces
    c.glossy_bounces = cfg.glossy_bounces
    c.transmission_bounces = min(cfg.max_bounces, 4)
    c.volume_bounces = 0
    c.transparent_max_bounces = cfg.transparent_bounces
    c.sample_clamp_indirect = cfg.clamp_indirect
    c.use_fast_gi = cfg.ao_bounces > 0
    c.fast_gi_method = "REPLACE"
    c.ao_bounces_render = cfg.ao_bounces
    c.caustics_reflective = False
    c.caustics_refractive = False
    c.use_auto_tile = False  # one tile: 640x480 fits easily, tiling only adds passes
    scene.view_settings.view_transform = cfg.view_transform
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.display_settings.display_device = "sRGB"
    for vl in scene.view_layers:
        vl.use_pass_object_index = True


def _output_tree(scene: bpy.types.Scene, directory: Path) -> None:
    """Compositor: Render Layers -> File Output (rgb.png with view transform, index.exr float)."""
    tree = bpy.data.node_groups.get(_TREE)
    if tree is None or scene.compositing_node_group != tree:
        tree = tree or bpy.data.node_groups.new(_TREE, "CompositorNodeTree")
        tree.use_fake_user = True  # survives scene clean-ups that purge unused node groups
        tree.nodes.clear()
        rl = tree.nodes.new("CompositorNodeRLayers")
        out = tree.nodes.new("CompositorNodeOutputFile")
        out.name = "outputs"
        out.format.media_type = "IMAGE"
        out.format.file_format = "OPEN_EXR"
        out.format.color_depth = "32"  # float: ids stay exact integers
        out.format.exr_codec = "NONE"
        out.format.color_mode = "BW"
        out.file_output_items.new("FLOAT", "index")
        rgb = out.file_output_items.new("RGBA", "rgb")
        rgb.override_node_format = True
        rgb.format.media_type = "IMAGE"
        rgb.format.file_format = "PNG"
        rgb.format.color_mode = "RGB"
        rgb.format.color_depth = "8"
        rgb.format.compression = 0  # re-encoded after post-processing anyway
        rgb.save_as_render = True
        tree.links.new(rl.outputs["Object Index"], out.inputs["index"])
        tree.links.new(rl.outputs["Image"], out.inputs["rgb"])
        scene.compositing_node_group = tree
    rl = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers")
    rl.scene = scene
    out = tree.nodes["outputs"]
    out.directory = str(directory)
    out.file_name = "frame_"
    scene.render.use_compositing = True


def read_index_exr(path: Path) -> np.ndarray:
    channels = OpenEXR.File(str(path)).channels()
    if not channels:
        raise RuntimeError(f"{path}: no channels in index pass")
    px = next(iter(channels.values())).pixels
    return px if px.ndim == 2 else px[..., 0]


def _libc_fflush() -> None:
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


@contextlib.contextmanager
def quiet_blender():
    """Silence Blender's C-level prints (render progress, OBJ import timings) on fd 1 and 2,
    so the progress bar and the summary stay readable. WAREHOUSE_SYNTH_VERBOSE=1 keeps them."""
    if os.environ.get("WAREHOUSE_SYNTH_VERBOSE"):
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        # C stdio buffers what Blender printed (stdout is a pipe under make/tee): flush it
        # into /dev/null now, or it would surface later in the middle of our own output
        _libc_fflush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


class Renderer:
    """Renders the current scene; owns a temp folder for the compositor's files."""

    def __init__(self, cfg: RenderConfig):
        self.cfg = cfg
        self.device = select_device(cfg.device)  # before the temp folder: a bad device leaves nothing
        self.workdir = Path(tempfile.mkdtemp(prefix="warehouse_synth_render_"))

    def render(self, scene: bpy.types.Scene | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """-> (HxWx3 uint8 RGB, HxW int32 object-index map with exact pass_index values)."""
        scene = scene or bpy.context.scene
        if scene.camera is None:
            raise RuntimeError("scene has no camera")
        rgb_path, idx_path = self.workdir / "frame_rgb.png", self.workdir / "frame_index.exr"
        for p in (rgb_path, idx_path):
            p.unlink(missing_ok=True)
        with quiet_blender():  # setting the denoiser probes GPU libraries, which warns
            configure_scene(scene, self.cfg, seed, gpu=self.device.is_gpu)
            _output_tree(scene, self.workdir)
            bpy.ops.render.render(write_still=False)
        if not rgb_path.is_file() or not idx_path.is_file():
            raise RuntimeError(f"compositor wrote no outputs to {self.workdir}")
        bgr = cv2.imread(str(rgb_path), cv2.IMREAD_COLOR)
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        index = index_map_from_pass(read_index_exr(idx_path), str(idx_path))
        return rgb, index

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def camera_projection(scene: bpy.types.Scene | None = None) -> np.ndarray:
    """3x4 matrix P: world (x, y, z, 1) -> (u*w, v*w, w), u/v in pixels from the top-left corner.

    Pixel i covers [i, i+1), so its centre is at i + 0.5; w is the depth in front of the
    camera (perspective) and 1 for orthographic cameras. Uses Blender's own camera matrix,
    so sensor fit, lens shift and pixel aspect match the render exactly.
    """
    scene = scene or bpy.context.scene
    cam = scene.camera
    depsgraph = bpy.context.evaluated_depsgraph_get()
    w, h = scene.render.resolution_x, scene.render.resolution_y
    proj = np.array(cam.calc_matrix_camera(depsgraph, x=w, y=h,
                                           scale_x=scene.render.pixel_aspect_x,
                                           scale_y=scene.render.pixel_aspect_y))
    view = np.array(cam.evaluated_get(depsgraph).matrix_world.inverted())
    to_pixels = np.array([[w / 2, 0, 0, w / 2],
                          [0, -h / 2, 0, h / 2],
                          [0, 0, 0, 1]], dtype=np.float64)
    return to_pixels @ proj @ view


def mesh_world_triangles(objects: Iterable[bpy.types.Object]) -> tuple[np.ndarray, np.ndarray]:
    """Evaluated (modifiers applied) world-space vertices and triangles of renderable objects."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    all_v, all_t, offset = [], [], 0
    for obj in objects:
        if obj.hide_render or obj.type not in {"MESH", "CURVE", "SURFACE", "META", "FONT"}:
            continue
        ev = obj.evaluated_get(depsgraph)
        mesh = ev.to_mesh()
        try:
            mesh.calc_loop_triangles()
            nv, nt = len(mesh.vertices), len(mesh.loop_triangles)
            if nv == 0 or nt == 0:
                continue
            co = np.empty(nv * 3, dtype=np.float32)
            mesh.vertices.foreach_get("co", co)
            tris = np.empty(nt * 3, dtype=np.int32)
            mesh.loop_triangles.foreach_get("vertices", tris)
            mw = np.array(ev.matrix_world, dtype=np.float64)
            v = co.reshape(-1, 3).astype(np.float64) @ mw[:3, :3].T + mw[:3, 3]
            all_v.append(v)
            all_t.append(tris.reshape(-1, 3).astype(np.int64) + offset)
            offset += nv
        finally:
            ev.to_mesh_clear()
    if not all_v:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(all_v), np.concatenate(all_t)


def instance_geometry(instances: Sequence) -> list[InstanceGeometry]:
    """Scene instances (instance_id, category_id, objects) -> meshes for the annotator."""
    out = []
    for inst in instances:
        v, t = mesh_world_triangles(inst.objects)
        out.append(InstanceGeometry(int(inst.instance_id), int(inst.category_id), v, t))
    return out
