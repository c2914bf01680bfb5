"""CIHP (Crowd Instance-level Human Parsing) readers, plus the label-PNG reader shared by the datasets.

Native layout (:class:`CIHPDataset`; ``root`` is the ``instance-level_human_parsing`` folder, or a
folder that contains it)::

    <root>/Training/{Images/<id>.jpg, Category_ids/<id>.png, Human_ids/<id>.png, train_id.txt}
    <root>/Validation/{Images/..., Category_ids/..., Human_ids/..., val_id.txt}

``Category_ids`` holds the part label (20 classes, 0 background) of every pixel, ``Human_ids`` the
person index (1..N, 0 background). Person k's map is ``Category_ids`` where ``Human_ids == k``.

Parsing R-CNN release layout (:class:`CIHPParsingRCNNDataset`), the one the official UniParser code
trains from::

    <root>/CHIP_<set>.json          COCO-style: "images" [{id, file_name, ...}], "annotations"
                                    [{image_id, parsing: "<id>-<k>.png", ...}], <set> = train | val
    <root>/<set>_img/<file_name>
    <root>/<set>_parsing/<id>-<k>.png   one label PNG per person

Label PNGs are read like the official loaders read them (the first channel as PIL sees it); the value
255 is kept (person foreground without a part).
"""
from __future__ import annotations

import json
import os
import struct

import cv2
import numpy as np

from ..classes import CIHP_CLASSES

__all__ = ["CIHPDataset", "CIHPParsingRCNNDataset", "open_cihp", "read_label_png", "read_image"]

_SPLITS = {"train": ("Training", "train_id.txt"), "training": ("Training", "train_id.txt"),
           "val": ("Validation", "val_id.txt"), "validation": ("Validation", "val_id.txt")}
_ROOT_NAME = "instance-level_human_parsing"


def _png_palette(path: str) -> np.ndarray | None:
    """The PLTE of an indexed-colour PNG as an (n, 3) RGB array, None if the PNG is not indexed."""
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        color_type = None
        while True:  # chunks before the image data only
            head = f.read(8)
            if len(head) < 8:
                break
            length, ctype = struct.unpack(">I4s", head)
            if ctype in (b"IDAT", b"IEND"):
                break
            if ctype == b"IHDR":
                color_type = f.read(length)[9]
                if color_type != 3:
                    return None
                f.seek(4, os.SEEK_CUR)
            elif ctype == b"PLTE":
                return np.frombuffer(f.read(length), np.uint8).reshape(-1, 3)
            else:
                f.seek(length + 4, os.SEEK_CUR)
    if color_type == 3:
        raise ValueError(f"{path}: indexed PNG without a PLTE chunk")
    return None


def _palette_indices(rgb: np.ndarray, pal: np.ndarray, path: str) -> np.ndarray:
    """Map palette colours (as OpenCV expanded them) back to palette indices."""
    key = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    pkey = (pal[:, 0].astype(np.int32) << 16) | (pal[:, 1].astype(np.int32) << 8) | pal[:, 2]
    uniq, inv = np.unique(key, return_inverse=True)
    lut = np.empty(len(uniq), np.uint8)
    for j, k in enumerate(uniq):
        hits = np.flatnonzero(pkey == k)
        if hits.size == 0:
            raise ValueError(f"{path}: colour not in the PNG palette; cannot recover indices")
        lut[j] = hits[0]  # duplicated palette colours: the smallest index
    return lut[inv.reshape(key.shape)]


def read_label_png(path: str) -> np.ndarray:
    """Read a label PNG as an HxW uint8 array of class indices.

    * grayscale: the values;
    * indexed colour (palette): the palette indices (OpenCV expands palettes to colours; they are
      mapped back through the file's PLTE);
    * RGB / RGBA: the first channel as PIL sees it, i.e. red (OpenCV's channel 2), the MHPv2
      convention.

    Raises FileNotFoundError naming the path when it is missing or unreadable.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"label file not found: {path}")
    arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise FileNotFoundError(f"could not decode label image {path}")
    pal = _png_palette(path) if path.lower().endswith(".png") else None
    if pal is not None and arr.dtype == np.uint8:
        rgb = arr[:, :, 2::-1] if arr.ndim == 3 else np.repeat(arr[:, :, None], 3, axis=2)  # BGR(A) -> RGB
        arr = _palette_indices(rgb, pal, path)
    elif arr.ndim == 3:
        arr = arr[:, :, 2] if arr.shape[2] >= 3 else arr[:, :, 0]
    if arr.dtype != np.uint8:
        if arr.dtype == np.uint16 and int(arr.max(initial=0)) <= 255:
            arr = arr.astype(np.uint8)
        else:
            raise ValueError(f"{path}: expected 8-bit labels, got {arr.dtype} with max {arr.max()}")
    return np.ascontiguousarray(arr)


def read_image(path: str) -> np.ndarray:
    """Read an image as HxWx3 uint8 BGR; FileNotFoundError naming the path if missing/unreadable."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image not found: {path}")
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"could not decode image {path}")
    return img


