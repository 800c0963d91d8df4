"""pipeline.data / pipeline.transforms on generated COCO sets with known geometry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers_coco import load_coco, save_coco
from PIL import Image
from pycocotools import mask as mask_utils

from pipeline.common import UserError
from pipeline.config import AugmentConfig
from pipeline.data import (
    CocoDetection,
    StepSampler,
    collate_fn,
    masks_to_boxes,
    split_ids,
)
from pipeline.rle import decode as segmentation_to_mask
from pipeline.transforms import Augment, resolved_ops


def _by_image(coco):
    out = {}
    for a in coco["annotations"]:
        out.setdefault(a["image_id"], []).append(a)
    return out


def test_loader_targets_match_annotations(coco_set_ro):
    coco = load_coco(coco_set_ro)
    encodings = {("polygon" if isinstance(a["segmentation"], list) else
                  "rle" if isinstance(a["segmentation"]["counts"], str) else "uncompressed")
                 for a in coco["annotations"]}
    assert encodings == {"polygon", "rle", "uncompressed"}  # the fixture covers every encoding
    anns = _by_image(coco)
    ds = CocoDetection(coco_set_ro)
    assert len(ds) == 6 and ds.num_skipped == 0
    for i in range(len(ds)):
        image, t = ds[i]
        rec = ds.records[i][0]
        assert image.shape == (3, 96, 128) and image.dtype == torch.float32
        assert 0 <= float(image.min()) and float(image.max()) <= 1
        objs = [a for a in anns.get(rec["id"], []) if not a["iscrowd"]]
        assert t["image_id"] == rec["id"]
        assert t["boxes"].dtype == torch.float32 and t["boxes"].shape == (len(objs), 4)
        assert t["labels"].dtype == torch.int64 and t["labels"].tolist() == [a["category_id"] for a in objs]
        assert t["masks"].dtype == torch.uint8 and t["masks"].shape == (len(objs), 96, 128)
        assert t["iscrowd"].tolist() == [0] * len(objs)
        for k, a in enumerate(objs):
            x, y, w, h = a["bbox"]
            assert t["boxes"][k].tolist() == [x, y, x + w, y + h]
            expected = segmentation_to_mask(a["segmentation"], 96, 128)
            assert torch.equal(t["masks"][k], torch.from_numpy(expected))
            assert t["area"][k].item() == a["area"] == expected.sum()
            # the mask lies inside its box and touches it on all four sides (tight)
            assert masks_to_boxes(expected[None])[0].tolist() == [x, y, x + w, y + h]


def test_crowd_is_not_a_target_and_empty_image_is_a_negative(coco_set_ro):
    coco = load_coco(coco_set_ro)
    crowd = [a for a in coco["annotations"] if a["iscrowd"]]
    assert len(crowd) == 1 and crowd[0]["image_id"] == 1
    ds = CocoDetection(coco_set_ro)
    _, t0 = ds[0]
    assert len(t0["labels"]) == len([a for a in coco["annotations"] if a["image_id"] == 1 and not a["iscrowd"]])
    assert any(a.get("iscrowd") for a in ds.coco["annotations"])  # still there for COCOeval to ignore
    _, empty = ds[len(ds) - 1]
    assert empty["boxes"].shape == (0, 4) and empty["masks"].shape == (0, 96, 128)
    assert empty["labels"].shape == (0,)
    assert t0["iscrowd"].sum() == 0
    # data.crowd=target: the crowd region becomes a target with its own mask and class;
    # data.crowd=ignore: the same instance, flagged for the samplers to skip
    for mode, flag in (("target", 0), ("ignore", 1)):
        _, t1 = CocoDetection(coco_set_ro, crowd=mode)[0]
        assert len(t1["labels"]) == len(t0["labels"]) + 1
        extra = t1["masks"][-1].numpy()
        x, y, w, h = crowd[0]["bbox"]
        assert extra.sum() == crowd[0]["area"] and t1["labels"][-1].item() == crowd[0]["category_id"]
        assert t1["boxes"][-1].tolist() == pytest.approx([x, y, x + w, y + h])
        assert t1["iscrowd"].tolist() == [0] * len(t0["labels"]) + [flag]
    with pytest.raises(UserError, match="data.crowd: expected one of background, ignore, target"):
        CocoDetection(coco_set_ro, crowd="skip")


def test_crowd_flag_follows_its_mask_through_augmentation_and_copy_paste(coco_set_ro):
    coco = load_coco(coco_set_ro)
    crowd_area = next(a["area"] for a in coco["annotations"] if a["iscrowd"])
    aug = Augment(AugmentConfig(strength=0.0, hflip=1.0, copy_paste=1.0))
    ds = CocoDetection(coco_set_ro, transforms=aug, crowd="ignore")
    _, t = ds[(0, 3)]
    assert (t["labels"] > 0).all()
    flagged = t["iscrowd"].bool()
    # the crowd corner, flipped to the top right, keeps its flag; pasted instances of other
    # images (which have no crowd) are ordinary targets
    assert flagged.sum() == 1
    m = t["masks"][flagged][0].numpy()
    assert m.sum() <= crowd_area and m[:, -1].any() and not m[:, 0].any()


def test_uncompressed_and_compressed_rle_decode_to_the_same_mask():
    m = np.zeros((20, 30), np.uint8)
    m[3:9, 5:17] = 1
    m[0, 0] = 1  # a run starting with foreground
    rle = mask_utils.encode(np.asfortranarray(m))
    from helpers_coco import uncompressed_rle
    assert np.array_equal(segmentation_to_mask({"size": [20, 30], "counts": rle["counts"].decode()}, 20, 30), m)
    assert np.array_equal(segmentation_to_mask(uncompressed_rle(m), 20, 30), m)
    poly = segmentation_to_mask([[5, 3, 17, 3, 17, 9, 5, 9]], 20, 30)
    assert poly[3:9, 5:17].all() and poly.sum() <= 8 * 14


def test_class_map_renames_foreign_categories(coco_set):
    coco = load_coco(coco_set)
    coco["categories"] = [{"id": 7, "name": "person"}, {"id": 9, "name": "pallet truck"},
                          {"id": 11, "name": "forklift"}]
    for a in coco["annotations"]:
        a["category_id"] = {1: 7, 2: 9}[a["category_id"]]
    coco["annotations"].append({**coco["annotations"][0], "id": 999, "category_id": 11})
    save_coco(coco_set, coco)
    ds = CocoDetection(coco_set, class_map={"person": "pedestrian", "pallet truck": "pallet_jack"})
    assert ds.dropped_categories == ["forklift"]
    labels = torch.cat([ds[i][1]["labels"] for i in range(len(ds))]).tolist()
    assert set(labels) == {1, 2}
    assert 999 not in {a["id"] for a in ds.coco["annotations"]}
    bare = CocoDetection(coco_set)  # without a map foreign categories are left out, and said so
    assert bare.dropped_categories == ["person", "pallet truck", "forklift"]
    assert sum(len(bare[i][1]["labels"]) for i in range(len(bare))) == 0
    with pytest.raises(UserError, match="class map names"):
        CocoDetection(coco_set, class_map={"people": "pedestrian"})


def _break(coco_set, how):
    coco = load_coco(coco_set)
    if how == "missing_image":
        (coco_set / "images" / coco["images"][2]["file_name"]).unlink()
    elif how == "size":
        Image.new("RGB", (64, 48)).save(coco_set / "images" / coco["images"][1]["file_name"])
    elif how == "box":
        coco["annotations"][1]["bbox"] = [120.0, 10.0, 30.0, 10.0]
    elif how == "category":
        coco["annotations"][1]["category_id"] = 42
    save_coco(coco_set, coco)
    return coco


@pytest.mark.parametrize("how,pattern", [
    ("missing_image", r"image id 3: file .*000002.png not found"),
    ("size", r"image id 2: 000001.png is 64x48 but the record says 128x96"),
    ("box", r"annotation id 2 \(image \d+\): bbox \[120.0, 10.0, 30.0, 10.0\] outside the 128x96 image"),
    ("category", r"annotation id 2 \(image \d+\): unknown category_id 42"),
])
def test_bad_records_name_file_and_record(coco_set, how, pattern):
    _break(coco_set, how)
    with pytest.raises(UserError, match=pattern) as e:
        CocoDetection(coco_set)
    assert str(coco_set / "annotations.json") in str(e.value)
    ds = CocoDetection(coco_set, skip_bad=True)
    assert ds.num_skipped == 1 and len(ds.problems) == 1
    if how in ("missing_image", "size"):
        assert len(ds) == 5
    else:
        assert len(ds) == 6 and 2 not in {a["id"] for a in ds.coco["annotations"]}
        assert all(len(ds[i][1]["labels"]) >= 0 for i in range(len(ds)))


def test_empty_and_malformed_files(tmp_path):
    (tmp_path / "images").mkdir()
    ann = tmp_path / "annotations.json"
    ann.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(UserError, match=r"annotations.json: empty dataset"):
        CocoDetection(tmp_path)
    ann.write_text("")
    with pytest.raises(UserError, match="not valid JSON"):
        CocoDetection(tmp_path)
    ann.write_text("[1, 2]")
    with pytest.raises(UserError, match="not a COCO file"):
        CocoDetection(tmp_path)
    with pytest.raises(UserError, match="dataset folder not found"):
        CocoDetection(tmp_path / "nope")


def test_image_ids_subset(coco_set_ro):
    ds = CocoDetection(coco_set_ro, image_ids=[2, 4])
    assert ds.image_ids == [2, 4]
    assert {a["image_id"] for a in ds.coco["annotations"]} <= {2, 4}
    assert [im["id"] for im in ds.coco["images"]] == [2, 4]


def test_split_is_deterministic_and_stable():
    ids = list(range(1, 201))
    train, val = split_ids(ids, 0.2, seed=3)
    assert sorted(train + val) == ids and 20 <= len(val) <= 60
    assert split_ids(ids, 0.2, seed=3) == (train, val)
    train2, val2 = split_ids(ids + list(range(201, 301)), 0.2, seed=3)
    assert set(val) <= set(val2) and set(train) <= set(train2)  # adding images moves none
    assert split_ids(ids, 0.2, seed=4)[1] != val


def test_step_sampler_resumes_and_shards():
    full = StepSampler(10, batch_size=2, seed=5)
    it = iter(full)
    stream = [next(it) for _ in range(2 * 12)]  # 12 steps = 2.4 epochs
    it = iter(StepSampler(10, batch_size=2, seed=5, start_step=7))
    assert [next(it) for _ in range(2 * 5)] == stream[14:]
    epoch0 = [i for i, _ in stream[:10]]
    assert sorted(epoch0) == list(range(10))  # every image once per epoch
    assert [i for i, _ in stream[10:20]] != epoch0  # reshuffled each epoch
    r0, r1 = (iter(StepSampler(10, 2, 5, rank=r, world_size=2)) for r in (0, 1))
    a, b = [next(r0) for _ in range(6)], [next(r1) for _ in range(6)]
    seen = [i for i, _ in a + b]
    assert len(set(seen)) == 10  # 3 global steps of 4 cover the epoch (12 = 10 + 2 wrapped)
    assert not {s for _, s in a} & {s for _, s in b}  # distinct augmentation seeds per sample


def test_collate_keeps_lists(coco_set_ro):
    ds = CocoDetection(coco_set_ro)
    images, targets = collate_fn([ds[0], ds[5]])
    assert len(images) == 2 and targets[1]["boxes"].shape == (0, 4)


# ---------------------------------------------------------------- augmentation

def test_strength_zero_is_identity_and_overrides_win(coco_set_ro):
    ops = resolved_ops(AugmentConfig(strength=0))
    assert all(v == 0 for v in ops.values())
    ops = resolved_ops(AugmentConfig(strength=1, blur=0.0, hflip=1.0))
    assert ops["blur"] == 0 and ops["hflip"] == 1 and ops["scale"] == pytest.approx(0.4)
    ds = CocoDetection(coco_set_ro, transforms=Augment(AugmentConfig(strength=0)))
    plain = CocoDetection(coco_set_ro)
    for i in range(3):
        assert torch.equal(ds[(i, 7)][0], plain[i][0])
        assert torch.equal(ds[(i, 7)][1]["masks"], plain[i][1]["masks"])


def test_augmentation_keeps_masks_inside_tight_boxes(coco_set_ro):
    aug = Augment(AugmentConfig(strength=1.0, min_area=10))
    ds = CocoDetection(coco_set_ro, transforms=aug)
    changed = 0
    for seed in range(40):
        i = seed % len(ds)
        image, t = ds[(i, seed)]
        assert image.shape == (3, 96, 128)
        n = len(t["labels"])
        assert t["masks"].shape == (n, 96, 128) and t["boxes"].shape == (n, 4)
        for k in range(n):
            m = t["masks"][k].numpy().astype(bool)
            x0, y0, x1, y1 = t["boxes"][k].int().tolist()
            assert m.sum() >= 10  # smaller remnants are dropped
            inside = np.zeros_like(m)
            inside[y0:y1, x0:x1] = True
            assert not (m & ~inside).any()  # no mask pixel outside its box
            assert m[y0].any() and m[y1 - 1].any() and m[:, x0].any() and m[:, x1 - 1].any()  # tight
            assert t["area"][k] == m.sum()
        changed += not torch.equal(image, CocoDetection(coco_set_ro)[i][0])
    assert changed > 30  # strength 1 changes nearly every sample


def test_augmentation_is_a_function_of_the_seed(coco_set_ro):
    ds = CocoDetection(coco_set_ro, transforms=Augment(AugmentConfig(strength=0.8)))
    a, b, c = ds[(1, 123)], ds[(1, 123)], ds[(1, 124)]
    assert torch.equal(a[0], b[0]) and torch.equal(a[1]["masks"], b[1]["masks"])
    assert not torch.equal(a[0], c[0])


def test_flip_moves_masks_with_the_image(coco_set_ro):
    cfg = AugmentConfig(strength=0, hflip=1.0)
    ds = CocoDetection(coco_set_ro, transforms=Augment(cfg))
    plain = CocoDetection(coco_set_ro)
    image, t = ds[(1, 0)]
    image0, t0 = plain[1]
    assert torch.equal(image, image0.flip(-1))
    assert torch.equal(t["masks"], t0["masks"].flip(-1))
    x0, _, x1, _ = t0["boxes"][0].tolist()
    assert t["boxes"][0, 0].item() == 128 - x1 and t["boxes"][0, 2].item() == 128 - x0


def test_preview_aug_writes_a_grid(coco_set_ro, tmp_path):
    import cv2

    from pipeline import preview_aug

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("augment: {strength: 1.0}\n")
    out = tmp_path / "aug.png"
    assert preview_aug.main(["--config", str(cfg), "--data", str(coco_set_ro), "--out", str(out),
                             "--num", "6"]) == 0
    img = cv2.imread(str(out))
    assert img.shape[1] == 3 * (320 + 4) + 4 and img.shape[0] == 2 * (240 + 4) + 4  # 2 rows x 3 tiles
    with pytest.raises(UserError, match="expected a .png or .jpg"):
        preview_aug.main(["--config", str(cfg), "--data", str(coco_set_ro), "--out", str(tmp_path / "a.gif")])


# ---------------------------------------------------------------- what a new user runs into

def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def test_truncated_png_is_found_up_front(coco_set):
    """A truncated PNG passes the header check; it must be refused (or skipped and counted)
    when the set is opened, not in a DataLoader worker after training started."""
    coco = load_coco(coco_set)
    bad = coco_set / "images" / coco["images"][3]["file_name"]
    _truncate(bad)
    with Image.open(bad) as im:
        assert im.size == (128, 96)  # the header alone looks fine
    with pytest.raises(UserError, match=r"image id 4: .*000003.png cannot be decoded \(.*truncated") as e:
        CocoDetection(coco_set)
    assert "\n" not in str(e.value) and "skip_bad" in str(e.value)
    ds = CocoDetection(coco_set, skip_bad=True)
    assert ds.num_skipped == 1 and "000003.png cannot be decoded" in ds.problems[0]
    assert len(ds) == 5 and 4 not in ds.image_ids
    assert all(ds[i][0].shape == (3, 96, 128) for i in range(len(ds)))  # every kept image loads


def test_jpeg_truncated_and_complete(tmp_path):
    from pipeline.data import decode_problem

    rgb = (np.random.default_rng(0).random((48, 64, 3)) * 255).astype(np.uint8)
    good, cut = tmp_path / "good.jpg", tmp_path / "cut.jpg"
    Image.fromarray(rgb).save(good, quality=90)
    Image.fromarray(rgb).save(cut, quality=90)
    _truncate(cut, 0.7)
    assert decode_problem(good) is None
    assert "truncated" in decode_problem(cut)
    # a PNG without its IEND chunk fails PIL's verify but decodes: not a problem
    png = tmp_path / "no_iend.png"
    Image.fromarray(rgb).save(png)
    png.write_bytes(png.read_bytes()[:-12])
    assert decode_problem(png) is None


@pytest.mark.parametrize("prefix", ["", "images/"])
def test_file_name_relative_to_images_or_dataset_root(coco_set, prefix):
    """Our writer stores `x.png` (relative to images/); several exporters store `images/x.png`
    (relative to the dataset root). Both load, and evaluate's resolve_dataset agrees."""
    from pipeline.data import resolve_dataset

    coco = load_coco(coco_set)
    for im in coco["images"]:
        im["file_name"] = prefix + im["file_name"]
    save_coco(coco_set, coco)
    ds = CocoDetection(coco_set)
    assert len(ds) == 6 and ds.num_skipped == 0
    assert ds[0][0].shape == (3, 96, 128)
    base, _ = resolve_dataset(coco_set)
    assert all((base / im["file_name"]).is_file() for im in coco["images"])
    (coco_set / "images" / "000002.png").unlink()  # still one precise message when one is missing
    with pytest.raises(UserError, match=r"image id 3: file .*images/000002.png not found"):
        CocoDetection(coco_set)


