"""COCO detection files -> (image, target) pairs the way torchvision's detection models expect.

Reads any COCO file (polygons, compressed and uncompressed RLE, crowd regions, images without
objects), maps foreign category names onto ours, and checks every record up front so a bad
dataset fails before training starts, naming the file and the record.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pipeline import rle
from pipeline.common import CATEGORIES, UserError, read_json, remap_categories

BOX_TOLERANCE = 1.0  # px a box may poke outside the image (rounding in foreign exporters)
CROWD_MODES = ("background", "ignore", "target")  # what a crowd region is to training (data.crowd)


def _dataset_files(root: str | Path, ann_file: str | Path | None) -> tuple[Path, Path]:
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    ann = Path(ann_file) if ann_file else root / "annotations.json"
    if not ann.is_file():
        raise UserError(f"{ann}: annotation file not found (expected COCO JSON)")
    return root, ann


def image_base(root: Path, images: list) -> Path:
    """The folder the records' file_names are relative to: images/ (our writer, docs/DESIGN.md §5) or
    the dataset root (`images/x.jpg`, as several exporters write). Whichever holds more of the
    first 50 files wins, so one lookup serves the whole file; with neither, images/ stays the
    answer so a missing file is reported where our layout expects it."""
    folder = root / "images" if (root / "images").is_dir() else root
    if folder == root:
        return root
    names = [str(im.get("file_name", "")) for im in images[:50] if isinstance(im, dict)]
    in_folder = sum((folder / n).is_file() for n in names)
    in_root = sum((root / n).is_file() for n in names)
    return root if in_root > in_folder else folder


def resolve_dataset(root: str | Path, ann_file: str | Path | None = None) -> tuple[Path, Path]:
    """(folder the images' file_names are relative to, annotation file) for a dataset folder
    laid out as in docs/DESIGN.md §5, or any folder of images with an explicit annotation file."""
    root, ann = _dataset_files(root, ann_file)
    raw = read_json(ann, "COCO annotation file")
    images = raw.get("images") if isinstance(raw, dict) else None
    return image_base(root, images if isinstance(images, list) else []), ann


def check_record(img: dict, anns: list[dict], cat_ids: set[int], images_dir: Path
                 ) -> list[tuple[Any, str]]:
    """Problems with one image record and its annotations as (annotation id or None for the
    image itself, message); empty = fine. Checks the image decodes (see decode_problem)."""
    path = images_dir / str(img.get("file_name", ""))
    if not path.is_file():
        return [(None, f"image id {img.get('id')}: file {path} not found")]
    try:
        with Image.open(path) as im:
            size = im.size
    except Exception as e:
        return [(None, f"image id {img.get('id')}: {path} unreadable ({type(e).__name__})")]
    why = decode_problem(path)
    if why:
        return [(None, f"image id {img.get('id')}: {path} cannot be decoded ({why})")]
    w, h = img.get("width"), img.get("height")
    if (w, h) != size:
        return [(None, f"image id {img['id']}: {path.name} is {size[0]}x{size[1]} but the record says {w}x{h}")]
    problems = []
    for a in anns:
        where = f"annotation id {a.get('id')} (image {img['id']})"
        if a.get("_unknown_category") or a.get("category_id") not in cat_ids:
            problems.append((a.get("id"), f"{where}: unknown category_id {a.get('category_id')}"))
            continue
        bbox = a.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, int | float) for v in bbox)):
            problems.append((a.get("id"), f"{where}: bbox {bbox!r} is not [x, y, w, h]"))
            continue
        x, y, bw, bh = bbox
        t = BOX_TOLERANCE
        if bw < 0 or bh < 0 or x < -t or y < -t or x + bw > w + t or y + bh > h + t:
            problems.append((a.get("id"), f"{where}: bbox {bbox} outside the {w}x{h} image"))
            continue
        if "segmentation" not in a and not a.get("iscrowd"):
            problems.append((a.get("id"), f"{where}: no segmentation"))
    return problems


_DECODE_CHECKED: dict[tuple[str, int, int], str | None] = {}


def decode_problem(path: Path) -> str | None:
    """Why `path` would fail to decode, or None. A truncated file otherwise passes the header
    check and only fails in a DataLoader worker, mid-training. Full decoding costs ~6x a PNG
    CRC walk (PIL verify) or a JPEG end-marker test, so those screen first and only suspects
    are decoded; the answer is cached per (path, mtime, size) because a run opens the same
    files for its train, validation and probe sets."""
    st = path.stat()
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _DECODE_CHECKED:
        _DECODE_CHECKED[key] = None if _looks_complete(path) else _full_decode_problem(path)
    return _DECODE_CHECKED[key]


def _looks_complete(path: Path) -> bool:
    try:
        with Image.open(path) as im:
            fmt = im.format
            if fmt == "PNG":
                im.verify()  # every chunk's CRC, through IEND
                return True
        if fmt == "JPEG":
            with open(path, "rb") as f:
                f.seek(max(0, path.stat().st_size - 1024))
                return b"\xff\xd9" in f.read()  # end-of-image marker (padding may follow it)
    except Exception:
        return False
    return False  # other formats: no cheap test, decode them


def _full_decode_problem(path: Path) -> str | None:
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    return None


class CocoDetection(torch.utils.data.Dataset):
    """Item: (float image CxHxW in 0..1, target with boxes xyxy, labels, masks, image_id, area, iscrowd).

    Crowd annotations stay in `coco` (COCOeval ignores detections on them); in the targets they
    follow `crowd`: "background" leaves them out (as torchvision's references do), "ignore" keeps
    them flagged in `iscrowd` for the samplers to skip (pipeline.crowd), "target" makes them
    ordinary instances. `transforms(image_hwc_uint8, masks, labels, seed)` is the augmentation
    hook (pipeline.transforms.Augment). An index may be an int or
    (int, seed): the seed makes the augmentation of that sample reproducible.
    """

    def __init__(self, root: Path, ann_file: Path | None = None, transforms=None,
                 class_map: dict | None = None, skip_bad: bool = False, image_ids=None,
                 crowd: str = "background"):
        root, self.ann_file = _dataset_files(root, ann_file)
        self.transforms = transforms
        if crowd not in CROWD_MODES:
            raise UserError(f"data.crowd: expected one of {', '.join(CROWD_MODES)}, got {crowd!r}")
        self.crowd = crowd
        raw = read_json(self.ann_file, "COCO annotation file")
        if not isinstance(raw, dict) or not isinstance(raw.get("images"), list):
            raise UserError(f"{self.ann_file}: not a COCO file (no 'images' list)")
        self.images_dir = image_base(root, raw["images"])
        if not raw["images"]:
            raise UserError(f"{self.ann_file}: empty dataset (no images)")
        if not isinstance(raw.get("annotations", []), list):
            raise UserError(f"{self.ann_file}: field 'annotations' is not a list")
        raw.setdefault("annotations", [])
        known_ids = {c.get("id") for c in raw.get("categories") or []}
        # unknown category ids are checked before remapping, which would silently drop them
        cat_ids = {c["id"] for c in CATEGORIES}
        for a in raw["annotations"]:
            if a.get("category_id") not in known_ids:
                a["_unknown_category"] = True
        coco, self.dropped_categories = remap_categories(raw, class_map or {}, str(self.ann_file))
        coco["annotations"] += [a for a in raw["annotations"] if a.get("_unknown_category")]

        wanted = None if image_ids is None else {int(i) for i in image_ids}
        by_image: dict[int, list[dict]] = {}
        for a in coco["annotations"]:
            by_image.setdefault(a.get("image_id"), []).append(a)
        self.problems: list[str] = []
        self.records: list[tuple[dict, list[dict]]] = []
        ids = [img.get("id") for img in coco["images"]]
        if len(set(ids)) != len(ids):
            raise UserError(f"{self.ann_file}: duplicate image ids")
        for img in coco["images"]:
            if wanted is not None and img.get("id") not in wanted:
                continue
            anns = by_image.get(img.get("id"), [])
            problems = check_record(img, anns, cat_ids, self.images_dir)
            if problems and not skip_bad:
                raise UserError(f"{self.ann_file}: {problems[0][1]}"
                                + (f" [+{len(problems) - 1} more in this image]" if len(problems) > 1 else "")
                                + " (data.skip_bad=true skips bad records)")
            self.problems += [msg for _, msg in problems]
            if any(ann_id is None for ann_id, _ in problems):
                continue  # the image itself is unusable
            bad_ann = {ann_id for ann_id, _ in problems}
            anns = [a for a in anns if a.get("id") not in bad_ann]
            self.records.append((img, anns))
        self.num_skipped = len(self.problems)
        if not self.records:
            raise UserError(f"{self.ann_file}: no usable images"
                            + (f" ({self.num_skipped} bad records skipped)" if self.num_skipped else ""))
        kept = {img["id"] for img, _ in self.records}
        self.coco = {**coco, "images": [img for img, _ in self.records],
                     "annotations": [{k: v for k, v in a.items() if k != "_unknown_category"}
                                     for _, anns in self.records for a in anns if a["image_id"] in kept]}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def image_ids(self) -> list[int]:
        return [img["id"] for img, _ in self.records]

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """(HxWx3 uint8 image, NxHxW uint8 masks, N labels, image record) without transforms.
        With crowd "ignore", a crowd instance's label is its category id negated, so the flag
        travels through augmentation and copy-paste with the mask (__getitem__ splits it off)."""
        img, anns = self.records[index]
        path = self.images_dir / img["file_name"]
        try:
            with Image.open(path) as im:
                image = np.array(im.convert("RGB"))
        except Exception as e:
            raise UserError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None
        h, w = image.shape[:2]
        anns = [a for a in anns if self.crowd != "background" or not a.get("iscrowd")]
        masks = np.zeros((len(anns), h, w), np.uint8)
        for i, a in enumerate(anns):
            try:
                masks[i] = rle.decode(a["segmentation"], h, w)
            except Exception as e:
                raise UserError(f"{self.ann_file}: annotation id {a.get('id')}: bad segmentation ({e})") from None
        negate = self.crowd == "ignore"
        labels = np.array([-a["category_id"] if negate and a.get("iscrowd") else a["category_id"]
                           for a in anns], np.int64)
        return image, masks, labels, {**img, "anns": anns}

    def _donor(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Another image of this set, drawn from `rng` (copy-paste's donor)."""
        return self.load(int(rng.integers(len(self))))[:3]

    def load_tensor(self, index: int) -> torch.Tensor:
        """The image alone, unaugmented, as the model's float CxHxW input."""
        image = self.load(index)[0]
        return torch.from_numpy(image).permute(2, 0, 1).float().div_(255)

    def __getitem__(self, key: int | tuple[int, int]):
        index, seed = key if isinstance(key, tuple) else (key, None)
        image, masks, labels, rec = self.load(index)
        if self.transforms is not None:
            image, masks, labels = self.transforms(image, masks, labels, seed, self._donor)
            boxes = masks_to_boxes(masks)
        else:
            # the annotation's own box is the ground truth; drop degenerate ones torchvision rejects
            boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                               a["bbox"][1] + a["bbox"][3]] for a in rec["anns"]], np.float32).reshape(-1, 4)
            h, w = image.shape[:2]
            boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
            boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        boxes, masks, labels = boxes[keep], masks[keep], labels[keep]
        target = {
            "boxes": torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.as_tensor(np.abs(labels), dtype=torch.int64),
            "masks": torch.from_numpy(np.ascontiguousarray(masks)),
            "image_id": int(rec["id"]),
            "area": torch.as_tensor(masks.sum(axis=(1, 2)), dtype=torch.float32),
            "iscrowd": torch.as_tensor(labels < 0, dtype=torch.int64),
        }
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
        return tensor, target


