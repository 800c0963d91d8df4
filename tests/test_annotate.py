"""Annotations from index maps and mesh silhouettes against hand-computed answers (no bpy)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from matplotlib.path import Path as MplPath
from pycocotools import mask as mask_utils

from blender.annotate import (
    InstanceGeometry,
    annotate,
    index_map_from_pass,
    mask_bbox,
    project_triangles,
    rasterize_triangles,
    silhouette,
)
from blender.plan.scene_plan import Post
from blender.post import apply_post, motion_blur_kernel
from pipeline.rle import decode as rle_decode
from pipeline.rle import encode as rle_encode

# world (x, y, z) -> pixel (x, y): an orthographic "camera" that makes geometry easy to reason about
P_IDENTITY = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])


def rect(inst_id: int, cat: int, x0: float, y0: float, x1: float, y1: float) -> InstanceGeometry:
    v = np.array([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]], dtype=float)
    return InstanceGeometry(inst_id, cat, v, np.array([[0, 1, 2], [0, 2, 3]]))


def centres(w: int, h: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def test_rectangle_partly_covered_gives_exact_area_bbox_visibility():
    index = np.zeros((30, 40), np.int32)
    index[4:14, 5:25] = 1       # a 20x10 pedestrian...
    index[4:14, 20:25] = 2      # ...whose right quarter is behind a pallet jack
    geoms = [rect(1, 1, 5, 4, 25, 14), rect(2, 2, 20, 4, 25, 14)]
    anns = annotate(index, geoms, P_IDENTITY)
    a1, a2 = anns
    assert a1["instance_id"] == 1 and a1["category_id"] == 1
    assert a1["area"] == 150
    assert a1["bbox"] == [5, 4, 15, 10]
    assert a1["visibility"] == pytest.approx(0.75)
    assert a1["truncated"] is False and a1["iscrowd"] == 0
    assert a2["area"] == 50 and a2["bbox"] == [20, 4, 5, 10] and a2["visibility"] == 1.0
    m = rle_decode(a1["segmentation"])
    assert m.shape == (30, 40) and m.sum() == 150 and m[4:14, 5:20].all()
    assert isinstance(a1["segmentation"]["counts"], str)


def test_rle_round_trip_and_pycocotools_agree():
    rng = np.random.default_rng(0)
    mask = rng.random((17, 23)) > 0.6
    rle = rle_encode(mask)
    assert rle["size"] == [17, 23]
    np.testing.assert_array_equal(rle_decode(rle), mask)
    assert mask_utils.area({"size": rle["size"], "counts": rle["counts"].encode()}) == mask.sum()
    ys, xs = np.nonzero(mask)
    assert mask_bbox(mask) == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_triangle_rasterises_to_exactly_the_pixel_centres_inside():
    tri = np.array([[[2.3, 1.7], [17.8, 4.2], [6.1, 13.9]]])
    got = rasterize_triangles(tri, 20, 16)
    want = MplPath(tri[0]).contains_points(centres(20, 16)).reshape(16, 20)
    np.testing.assert_array_equal(got, want)
    # winding must not matter
    np.testing.assert_array_equal(rasterize_triangles(tri[:, ::-1], 20, 16), want)


def test_cube_silhouette_is_convex_hull_of_projected_corners():
    # pinhole camera at the origin looking down +z (w = z), focal 40 px, centre (32.3, 24.1)
    P = np.array([[40.0, 0, 32.3, 0], [0, 40.0, 24.1, 0], [0, 0, 1, 0]])
    c = np.array([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    theta = 0.4
    R = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]])
    verts = c @ R.T + np.array([0.2, -0.1, 4.0])
    faces = []  # 12 triangles of the cube's 6 faces
    for axis in range(3):
        for side in (0, 1):
            quad = [i for i in range(8) if ((i >> (2 - axis)) & 1) == side]
            a, b, cc, d = quad
            faces += [[a, b, d], [a, d, cc]]
    sil = silhouette(verts, np.array(faces), P, 64, 48)
    h = verts @ P[:, :3].T + P[:, 3]
    px = h[:, :2] / h[:, 2:]
    hull = cv2.convexHull(px.astype(np.float32))[:, 0, :].astype(np.float64)
    want = MplPath(hull).contains_points(centres(64, 48)).reshape(48, 64)
    np.testing.assert_array_equal(sil.in_frame(), want)
    assert not sil.truncated and sil.total == want.sum()


def test_truncated_rectangle_counts_pixels_outside_the_frame():
    # 20x10 box of which the left 8 columns hang off the image's left border
    index = np.zeros((30, 40), np.int32)
    index[10:20, 0:12] = 7
    anns = annotate(index, [rect(7, 1, -8, 10, 12, 20)], P_IDENTITY)
    (a,) = anns
    assert a["truncated"] is True
    assert a["area"] == 120
    assert a["visibility"] == pytest.approx(120 / 200)


def test_near_plane_clipping_of_a_floor_running_behind_the_camera():
    # floor y = 1 from 5 m behind to 10 m in front of a camera at the origin looking down +z
    f, cx, cy = 10.0, 32.25, 24.0
    P = np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0]])
    verts = np.array([[-1, 1, -5], [1, 1, -5], [1, 1, 10], [-1, 1, 10]], float)
    sil = silhouette(verts, np.array([[0, 1, 2], [0, 2, 3]]), P, 64, 48, margin=0.5)
    # in front of the camera the floor covers exactly |u - cx| <= (v - cy) with v - cy >= f/10
    c = centres(64 + 64, 48 + 48) - np.array([32, 24])
    du, dv = c[:, 0] - cx, c[:, 1] - cy
    want = ((np.abs(du) <= dv) & (dv >= f / 10)).reshape(96, 128)
    np.testing.assert_array_equal(sil.canvas, want)
    assert sil.truncated  # it runs off the bottom of the image
    # fully behind the camera: nothing
    behind = verts.copy()
    behind[:, 2] = [-5, -5, -1, -1]
    assert silhouette(behind, np.array([[0, 1, 2], [0, 2, 3]]), P, 64, 48).total == 0
    assert len(project_triangles(behind, np.array([[0, 1, 2]]), P)) == 0


@pytest.mark.parametrize("min_visibility,min_area,crowd", [
    (0.0, 0, 0), (0.75, 150, 0), (0.76, 0, 1), (0.0, 151, 1)])
def test_crowd_marking_thresholds(min_visibility, min_area, crowd):
    index = np.zeros((30, 40), np.int32)
    index[4:14, 5:20] = 1  # 150 of the 200 pixels visible
    (a,) = annotate(index, [rect(1, 1, 5, 4, 25, 14)], P_IDENTITY,
                    min_visibility=min_visibility, min_area=min_area)
    assert a["iscrowd"] == crowd


def test_instances_without_visible_pixels_are_not_written():
    index = np.zeros((30, 40), np.int32)
    index[0:5, 0:5] = 3
    anns = annotate(index, [rect(1, 1, 5, 4, 25, 14), rect(3, 2, 0, 0, 5, 5)], P_IDENTITY)
    assert [a["instance_id"] for a in anns] == [3]


def test_filtered_index_pass_is_refused():
    ok = np.array([[0.0, 1.0], [2.0, 2.0]], np.float32)
    np.testing.assert_array_equal(index_map_from_pass(ok), [[0, 1], [2, 2]])
    with pytest.raises(ValueError, match="not integer"):
        index_map_from_pass(np.array([[0.0, 1.5]], np.float32))


def test_post_is_seeded_and_preserves_brightness():
    img = np.full((64, 64, 3), 120, np.uint8)
    img[:, 32:] = 200
    post = Post(noise_sigma=0.02, blur_px=3.0, blur_angle_deg=30.0)
    a = apply_post(img, post, np.random.default_rng(5))
    b = apply_post(img, post, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == img.shape
    assert abs(a.astype(float).mean() - img.mean()) < 1.0
    assert a.std() > img.std() * 0.9 and not np.array_equal(a, img)
    clean = apply_post(img, Post(noise_sigma=0.0, blur_px=0.0, blur_angle_deg=0.0), np.random.default_rng(0))
    np.testing.assert_array_equal(clean, img)
    k = motion_blur_kernel(4.0, 0.0)
    assert k.sum() == pytest.approx(1.0) and k[k.shape[0] // 2].sum() == pytest.approx(1.0)