def test_preview_reads_root_relative_file_names(coco_set, tmp_path):
    from pipeline import preview

    coco = load_coco(coco_set)
    for im in coco["images"]:
        im["file_name"] = "images/" + im["file_name"]
    save_coco(coco_set, coco)
    assert preview.main(["--data", str(coco_set), "--out", str(tmp_path / "pv"), "--num", "3"]) == 0
    assert (tmp_path / "pv" / "contact_sheet.png").is_file()


def test_random_init_banner_without_source_line(tmp_path):
    """weights=auto without weights: the banner on stderr once, not followed by the warnings
    module's `file:line: UserWarning` and the caller's source line."""
    import subprocess
    import sys

    script = tmp_path / "build.py"
    script.write_text(
        "import torch\n"
        f"torch.hub.set_dir({str(tmp_path)!r})\n"
        "from pipeline.model import ModelConfig, build_model\n"
        "model, init_info = build_model(ModelConfig(weights='auto', min_size=96, max_size=128,"
        " allow_download=False))\n")
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                       env={**__import__("os").environ, "PYTHONWARNINGS": ""})
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("training from RANDOM init") == 1
    assert "!" * 72 in r.stderr and "downloads are off" in r.stderr
    assert "build_model(" not in r.stderr and "Warning" not in r.stderr
