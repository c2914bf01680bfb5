"""LV-MHP-v2 (Multi-Human Parsing v2) reader and writer.

Layout (``root`` is the ``LV-MHP-v2`` folder, or a folder that contains it)::

    <root>/list/{train,val}.txt                      one image id per line
    <root>/{train,val}/images/<id>.jpg
    <root>/{train,val}/parsing_annos/<id>_<NN>_<KK>.png

NN is the number of persons in the image (zero-padded to 2 digits), KK = 1..NN the person. The label
(59 classes, 0 background) is the PNG's first channel as PIL reads it: red for an RGB file (OpenCV's
channel 2); grayscale and indexed PNGs are read as their values / indices. Unlike CIHP, persons are
separate files, so their maps may overlap.

As in the official training code: an image's persons are taken in plain sorted file-name order (string
order: ``x_10_10.png`` before ``x_10_2.png``), NN and KK only serve the consistency check; the value 255
is read as it is (person foreground without a part; see :mod:`uniparser_sdk.train.targets`).
"""
from __future__ import annotations

import os
import re
from typing import Iterable

import cv2
import numpy as np

from ..classes import MHP_V2_CLASSES
from .cihp import read_image, read_person_labels
from .synthetic import _checked_sample, _imwrite, _update_list

__all__ = ["MHPv2Dataset", "write_mhp"]

_ROOT_NAME = "LV-MHP-v2"
_ANNO_RE = re.compile(r"^(?P<id>.+)_(?P<n>\d+)_(?P<k>\d+)\.png$", re.IGNORECASE)
_IMAGE_EXTS = (".jpg", ".jpeg", ".png")


def _split_name(split: str) -> str:
    key = str(split).lower()
    if key not in ("train", "val"):
        raise ValueError(f"MHPv2 split must be 'train' or 'val', got {split!r}")
    return key


class MHPv2Dataset:
    """An LV-MHP-v2 split as a list of samples ``{"id", "image", "persons"}``.

    On construction the list file and both folders must exist (FileNotFoundError naming the path),
    and every listed id must have an image and at least one annotation. With ``strict=True``
    (default) an id's annotation files must agree: the same NN and KK exactly 1..NN (ValueError
    naming the files otherwise); ``strict=False`` uses whatever person files exist. Persons are in
    sorted file-name order either way (the official order; it matters to the official parsing loss).
    Label values must be < ``num_classes`` or 255 (kept: foreground without a part); other values
    raise ValueError (a label set that does not fit).
    ``classes`` defaults to the 59 MHPv2 classes (pass another tuple for data written with another
    label set, e.g. CIHP-labelled synthetic scenes).
    """

    def __init__(self, root: str, split: str = "train", strict: bool = True, classes=MHP_V2_CLASSES):
        split = _split_name(split)
        root = os.fspath(root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"MHPv2 root not found: {root}")
        if not os.path.isdir(os.path.join(root, "list")) and os.path.isdir(os.path.join(root, _ROOT_NAME, "list")):
            root = os.path.join(root, _ROOT_NAME)
        self.root, self.split = root, split
        self.classes = tuple(classes)
        self.num_classes = len(self.classes)
        self.list_path = os.path.join(root, "list", split + ".txt")
        if not os.path.isfile(self.list_path):
            raise FileNotFoundError(f"MHPv2 id list not found: {self.list_path}")
        self.image_dir = os.path.join(root, split, "images")
        self.anno_dir = os.path.join(root, split, "parsing_annos")
        for d in (self.image_dir, self.anno_dir):
            if not os.path.isdir(d):
                raise FileNotFoundError(f"MHPv2 folder not found: {d}")
        with open(self.list_path) as f:
            ids = [ln.strip() for ln in f if ln.strip()]
        self.ids = [os.path.splitext(i)[0] if i.lower().endswith(_IMAGE_EXTS) else i for i in ids]

        images = set(os.listdir(self.image_dir))
        annos: dict[str, list[tuple[int, int, str]]] = {}
        for name in os.listdir(self.anno_dir):
            m = _ANNO_RE.match(name)
            if m:
                annos.setdefault(m["id"], []).append((int(m["k"]), int(m["n"]), name))
        self._images, self._annos = {}, {}
        for sid in self.ids:
            img = next((sid + e for e in _IMAGE_EXTS if sid + e in images), None)
            if img is None:
                raise FileNotFoundError(f"MHPv2 image listed in {self.list_path} not found: "
                                        f"{os.path.join(self.image_dir, sid + '.jpg')}")
            files = sorted(annos.get(sid, []), key=lambda f: f[2])  # plain file-name order
            if not files:
                raise FileNotFoundError(f"MHPv2 annotations for {sid!r} not found: "
                                        f"{os.path.join(self.anno_dir, sid + '_<NN>_<KK>.png')}")
            if strict:
                ns = {n for _, n, _ in files}
                ks = sorted(k for k, _, _ in files)
                if len(ns) != 1 or ks != list(range(1, ns.pop() + 1)):
                    raise ValueError(f"MHPv2 annotations of {sid!r} in {self.anno_dir} are inconsistent "
                                     f"(need <id>_<NN>_<KK>.png with KK = 1..NN): "
                                     f"{[name for _, _, name in files]}; pass strict=False to use them anyway")
            self._images[sid] = os.path.join(self.image_dir, img)
            self._annos[sid] = [os.path.join(self.anno_dir, name) for _, _, name in files]

    def __len__(self) -> int:
        return len(self.ids)

    def annotation_paths(self, i: int) -> list[str]:
        return list(self._annos[self.ids[i]])

    def __getitem__(self, i: int) -> dict:
        sid = self.ids[i]
        image = read_image(self._images[sid])
        persons = read_person_labels(self._annos[sid], image.shape, self.num_classes, "MHPv2")
        return {"id": sid, "image": image, "persons": persons}

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"MHPv2Dataset(root={self.root!r}, split={self.split!r}, images={len(self)})"


