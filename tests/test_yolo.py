"""pipeline.yolo: a COCO set written as an Ultralytics YOLO-seg dataset and read back."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml
from helpers_coco import compressed_rle, load_coco, make_coco_set, save_coco, tight_bbox

from pipeline import cli, yolo
from pipeline.common import UserError
from pipeline.data import split_ids
from pipeline.rle import decode as segmentation_to_mask

H, W = 96, 128


def read_labels(path):
    """[(class, (K, 2) pixel polygon)] of one label file, as Ultralytics reads it."""
    out = []
    for line in path.read_text().splitlines():
        v = line.split()
        xy = np.array(v[1:], float).reshape(-1, 2) * (W, H)
        out.append((int(v[0]), xy))
    return out


def rasterise(xy):
    m = np.zeros((H, W), np.uint8)
    cv2.fillPoly(m, [np.round(xy).astype(np.int32)], 1)  # what Ultralytics' polygon2mask does
    return m


def iou(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return (a & b).sum() / (a | b).sum()


@pytest.fixture
def coco_split(tmp_path):
    """12 images; image 2's first object becomes two separate pieces (an occluded instance)."""
    root = make_coco_set(tmp_path / "coco", num_images=12, size=(H, W), seed=3)
    coco = load_coco(root)
    m = np.zeros((H, W), np.uint8)
    m[10:30, 5:25] = 1
    m[60:80, 90:120] = 1
    a = next(a for a in coco["annotations"] if a["image_id"] == 2 and not a["iscrowd"])
    a.update(segmentation=compressed_rle(m), bbox=tight_bbox(m), area=int(m.sum()))
    save_coco(root, coco)
    return root


def test_written_set_reads_back(coco_split, tmp_path, capsys):
    out = tmp_path / "yolo"
    assert yolo.main(["--data", str(coco_split), "--out", str(out), "--val-fraction", "0.25"]) == 0
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {"path": str(out.resolve()), "train": "images/train", "val": "images/val",
                    "names": {0: "pedestrian", 1: "pallet_jack"}}
    coco = load_coco(coco_split)
    train_ids, val_ids = split_ids([im["id"] for im in coco["images"]], 0.25, 0)
    assert val_ids and train_ids  # both splits written, the same split training uses
    n_polys, n_crowd = 0, 0
    for im in coco["images"]:
        split = "val" if im["id"] in val_ids else "train"
        img = out / "images" / split / im["file_name"]
        assert img.is_symlink() and img.resolve() == (coco_split / "images" / im["file_name"]).resolve()
        labels = read_labels(out / "labels" / split / img.with_suffix(".txt").name)
        anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
        n_crowd += sum(a["iscrowd"] for a in anns)
        objs = [a for a in anns if not a["iscrowd"]]  # crowd regions are left out
        assert [c for c, _ in labels] == [a["category_id"] - 1 for a in objs]
        for (_, xy), a in zip(labels, objs, strict=True):
            assert (xy >= 0).all() and (xy[:, 0] <= W).all() and (xy[:, 1] <= H).all()
            src = segmentation_to_mask(a["segmentation"], H, W)
            assert iou(rasterise(xy), src) > 0.9, (im["id"], a["id"])
            n_polys += 1
    assert n_polys > 10 and n_crowd == 1
    last = coco["images"][-1]  # the helper's negative image
    split = "val" if last["id"] in val_ids else "train"
    assert (out / "labels" / split / last["file_name"].replace(".png", ".txt")).read_text() == ""
    assert "1 crowd regions" in capsys.readouterr().out


def test_two_pieces_become_one_polygon_covering_both(coco_split, tmp_path):
    out = tmp_path / "yolo"
    yolo.main(["--data", str(coco_split), "--out", str(out), "--val-fraction", "0"])
    (_, xy), *_ = read_labels(out / "labels" / "train" / "000001.txt")
    m = rasterise(xy)
    assert m[10:30, 5:25].all() and m[60:80, 90:120].all()  # both pieces, whole
    assert m.sum() - 20 * 20 - 20 * 30 < 0.1 * (20 * 20 + 20 * 30)  # plus only a thin bridge
    # no val split asked for: data.yaml validates on train rather than on an empty folder
    assert yaml.safe_load((out / "data.yaml").read_text())["val"] == "images/train"


def test_copy_rerun_and_a_foreign_folder(coco_split, tmp_path):
    out = tmp_path / "yolo"
    yolo.main(["--data", str(coco_split), "--out", str(out), "--copy"])
    files = list((out / "images").rglob("*.png"))
    assert len(files) == 12 and not any(f.is_symlink() for f in files)
    (out / "labels" / "train" / "stale.txt").write_text("0 0 0 1 0 1 1\n")
    yolo.main(["--data", str(coco_split), "--out", str(out)])  # a rerun replaces the earlier output
    assert not (out / "labels" / "train" / "stale.txt").exists()
    assert all(f.is_symlink() for f in (out / "images").rglob("*.png"))
    (out / "data.yaml").unlink()  # as a killed conversion leaves it: still ours to replace
    yolo.main(["--data", str(coco_split), "--out", str(out)])
    assert (out / "data.yaml").is_file()
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match=r"notes: holds 'keep.txt', not only an earlier conversion's"):
        yolo.main(["--data", str(coco_split), "--out", str(other)])
    assert (other / "keep.txt").read_text() == "mine"


def test_separate_val_set_and_root_relative_names(coco_split, tmp_path):
    val = make_coco_set(tmp_path / "val", num_images=3, size=(H, W), seed=9)
    coco = load_coco(val)
    for im in coco["images"]:
        im["file_name"] = "images/" + im["file_name"]  # as several exporters write it
    save_coco(val, coco)
    out = tmp_path / "yolo"
    yolo.main(["--data", str(coco_split), "--out", str(out), "--val", str(val)])
    assert len(list((out / "images" / "train").iterdir())) == 12
    assert sorted(p.name for p in (out / "labels" / "val").iterdir()) == ["000000.txt", "000001.txt", "000002.txt"]


def test_cli_convert_format_yolo(coco_split, tmp_path, capsys):
    out = tmp_path / "yolo"
    with pytest.raises(SystemExit) as e:
        cli.main(["convert", "--format", "yolo", "--data", str(coco_split), "--out", str(out)])
    assert e.value.code == 0 and (out / "data.yaml").is_file()
    with pytest.raises(SystemExit) as e:
        cli.main(["convert", "--data", str(coco_split), "--out", str(out)])
    assert e.value.code == 2 and "convert needs --format" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["convert", "--format=coco"])
    assert e.value.code == 2 and "expected one of ['yolo']" in capsys.readouterr().err


def test_tiny_and_holed_masks():
    assert yolo.mask_to_polygon(np.zeros((H, W), np.uint8)) is None
    ring = np.zeros((H, W), np.uint8)
    ring[20:60, 20:60] = 1
    ring[30:50, 30:50] = 0  # a hole, bridged into the one polygon and drawn back empty
    back = rasterise(yolo.mask_to_polygon(ring))
    assert back[20:60, 20:60].sum() - ring.sum() <= 12  # only the 1-px bridge is extra
    assert iou(back, ring) > 0.95 and not back[32:48, 32:48].any()