def _out_of_range(lab: np.ndarray, num_classes: int):
    """The first label value that is neither a class (< num_classes) nor 255, or None."""
    vals = np.unique(lab)
    bad = vals[(vals >= num_classes) & (vals != 255)]
    return int(bad[0]) if bad.size else None


def read_person_labels(paths, image_shape, num_classes: int, dataset: str) -> list:
    """One person's label PNG per path, each checked against the image size and the class range (255 is
    kept: foreground without a part, as the official loaders read it)."""
    persons = []
    for path in paths:
        lab = read_label_png(path)
        if lab.shape != tuple(image_shape[:2]):
            raise ValueError(f"{dataset} {path}: size {lab.shape} != image size {tuple(image_shape[:2])}")
        bad = _out_of_range(lab, num_classes)
        if bad is not None:
            raise ValueError(f"{dataset} {path}: label {bad} >= {num_classes} classes (only 255 is allowed)")
        persons.append(lab)
    return persons


def split_persons(cat: np.ndarray, hum: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """A CIHP (category map, person-index map) pair -> ``[(person index k, uint8 part map of person k)]``,
    ascending k; persons without any part label are dropped."""
    persons = []
    for k in np.unique(hum):
        if k == 0:
            continue
        m = np.where(hum == k, cat, 0).astype(np.uint8)
        if m.any():
            persons.append((int(k), m))
    return persons


def _read_ids(path: str) -> list[str]:
    with open(path) as f:
        ids = [ln.strip() for ln in f if ln.strip()]
    return [i[:-4] if i.lower().endswith((".jpg", ".png")) else i for i in ids]


class _CIHPSamples:
    """What both CIHP readers share: the class list, split-name checking, iteration over samples."""

    classes = CIHP_CLASSES
    num_classes = len(CIHP_CLASSES)

    @staticmethod
    def _split_key(split, names: dict, accepted: str) -> str:
        key = str(split).lower()
        if key not in names:
            raise ValueError(f"CIHP split must be {accepted}, got {split!r}")
        return key

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]


class CIHPDataset(_CIHPSamples):
    """CIHP split as a list of samples ``{"id", "image", "persons"}`` (see :mod:`uniparser_sdk.data`).

    ``split``: "train" / "val" (or "Training" / "Validation"). The layout is checked on construction:
    a missing folder, id list or file raises FileNotFoundError naming the path; an unknown split
    raises ValueError. ``check_files=False`` skips the per-file check (faster on huge trees).
    Persons are ordered by their Human_ids index; an index with no labelled pixel is skipped.
    Category values must be < 20 or 255 (kept: foreground without a part); others raise ValueError.
    """

    def __init__(self, root: str, split: str = "train", check_files: bool = True):
        key = self._split_key(split, _SPLITS, "'train' or 'val' (or 'Training'/'Validation')")
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"CIHP root not found: {root}")
        folder, list_name = _SPLITS[key]
        if not os.path.isdir(os.path.join(root, folder)) and os.path.isdir(os.path.join(root, _ROOT_NAME, folder)):
            root = os.path.join(root, _ROOT_NAME)
        self.root, self.split = root, folder
        base = os.path.join(root, folder)
        if not os.path.isdir(base):
            raise FileNotFoundError(f"CIHP split folder not found: {base} (expected {root}/{folder}/"
                                    "{Images,Category_ids,Human_ids})")
        self.dirs = {d: os.path.join(base, d) for d in ("Images", "Category_ids", "Human_ids")}
        for d in self.dirs.values():
            if not os.path.isdir(d):
                raise FileNotFoundError(f"CIHP folder not found: {d}")
        candidates = [os.path.join(base, list_name), os.path.join(root, list_name)]
        list_path = next((p for p in candidates if os.path.isfile(p)), None)
        if list_path is None:
            raise FileNotFoundError(f"CIHP id list not found: {candidates[0]} (nor {candidates[1]})")
        self.list_path = list_path
        self.ids = _read_ids(list_path)
        if check_files:
            self._check_files()

    def _paths(self, sid: str) -> tuple[str, str, str]:
        return (os.path.join(self.dirs["Images"], sid + ".jpg"),
                os.path.join(self.dirs["Category_ids"], sid + ".png"),
                os.path.join(self.dirs["Human_ids"], sid + ".png"))

    def _check_files(self) -> None:
        listing = {d: set(os.listdir(p)) for d, p in self.dirs.items()}
        for sid in self.ids:
            for d, ext in (("Images", ".jpg"), ("Category_ids", ".png"), ("Human_ids", ".png")):
                if sid + ext not in listing[d]:
                    raise FileNotFoundError(f"CIHP file listed in {self.list_path} not found: "
                                            f"{os.path.join(self.dirs[d], sid + ext)}")

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        sid = self.ids[i]
        img_p, cat_p, hum_p = self._paths(sid)
        image = read_image(img_p)
        cat, hum = read_label_png(cat_p), read_label_png(hum_p)
        if cat.shape != image.shape[:2] or hum.shape != image.shape[:2]:
            raise ValueError(f"CIHP sample {sid!r}: sizes differ: {img_p} {image.shape[:2]}, "
                             f"{cat_p} {cat.shape}, {hum_p} {hum.shape}")
        bad = _out_of_range(cat, self.num_classes)
        if bad is not None:
            raise ValueError(f"{cat_p}: label {bad} >= {self.num_classes} CIHP classes (only 255 is allowed)")
        return {"id": sid, "image": image, "persons": [m for _, m in split_persons(cat, hum)]}

    def __repr__(self) -> str:
        return f"CIHPDataset(root={self.root!r}, split={self.split!r}, images={len(self)})"