def write_mhp(root: str, samples: Iterable[dict], split: str = "train", channels: int = 3,
              jpeg_quality: int = 95) -> list[str]:
    """Write samples in the LV-MHP-v2 layout under ``root`` (the ``LV-MHP-v2`` folder).

    Images go to ``<split>/images/<id>.jpg`` (JPEG, lossy), person k of N to
    ``<split>/parsing_annos/<id>_<NN>_<KK>.png`` and the id to ``list/<split>.txt`` (existing entries
    kept). ``channels=3`` writes the label in the red channel with green and blue zero (so a reader
    that takes the wrong channel fails loudly); ``channels=1`` writes grayscale. A sample must have at
    least one person (MHPv2 has no empty images). Returns the ids written.
    """
    split = _split_name(split)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    image_dir = os.path.join(root, split, "images")
    anno_dir = os.path.join(root, split, "parsing_annos")
    for d in (image_dir, anno_dir, os.path.join(root, "list")):
        os.makedirs(d, exist_ok=True)
    old: dict[str, list[str]] = {}
    for name in os.listdir(anno_dir):
        m = _ANNO_RE.match(name)
        if m:
            old.setdefault(m["id"], []).append(name)
    ids = []
    for sample in samples:
        sid, img, persons = _checked_sample(sample)
        n = len(persons)
        if n == 0:
            raise ValueError(f"sample {sid!r} has no persons; MHPv2 annotations need at least one")
        # stale files of an earlier write with another person count would be read back as well
        for name in old.pop(sid, []):
            os.remove(os.path.join(anno_dir, name))
        _imwrite(os.path.join(image_dir, sid + ".jpg"), img, (cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)))
        for k, p in enumerate(persons, start=1):
            p = np.asarray(p)
            if p.shape != img.shape[:2] or p.dtype != np.uint8:
                raise ValueError(f"sample {sid!r}: person {k} must be {img.shape[:2]} uint8, "
                                 f"got {p.dtype} {p.shape}")
            if channels == 3:
                out = np.zeros(p.shape + (3,), np.uint8)
                out[:, :, 2] = p  # OpenCV writes BGR: channel 2 is red, PIL's first channel
            else:
                out = p
            _imwrite(os.path.join(anno_dir, f"{sid}_{n:02d}_{k:02d}.png"), out)
        ids.append(sid)
    _update_list(os.path.join(root, "list", split + ".txt"), ids)
    return ids