def masks_to_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes (pixel edges, so a 1-px mask has width 1) of NxHxW masks; empty -> zeros."""
    boxes = np.zeros((len(masks), 4), np.float32)
    for i, m in enumerate(masks):
        ys = np.flatnonzero(m.any(1))
        xs = np.flatnonzero(m.any(0))
        if len(xs):
            boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return boxes


def collate_fn(batch):
    return tuple(zip(*batch, strict=True))


# ---------------------------------------------------------------- split and sampling

def split_ids(image_ids: Sequence[int], val_fraction: float, seed: int = 0) -> tuple[list[int], list[int]]:
    """Deterministic train/val split by image id: an id's side depends only on (seed, id), so
    adding images never moves existing ones between the two sets."""
    train, val = [], []
    for i in image_ids:
        h = int.from_bytes(hashlib.sha1(f"{seed}:{i}".encode()).digest()[:8], "big") / 2**64
        (val if h < val_fraction else train).append(i)
    # tiny sets: keep something on both sides
    if val_fraction > 0 and not val and len(train) > 1:
        val.append(train.pop())
    if not train and len(val) > 1:
        train.append(val.pop(0))
    return train, val


class StepSampler(torch.utils.data.Sampler):
    """Yields (index, augmentation seed) for global steps [start_step, ...) on this rank.

    The order of epoch e is a permutation seeded by (seed, e), so the sample at any step is a
    pure function of (seed, step): resuming at step k replays exactly what an uninterrupted
    run would have seen, without loading the skipped samples. Works with any world size.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int = 0, rank: int = 0,
                 world_size: int = 1, shuffle: bool = True):
        if n == 0:
            raise UserError("no training images")
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.rank, self.world_size, self.shuffle = start_step, rank, world_size, shuffle
        self.global_batch = batch_size * world_size
        self.steps_per_epoch = max(1, math.ceil(n / self.global_batch))

    def _epoch_order(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        need = self.steps_per_epoch * self.global_batch
        return (order * math.ceil(need / self.n))[:need]  # pad by wrapping, as DistributedSampler

    def __iter__(self) -> Iterator[tuple[int, int]]:
        step = self.start_step
        while True:
            epoch, k = divmod(step, self.steps_per_epoch)
            order = self._epoch_order(epoch)
            for s in range(k, self.steps_per_epoch):
                base = s * self.global_batch + self.rank * self.batch_size
                for j in range(self.batch_size):
                    pos = base + j
                    yield order[pos], (self.seed * 1_000_003 + epoch) * 65_537 + pos
            step = (epoch + 1) * self.steps_per_epoch

    def __len__(self) -> int:  # infinite stream; DataLoader only needs this for len()
        return 2**62
