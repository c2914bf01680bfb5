"""The dataset readers follow the official loaders (DESIGN §6), on files this test writes itself in the real
formats (OpenCV, json and hand-made PNG bytes; none of our writers): label 255 is read, MHPv2 persons come
in plain sorted file-name order, CIHP is read from the Parsing R-CNN release layout too."""
import json
import struct
import zlib

import cv2
import numpy as np
import pytest

from uniparser_sdk.data import CIHPDataset, MHPv2Dataset
from uniparser_sdk.data.cihp import CIHPParsingRCNNDataset, open_cihp

H, W = 8, 12


def _palette_png(path, lab):
    """An indexed-colour PNG (PIL mode "P"): the official loader reads the palette INDICES."""
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    pal = (np.arange(256 * 3).reshape(256, 3) * 7) % 256
    raw = b"".join(b"\x00" + row.tobytes() for row in lab.astype(np.uint8))
    h, w = lab.shape
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))
                     + chunk(b"PLTE", pal.astype(np.uint8).tobytes()) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def _rgb_png(path, lab):
    """Label in the red channel (PIL's channel 0), noise in green / blue."""
    bgr = np.stack([np.full_like(lab, 77), np.full_like(lab, 33), lab], axis=2)
    assert cv2.imwrite(str(path), bgr)


def _image(path):
    assert cv2.imwrite(str(path), np.full((H, W, 3), 128, np.uint8))


def _person(value, rows, cols, ignore_cols=None):
    lab = np.zeros((H, W), np.uint8)
    lab[rows, cols] = value
    if ignore_cols is not None:
        lab[rows, ignore_cols] = 255
    return lab


def test_mhp_reads_255_and_orders_persons_by_file_name(tmp_path):
    root = tmp_path / "LV-MHP-v2"
    (root / "list").mkdir(parents=True)
    (root / "train" / "images").mkdir(parents=True)
    annos = root / "train" / "parsing_annos"
    annos.mkdir()
    (root / "list" / "train.txt").write_text("img7\n")
    _image(root / "train" / "images" / "img7.jpg")
    # ten persons, KK not zero-padded; person KK has label KK (and 255 next to it)
    for k in range(1, 11):
        _rgb_png(annos / f"img7_10_{k}.png", _person(k, slice(0, 2), slice(k - 1, k), slice(11, 12)))
    sample = MHPv2Dataset(str(root), "train")[0]
    # plain string order: _1, _10, _2, ..., _9 (not 1..10)
    assert [int(p[0, :11].max()) for p in sample["persons"]] == [1, 10, 2, 3, 4, 5, 6, 7, 8, 9]
    assert all((p[0:2, 11] == 255).all() for p in sample["persons"])  # 255 kept
    bad = _person(60, slice(0, 1), slice(0, 1))  # 60 >= 59 classes and not 255: refused, named
    _rgb_png(annos / "img7_10_1.png", bad)
    with pytest.raises(ValueError, match="label 60"):
        MHPv2Dataset(str(root), "train")[0]


def test_cihp_native_reads_255(tmp_path):
    base = tmp_path / "instance-level_human_parsing" / "Training"
    for d in ("Images", "Category_ids", "Human_ids"):
        (base / d).mkdir(parents=True)
    (base / "train_id.txt").write_text("0001\n")
    _image(base / "Images" / "0001.jpg")
    cat = np.zeros((H, W), np.uint8)
    cat[0:4, 0:4] = 2
    cat[0:4, 4:6] = 255
    hum = np.zeros((H, W), np.uint8)
    hum[0:4, 0:6] = 1
    _palette_png(base / "Category_ids" / "0001.png", cat)
    assert cv2.imwrite(str(base / "Human_ids" / "0001.png"), hum)
    (p,) = CIHPDataset(str(tmp_path), "train")[0]["persons"]
    np.testing.assert_array_equal(p, cat)


def test_cihp_parsing_rcnn_layout(tmp_path):
    root = tmp_path / "CIHP"
    (root / "train_img").mkdir(parents=True)
    (root / "train_parsing").mkdir()
    # image 2 is annotated first; its persons in annotation order (3 before 1); image 3 has no annotation
    info = {"images": [{"id": 1, "file_name": "0000001.jpg", "width": W, "height": H},
                       {"id": 2, "file_name": "0000002.jpg", "width": W, "height": H},
                       {"id": 3, "file_name": "0000003.jpg", "width": W, "height": H}],
            "annotations": [{"id": 10, "image_id": 2, "parsing": "0000002-3.png", "category_id": 1, "bbox": []},
                            {"id": 11, "image_id": 1, "parsing": "0000001-1.png", "category_id": 1, "bbox": []},
                            {"id": 12, "image_id": 2, "parsing": "0000002-1.png", "category_id": 1, "bbox": []}],
            "categories": [{"id": 1, "name": "person"}]}
    (root / "CHIP_train.json").write_text(json.dumps(info))
    for name in ("0000001.jpg", "0000002.jpg", "0000003.jpg"):
        _image(root / "train_img" / name)
    _rgb_png(root / "train_parsing" / "0000002-3.png", _person(13, slice(2, 4), slice(2, 4)))
    _palette_png(root / "train_parsing" / "0000002-1.png", _person(5, slice(4, 8), slice(6, 9), slice(9, 10)))
    assert cv2.imwrite(str(root / "train_parsing" / "0000001-1.png"), _person(2, slice(0, 8), slice(0, 3)))
    ds = CIHPParsingRCNNDataset(str(root), "train")
    assert ds.ids == ["0000002", "0000001"] and len(ds) == 2
    s = ds[0]
    assert s["image"].shape == (H, W, 3) and len(s["persons"]) == 2
    np.testing.assert_array_equal(s["persons"][0], _person(13, slice(2, 4), slice(2, 4)))
    np.testing.assert_array_equal(s["persons"][1], _person(5, slice(4, 8), slice(6, 9), slice(9, 10)))
    np.testing.assert_array_equal(ds[1]["persons"][0], _person(2, slice(0, 8), slice(0, 3)))
    assert isinstance(open_cihp(str(root), "train"), CIHPParsingRCNNDataset)
    with pytest.raises(FileNotFoundError, match="CHIP_val.json"):
        CIHPParsingRCNNDataset(str(root), "val")
    (root / "train_parsing" / "0000001-1.png").unlink()
    with pytest.raises(FileNotFoundError, match="0000001-1.png"):
        CIHPParsingRCNNDataset(str(root), "train")


def test_trainer_finds_the_parsing_rcnn_layout(tmp_path):
    from uniparser_sdk.train.trainer import TrainConfig, build_dataset

    root = tmp_path / "CIHP"
    (root / "train_img").mkdir(parents=True)
    (root / "train_parsing").mkdir()
    (root / "CHIP_train.json").write_text(json.dumps(
        {"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [{"image_id": 1, "parsing": "a-1.png"}]}))
    _image(root / "train_img" / "a.jpg")
    assert cv2.imwrite(str(root / "train_parsing" / "a-1.png"), _person(2, slice(0, 4), slice(0, 4)))
    ds, classes = build_dataset(TrainConfig(data=str(root)), 20)
    assert isinstance(ds, CIHPParsingRCNNDataset) and len(classes) == 20