_RCNN_SETS = {"train": "train", "training": "train", "val": "val", "validation": "val"}


class CIHPParsingRCNNDataset(_CIHPSamples):
    """CIHP in the Parsing R-CNN release layout (see the module docstring) as samples
    ``{"id", "image", "persons"}``: what the official UniParser code trains from.

    Images are taken in the order of their first annotation in ``CHIP_<set>.json`` (images without
    annotations are not samples), persons in annotation order. Each annotation's ``image_id`` is looked
    up by the images' ``id`` field (the official loader indexes the list at ``image_id - 1``, the same
    entry in the release files). Missing files raise FileNotFoundError naming the path; label values
    other than 0..19 and 255 raise ValueError.
    """

    def __init__(self, root: str, split: str = "train", check_files: bool = True):
        key = self._split_key(split, _RCNN_SETS, "'train' or 'val'")
        root = os.fspath(root)
        self.root, self.split = root, _RCNN_SETS[key]
        self.json_path = os.path.join(root, f"CHIP_{self.split}.json")
        if not os.path.isfile(self.json_path):
            raise FileNotFoundError(f"CIHP annotation file not found: {self.json_path}")
        self.image_dir = os.path.join(root, f"{self.split}_img")
        self.parsing_dir = os.path.join(root, f"{self.split}_parsing")
        for d in (self.image_dir, self.parsing_dir):
            if not os.path.isdir(d):
                raise FileNotFoundError(f"CIHP folder not found: {d}")
        with open(self.json_path) as f:
            data = json.load(f)
        try:
            images = {im["id"]: im for im in data["images"]}
            order, persons = [], {}
            for ann in data["annotations"]:
                iid = ann["image_id"]
                if iid not in persons:
                    if iid not in images:
                        raise ValueError(f"{self.json_path}: annotation of unknown image_id {iid}")
                    persons[iid] = []
                    order.append(iid)
                persons[iid].append(str(ann["parsing"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{self.json_path}: not a COCO-style CIHP file (missing {exc})") from None
        self._files = [(images[i]["file_name"], persons[i]) for i in order]
        self.ids = [os.path.splitext(os.path.basename(name))[0] for name, _ in self._files]
        if check_files:
            for name, parts in self._files:
                for path in [os.path.join(self.image_dir, name)] + [os.path.join(self.parsing_dir, p) for p in parts]:
                    if not os.path.isfile(path):
                        raise FileNotFoundError(f"CIHP file listed in {self.json_path} not found: {path}")

    def __len__(self) -> int:
        return len(self._files)

    def __getitem__(self, i: int) -> dict:
        name, parts = self._files[i]
        image = read_image(os.path.join(self.image_dir, name))
        persons = read_person_labels([os.path.join(self.parsing_dir, part) for part in parts], image.shape,
                                     self.num_classes, "CIHP")
        return {"id": self.ids[i], "image": image, "persons": persons}

    def __repr__(self) -> str:
        return f"CIHPParsingRCNNDataset(root={self.root!r}, split={self.split!r}, images={len(self)})"


def is_parsing_rcnn_layout(root: str) -> bool:
    return any(os.path.isfile(os.path.join(root, f"CHIP_{s}.json")) for s in ("train", "val"))


def open_cihp(root: str, split: str = "train"):
    """The CIHP dataset at ``root`` in whichever layout it has: the Parsing R-CNN release
    (``CHIP_<set>.json``) or the native one (``Training/``, ``Validation/``)."""
    if is_parsing_rcnn_layout(os.fspath(root)):
        return CIHPParsingRCNNDataset(root, split)
    return CIHPDataset(root, split)
