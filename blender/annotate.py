"""Object-index pass + instance geometry -> COCO annotation records (numpy + pycocotools, no bpy).

Method (also in the README):

* Visible mask: Cycles writes `obj.pass_index` into the IndexOB pass from each pixel's first
  camera sample, unfiltered, so the pass holds exact integers. Pixels equal to an instance's
  id form its visible mask; `area` is its pixel count and `bbox` its tight box.
* Unoccluded silhouette: the instance's own world-space triangles are projected through the
  camera's 3x4 pixel projection (see `engine.camera_projection`), clipped against the near
  plane, and rasterised by pixel-centre coverage (a pixel belongs to the silhouette when its
  centre lies inside any triangle) on a canvas that extends `margin` image sizes beyond each
  border. Nothing else in the scene is drawn, so this is what the instance would cover
  with no occluders and an infinitely large sensor (up to the margin).
* `visibility` = visible pixels / silhouette pixels (capped at 1), so both occlusion and
  leaving the frame lower it; `truncated` = the silhouette has pixels outside the frame.
* Instances whose visibility is below `min_visibility` or whose visible area is below
  `min_area` get `iscrowd: 1` (COCOeval ignores them); instances with no visible pixel are
  not written at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.rle import encode as rle_encode

# Rasterisation works on chunks of candidate pixels to bound memory for huge triangles.
_CHUNK_PIXELS = 1 << 21
_NEAR = 1e-4


@dataclass(frozen=True)
class InstanceGeometry:
    """One labelled object as the annotator sees it: its id in the index pass and its mesh."""

    instance_id: int
    category_id: int
    vertices: np.ndarray  # (V, 3) float, world space
    triangles: np.ndarray  # (T, 3) int, indices into vertices


@dataclass(frozen=True)
class Silhouette:
    """Unoccluded silhouette on a canvas whose pixel (0, 0) is image pixel (-ox, -oy)."""

    canvas: np.ndarray  # (H + 2*oy, W + 2*ox) bool
    ox: int
    oy: int
    width: int
    height: int

    @property
    def total(self) -> int:
        return int(self.canvas.sum())

    def in_frame(self) -> np.ndarray:
        """The part inside the image, as an (H, W) bool mask."""
        return self.canvas[self.oy:self.oy + self.height, self.ox:self.ox + self.width]

    @property
    def truncated(self) -> bool:
        return self.total > int(self.in_frame().sum())


# ---------------------------------------------------------------- visible masks

def mask_bbox(mask: np.ndarray) -> list[int]:
    """Tight [x, y, w, h] in whole pixels of a non-empty bool mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]


def index_map_from_pass(values: np.ndarray, source: str = "index pass") -> np.ndarray:
    """Float IndexOB values -> int32 ids, refusing anything that is not an exact integer.

    A filtered (antialiased) pass would blend ids at object borders into fractions and
    silently produce wrong masks, so it is an error rather than something to round away.
    """
    ids = np.rint(values).astype(np.int32)
    bad = np.abs(values - ids) > 1e-3
    if bad.any():
        raise ValueError(f"{source}: {int(bad.sum())} pixels are not integer object ids "
                         f"(e.g. {float(values[bad][0])!r}); the pass is filtered")
    return ids


# ---------------------------------------------------------------- silhouettes

def _clip_near(tris_h: np.ndarray, near: float) -> np.ndarray:
    """Clip (T, 3, 3) triangles of homogeneous pixel coords (u*w, v*w, w) to w >= near.

    A triangle with one vertex in front becomes one triangle, with two in front a quad split
    into two; the cut points are interpolated linearly in homogeneous space (exact for lines).
    """
    inside = tris_h[:, :, 2] >= near
    n_in = inside.sum(axis=1)
    out = [tris_h[n_in == 3]]
    for count in (1, 2):
        sel = tris_h[n_in == count]
        if not len(sel):
            continue
        ins = inside[n_in == count]
        # rotate each triangle so that the odd vertex (the lone inside / lone outside one) is first
        odd = ins if count == 1 else ~ins
        first = np.argmax(odd, axis=1)
        order = (first[:, None] + np.arange(3)[None, :]) % 3
        t = np.take_along_axis(sel, order[:, :, None], axis=1)
        a, b, c = t[:, 0], t[:, 1], t[:, 2]

        def cut(p, q):
            s = (near - p[:, 2]) / (q[:, 2] - p[:, 2])
            return p + s[:, None] * (q - p)

        ab, ac = cut(a, b), cut(a, c)
        if count == 1:
            out.append(np.stack([a, ab, ac], axis=1))
        else:
            out.append(np.stack([ab, b, c], axis=1))
            out.append(np.stack([ab, c, ac], axis=1))
    return np.concatenate(out, axis=0) if out else np.zeros((0, 3, 3))


