"""A site's own camera: OpenCV calibration files, the OpenCV -> Blender pose convention,
`camera.mode: site`, and lens distortion applied alike to the image and the index pass."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import yaml
from helpers_camera import DIST, FISHEYE, H, K, W, project, site_pose, write_cal

from blender.job_config import ClipJobConfig, RenderJobConfig
from blender.plan import SceneConfig, ScenePlan, plan_scene
from blender.plan.calibration import blender_pose, make_lens, opencv_pose
from blender.plan.scene_config import APPEARANCE_OFF
from pipeline import rle
from pipeline.common import UserError, load_config
from pipeline.lens import load_calibration

# ---------------------------------------------------------------- parsing

def test_calibration_file_is_read(tmp_path):
    cal = load_calibration(write_cal(tmp_path / "c.yaml"))
    assert cal.model == "pinhole" and cal.image_size == (W, H)
    np.testing.assert_allclose(cal.camera_matrix, K)
    np.testing.assert_allclose(cal.dist_coeffs, DIST)
    M, loc = blender_pose(cal.rvecs[0], cal.tvecs[0])
    np.testing.assert_allclose(loc, [5, 2, 3], atol=1e-9)
    # plain YAML lists, fisheye by name
    p = tmp_path / "plain.yaml"
    p.write_text("%YAML:1.0\n---\ncamera_matrix: [[40, 0, 32], [0, 40, 24], [0, 0, 1]]\n"
                 "dist_coeffs: [0.01, 0.0, 0.0, 0.0]\ndistortion_model: equidistant\n")
    cal = load_calibration(p)
    assert cal.model == "fisheye" and cal.image_size is None and len(cal.rvecs) == 0


@pytest.mark.parametrize("setup, field", [
    (lambda p: None, "calibration file not found"),
    (lambda p: p.write_text("%YAML:1.0\n---\ncamera_matrix: [1, 2\n  : : nonsense"), "not an OpenCV YAML"),
    (lambda p: write_cal(p, K=None), "camera_matrix: missing"),
    (lambda p: write_cal(p, K=[[50, 0, 30], [0, -5, 20], [0, 0, 1]]), "camera_matrix: expected 3x3"),
    (lambda p: write_cal(p, dist=[0.1, 0.2, 0.3]), "dist_coeffs: 3 values"),
    (lambda p: write_cal(p, dist=DIST, model="fisheye"), "dist_coeffs: 5 values; the fisheye model takes 4"),
    (lambda p: write_cal(p, model="kannala"), "distortion_model: 'kannala'"),
    (lambda p: write_cal(p, pose=(site_pose()[0], site_pose(loc=(1, 1, -2))[1])), "rvec/tvec: pose 0 puts the camera"),
    (lambda p: write_cal(p, pose=([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4])), "rvec/tvec: expected 3 values"),
    (lambda p: write_cal(p, size=None, image_width=64), "image_width/image_height"),
])
def test_bad_calibration_files_name_the_file_and_field(tmp_path, setup, field):
    p = tmp_path / "cal.yaml"
    setup(p)
    cfg = tmp_path / "r.yaml"
    cfg.write_text(yaml.safe_dump({"scene": {"camera": {"calibration": str(p), "mode": "site"}}}))
    with pytest.raises(UserError) as e:
        load_config(cfg, RenderJobConfig)
    msg = str(e.value)
    assert "\n" not in msg and str(p) in msg and field in msg, msg


def test_site_mode_needs_a_calibration_with_a_pose_and_matching_size(tmp_path):
    with pytest.raises(ValueError, match="mode 'site' needs calibration"):
        SceneConfig.model_validate({"camera": {"mode": "site"}})
    nopose = write_cal(tmp_path / "n.yaml", pose=False)
    with pytest.raises(ValueError, match="rvec/tvec: camera.mode site needs at least one pose"):
        RenderJobConfig.model_validate({"scene": {"camera": {"calibration": nopose, "mode": "site"}}})
    cal = write_cal(tmp_path / "c.yaml")
    # the calibrated size becomes the resolution, unless another one is asked for explicitly
    assert RenderJobConfig.model_validate({"scene": {"camera": {"calibration": cal}}}).render.resolution == (W, H)
    with pytest.raises(ValueError, match=r"image_width/image_height \[64, 48\] differ from render.resolution"):
        RenderJobConfig.model_validate({"render": {"resolution": [640, 480]}, "scene": {"camera": {"calibration": cal}}})
    # clips take the calibrated camera too (their truth goes through the lens)
    clip = ClipJobConfig.model_validate({"scene": {"camera": {"calibration": cal, "mode": "site"}}})
    assert clip.render.resolution == (W, H)


# ---------------------------------------------------------------- conventions and the plan

def test_opencv_and_blender_poses_agree_on_where_a_point_lands():
    rng = np.random.default_rng(0)
    rvec, tvec = rng.normal(0, 1, 3), rng.normal(0, 2, 3)
    M, loc = blender_pose(rvec, tvec)
    r2, t2 = opencv_pose(M, loc)
    np.testing.assert_allclose(cv2.Rodrigues(r2)[0], cv2.Rodrigues(rvec)[0], atol=1e-12)
    np.testing.assert_allclose(t2, tvec, atol=1e-12)
    # a Blender camera looks down its -Z with Y up: a point straight ahead at depth d, offset
    # right and up in Blender's frame, is right and *above* the centre in OpenCV's image
    pts = loc + np.array([[0.3, 0.2, -2.0], [-0.5, -0.1, -4.0]]) @ M.T
    uv, _ = cv2.projectPoints(pts, rvec, tvec, K, None)
    uv = uv.reshape(-1, 2)
    assert uv[0, 0] > K[0, 2] and uv[0, 1] < K[1, 2]
    np.testing.assert_allclose(uv[0], [K[0, 2] + 52 * 0.3 / 2, K[1, 2] - 51 * 0.2 / 2], atol=1e-9)
    assert uv[1, 0] < K[0, 2] and uv[1, 1] > K[1, 2]


def site_cfg(cal, **camera):
    # materials off: these plans are version 2 (with materials they would be 3)
    return RenderJobConfig.model_validate({"scene": {"camera": {"calibration": cal, "mode": "site", **camera},
                                                     "materials": {"families": []},
                                                   "pedestrians": APPEARANCE_OFF}}).scene


def test_site_mode_keeps_the_height_tilt_and_roll_of_the_pose(tmp_path):
    cal = write_cal(tmp_path / "c.yaml")
    sc = site_cfg(cal, site_height_jitter_m=0.0, site_angle_jitter_deg=0.0)
    M0, loc0 = blender_pose(*site_pose())
    for seed in range(4):
        p = plan_scene(sc, np.random.default_rng(seed), aspect=W / H, image_size=(W, H))
        assert p.version == 2 and p.camera.kind == "site" and p.camera.lens is not None
        M = np.asarray(p.camera.matrix)
        # a turn about the world's vertical changes no axis's z component: same tilt and roll
        np.testing.assert_allclose(M[2], M0[2], atol=1e-9)
        assert p.camera.location[2] == pytest.approx(loc0[2])
        assert p.camera.fov_deg > math.degrees(2 * math.atan(W / 2 / K[0, 0]))  # wider: covers the barrel
        assert ScenePlan.from_dict(json.loads(json.dumps(p.to_dict()))) == p
    # jitter is drawn from the plan's rng: same seed, same camera; spread around the pose
    sc = site_cfg(cal)
    a = [plan_scene(sc, np.random.default_rng(s), aspect=W / H) for s in (7, 7, 8)]
    assert a[0].to_dict() == a[1].to_dict()
    heights = [plan_scene(sc, np.random.default_rng(s), aspect=W / H).camera.location[2] for s in range(12)]
    assert 0 < np.std(heights) < 0.5 and abs(np.mean(heights) - 3.0) < 0.3


def test_generic_plans_stay_version_1_and_calibrated_generic_plans_get_the_lens(tmp_path):
    p = plan_scene(SceneConfig(materials={"families": []}, pedestrians=APPEARANCE_OFF), np.random.default_rng(3))
    d = p.to_dict()
    assert p.version == 1 and "lens" not in d["camera"] and "assets" not in d
    sc = RenderJobConfig.model_validate({"scene": {"camera": {"calibration": write_cal(tmp_path / "c.yaml")},
                                                   "materials": {"families": []},
                                                   "pedestrians": APPEARANCE_OFF}}).scene
    q = plan_scene(sc, np.random.default_rng(3), aspect=W / H)
    assert q.version == 2 and q.camera.kind in ("cctv", "robot")
    # the lens replaces the drawn field of view; the render covers the whole barrel
    from blender.plan.calibration import lens_fov_deg

    assert q.camera.fov_deg == pytest.approx(lens_fov_deg(q.camera.lens))
    assert q.camera.lens.render_size[0] > W and q.camera.lens.image_size == [W, H]
    assert plan_scene(sc, np.random.default_rng(3), aspect=W / H).to_dict() == q.to_dict()
    with pytest.raises(ValueError, match="versions"):
        ScenePlan.from_dict({**d, "version": 5})


@pytest.mark.parametrize("model, dist, max_pixels", [("pinhole", DIST, 0.0), ("fisheye", FISHEYE, 0.0),
                                                     ("pinhole", DIST, 1.0), ("fisheye", FISHEYE, 0.8)])
def test_the_render_covers_every_pixel_and_the_maps_invert_opencvs_projection(tmp_path, model, dist, max_pixels):
    from blender.distort import LensWarp
    from blender.plan.calibration import render_camera_matrix

    lens = make_lens(load_calibration(write_cal(tmp_path / "c.yaml", dist=dist, model=model)), (W, H), max_pixels)
    warp = LensWarp(lens)
    rw, rh = lens.render_size
    assert (0 <= warp.map_x).all() and (warp.map_x <= rw - 1).all() and (0 <= warp.map_y).all() and (warp.map_y <= rh - 1).all()
    # the map sends output pixel (u, v) to the render pixel whose ray OpenCV projects back to (u, v)
    Kr = render_camera_matrix(lens)
    v, u = np.mgrid[0:H:7, 0:W:9]
    src = np.c_[warp.map_x[v, u].ravel(), warp.map_y[v, u].ravel()]
    rays = np.c_[(src - Kr[:2, 2]) / Kr[0, 0], np.ones(len(src))]
    if model == "fisheye":
        back, _ = cv2.fisheye.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, dist)
    else:
        back, _ = cv2.projectPoints(rays, np.zeros(3), np.zeros(3), K, dist)
    np.testing.assert_allclose(back.reshape(-1, 2), np.c_[u.ravel(), v.ravel()], atol=2e-3)


def test_a_pixel_budget_renders_the_same_view_at_a_lower_density(tmp_path):
    from blender.job_config import RenderConfig

    cal = load_calibration(write_cal(tmp_path / "c.yaml", K=[[520.0, 0, 320], [0, 520.0, 240], [0, 0, 1]],
                                     dist=[-0.25, 0.05, 0, 0, 0], size=(640, 480)))
    full, capped = make_lens(cal, (640, 480)), make_lens(cal, (640, 480), 1.0)
    assert full.render_focal_px == 520.0 and math.prod(full.render_size) > 1.4 * 640 * 480  # barrel: larger
    assert 0.95 * 640 * 480 <= math.prod(capped.render_size) <= 640 * 480
    assert capped.render_focal_px < 0.85 * 520
    # the same field of view, to the render's 1-2 px margins
    for a, b in zip(full.render_size, capped.render_size, strict=True):
        assert a / full.render_focal_px == pytest.approx(b / capped.render_focal_px, rel=0.01)
    assert make_lens(cal, (640, 480), 2.0).render_size == full.render_size  # within budget: full density
    assert RenderConfig(preset="fast").lens_pixels == RenderConfig(preset="quality").lens_pixels == 1.0
    with pytest.raises(ValueError, match="lens_pixels must be 0"):
        RenderConfig(lens_pixels=0.1)


def test_a_lens_too_wide_for_one_render_is_refused(tmp_path):
    cal = write_cal(tmp_path / "c.yaml", K=[[8.0, 0, 32], [0, 8.0, 24], [0, 0, 1]], dist=[0.0, 0, 0, 0], model="fisheye")
    with pytest.raises(ValueError, match="perspective render cannot cover it"):
        make_lens(load_calibration(cal), (W, H))


# ---------------------------------------------------------------- rendered

@pytest.mark.blender
@pytest.mark.parametrize("model, dist, max_pixels", [("pinhole", DIST, 0.0), ("fisheye", FISHEYE, 0.0),
                                                     ("pinhole", DIST, 0.8)])
def test_distorted_render_masks_match_opencvs_projection(tmp_path, model, dist, max_pixels):
    bpy = pytest.importorskip("bpy")
    import bmesh

    from blender import cycles
    from blender.annotate import annotate
    from blender.distort import LensWarp
    from blender.job_config import RenderConfig
    from blender.meshes import add_object
    from blender.plan.geometry import aimed_camera
    from blender.plan.site import apply_lens
    from blender.scene import clear_scene
    from blender.scene.camera import build_camera

    lens = make_lens(load_calibration(write_cal(tmp_path / "c.yaml", dist=dist, model=model)), (W, H), max_pixels)
    rvec, tvec = site_pose()
    M, loc = blender_pose(rvec, tvec)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    cam = aimed_camera("site", loc, loc - M[:, 2], 0.0, 60.0)
    cam.matrix = M.tolist()
    from blender.plan.geometry import matrix_to_euler_xyz

    cam.rotation_euler = matrix_to_euler_xyz(M)
    apply_lens(cam, lens)
    build_camera(SimpleNamespace(camera=cam))
    # two cubes: one near the image corner, where the barrel bends it most, one near the centre
    centres = [np.array([3.3, 4.6, 0.6]), np.array([5.2, 7.0, 0.5])]
    objs = []
    for i, c in enumerate(centres):
        me = bpy.data.meshes.new(f"cube{i}")
        bm = bmesh.new()
        bmesh.ops.create_cube(bm, size=0.8)
        bm.to_mesh(me)
        bm.free()
        objs.append(add_object(f"cube{i}", me, location=c, pass_index=i + 1))
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    bpy.context.scene.collection.objects.link(sun)
    bpy.context.scene.world = bpy.data.worlds.new("w")
    bpy.context.view_layer.update()
    cfg = RenderConfig(preset="fast", resolution=tuple(lens.render_size), samples=1, denoise=False, threads=1)
    warp = LensWarp(lens)
    with cycles.Renderer(cfg) as eng:
        rgb_r, idx_r = eng.render(bpy.context.scene, seed=1)
    rgb, idx = warp.apply(rgb_r, idx_r)
    assert rgb.shape == (H, W, 3) and idx.shape == (H, W)
    assert set(np.unique(idx)) == {0, 1, 2}  # nearest lookups: no blended ids

    P = cycles.camera_projection(bpy.context.scene)
    geoms = cycles.instance_geometry([SimpleNamespace(instance_id=i + 1, category_id=2, objects=[o])
                                      for i, o in enumerate(objs)])
    for i, g in enumerate(geoms):
        mask = idx == i + 1
        # dense points on the cube's surface, projected by OpenCV with the calibration's own
        # pose and distortion, land on the mask (within a pixel of its border)
        s = np.random.default_rng(i).uniform(-0.4, 0.4, (4000, 3))
        face = np.random.default_rng(i + 9).integers(3, size=4000)
        s[np.arange(4000), face] = np.sign(s[np.arange(4000), face]) * 0.4
        px = np.rint(project(s + centres[i], rvec, tvec, K, dist, model)).astype(int)
        inside = (px[:, 0] >= 0) & (px[:, 0] < W) & (px[:, 1] >= 0) & (px[:, 1] < H)
        grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        assert inside.sum() > 1000 and grown[px[inside, 1], px[inside, 0]].mean() > 0.99
        # the mask's centre of mass is where OpenCV puts the cube's centre (no distortion would miss)
        ys, xs = np.nonzero(mask)
        c_uv = project(centres[i][None], rvec, tvec, K, dist, model)[0]
        plain = project(centres[i][None], rvec, tvec, K, np.zeros(5))[0]   # an ideal pinhole
        assert np.hypot(xs.mean() - c_uv[0], ys.mean() - c_uv[1]) < 1.5
        if i == 0:
            assert np.hypot(*(plain - c_uv)) > 2.0
        # the silhouette through the same lens agrees with the mask of an unoccluded cube
        sil = warp.silhouette(g.vertices, g.triangles, P, 0.5)
        iou = (sil.in_frame() & mask).sum() / (sil.in_frame() | mask).sum()
        assert iou > 0.85, iou
    anns = annotate(idx, geoms, P, silhouette_fn=lambda g: warp.silhouette(g.vertices, g.triangles, P, 0.5))
    assert [a["instance_id"] for a in anns] == [1, 2] and all(a["visibility"] > 0.85 for a in anns)
    for a in anns:   # each annotation's mask is exactly its ids in the warped index pass
        assert (rle.decode(a["segmentation"], H, W) == (idx == a["instance_id"])).all()
    clear_scene()