def project_triangles(vertices: np.ndarray, triangles: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """World triangles -> (T', 3, 2) pixel coordinates (x right, y down, pixel centres at +0.5)."""
    v = np.asarray(vertices, dtype=np.float64)
    P = np.asarray(projection, np.float64)
    hom = v @ P[:, :3].T + P[:, 3]
    triangles = np.asarray(triangles, dtype=np.int64)
    if len(hom) and hom[:, 2].min() >= _NEAR:  # all in front (the usual case): divide per vertex
        return (hom[:, :2] / hom[:, 2:3])[triangles]
    tris_h = _clip_near(hom[triangles], _NEAR)
    return tris_h[:, :, :2] / tris_h[:, :, 2:3]


def rasterize_triangles(tris_px: np.ndarray, width: int, height: int, ox: int = 0, oy: int = 0) -> np.ndarray:
    """Union of 2D triangles by pixel-centre coverage on a (height, width) canvas.

    `ox, oy` shift triangle coordinates onto the canvas (canvas pixel = image pixel + offset).
    Vectorised: every triangle's bounding box of pixel centres is enumerated and tested with
    its three edge functions; meshes of small triangles (human bodies) cost little.
    """
    canvas = np.zeros((height, width), dtype=bool)
    if len(tris_px) == 0:
        return canvas
    t = tris_px.astype(np.float64) + np.array([ox, oy], dtype=np.float64)
    x0, y0 = t[:, 0, 0], t[:, 0, 1]
    x1, y1 = t[:, 1, 0], t[:, 1, 1]
    x2, y2 = t[:, 2, 0], t[:, 2, 1]
    area2 = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    # pixel i's centre is at i + 0.5: the first centre >= m is ceil(m - 0.5)
    # (elementwise min/max of the three columns: much faster than reducing a length-3 axis)
    xmin = np.maximum(np.ceil(np.minimum(np.minimum(x0, x1), x2) - 0.5), 0).astype(np.int64)
    xmax = np.minimum(np.floor(np.maximum(np.maximum(x0, x1), x2) - 0.5), width - 1).astype(np.int64)
    ymin = np.maximum(np.ceil(np.minimum(np.minimum(y0, y1), y2) - 0.5), 0).astype(np.int64)
    ymax = np.minimum(np.floor(np.maximum(np.maximum(y0, y1), y2) - 0.5), height - 1).astype(np.int64)
    nx = np.maximum(xmax - xmin + 1, 0)
    ny = np.maximum(ymax - ymin + 1, 0)
    keep = (nx > 0) & (ny > 0) & (np.abs(area2) > 1e-12)
    idx = np.flatnonzero(keep)
    counts = (nx * ny)[idx]
    # Orient all triangles counter-clockwise in this (y-down) frame so one sign test serves all.
    sign = np.sign(area2[idx])
    eps = 1e-9
    start = 0
    while start < len(idx):
        # greedy chunk of triangles whose candidate pixels fit the budget (at least one)
        csum = np.cumsum(counts[start:])
        stop = start + max(1, int(np.searchsorted(csum, _CHUNK_PIXELS, side="right")))
        sel = idx[start:stop]
        cnt = counts[start:stop]
        tri = np.repeat(np.arange(len(sel)), cnt)
        local = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        nxs = nx[sel][tri]
        px = xmin[sel][tri] + local % nxs
        py = ymin[sel][tri] + local // nxs
        cx = px + 0.5
        cy = py + 0.5
        s = sign[start:stop][tri]
        ax, ay = x0[sel][tri], y0[sel][tri]
        bx, by = x1[sel][tri], y1[sel][tri]
        qx, qy = x2[sel][tri], y2[sel][tri]
        e0 = ((bx - ax) * (cy - ay) - (by - ay) * (cx - ax)) * s
        e1 = ((qx - bx) * (cy - by) - (qy - by) * (cx - bx)) * s
        e2 = ((ax - qx) * (cy - qy) - (ay - qy) * (cx - qx)) * s
        inside = (e0 >= -eps) & (e1 >= -eps) & (e2 >= -eps)
        canvas[py[inside], px[inside]] = True
        start = stop
    return canvas


def silhouette(vertices: np.ndarray, triangles: np.ndarray, projection: np.ndarray,
               width: int, height: int, margin: float = 0.5) -> Silhouette:
    """Unoccluded silhouette of one mesh on the image extended by `margin` x size per side."""
    ox, oy = int(round(width * margin)), int(round(height * margin))
    tris_px = project_triangles(vertices, triangles, projection)
    canvas = rasterize_triangles(tris_px, width + 2 * ox, height + 2 * oy, ox, oy)
    return Silhouette(canvas, ox, oy, width, height)


# ---------------------------------------------------------------- COCO records

def annotate(index_map: np.ndarray, instances: Sequence[InstanceGeometry], projection: np.ndarray,
             min_visibility: float = 0.0, min_area: int = 0, margin: float = 0.5,
             silhouette_fn: Callable[[InstanceGeometry], Silhouette] | None = None) -> list[dict]:
    """COCO annotations (without `id`/`image_id`) for every instance with a visible pixel.

    Extra keys beyond COCO: `visibility` (0..1), `truncated` (bool), `instance_id` (the
    pass index, which links the record to the scene plan). `silhouette_fn`: the unoccluded
    silhouette of an instance when the image is not a plain pinhole view through
    `projection` (a distorted lens: blender.distort.LensWarp.silhouette).
    """
    height, width = index_map.shape
    present = set(np.unique(index_map).tolist())
    records = []
    for inst in sorted(instances, key=lambda g: g.instance_id):
        if inst.instance_id <= 0:
            raise ValueError(f"instance id {inst.instance_id}: ids must be > 0 (0 is background)")
        if inst.instance_id not in present:
            continue
        mask = index_map == inst.instance_id
        area = int(mask.sum())
        if silhouette_fn is None:
            sil = silhouette(inst.vertices, inst.triangles, projection, width, height, margin)
        else:
            sil = silhouette_fn(inst)
        # Cycles jitters each pixel's first sample inside the pixel filter, so a fully visible
        # object's mask can exceed its centre-sampled silhouette by a few border pixels.
        visibility = min(1.0, area / sil.total) if sil.total else 1.0
        crowd = visibility < min_visibility or area < min_area
        records.append({
            "category_id": int(inst.category_id),
            "segmentation": rle_encode(mask),
            "area": area,
            "bbox": mask_bbox(mask),
            "iscrowd": int(crowd),
            "visibility": round(float(visibility), 4),
            "truncated": bool(sil.truncated),
            "instance_id": int(inst.instance_id),
        })
    return records
