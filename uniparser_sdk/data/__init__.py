"""Datasets and training transforms (numpy + OpenCV only; no torch import).

Every dataset is indexable, has ``__len__``, ``classes`` and ``num_classes``, and returns samples::

    {"id": str, "image": HxWx3 uint8 BGR, "persons": [HxW uint8 part-label map per person (0 = bg)]}

* :class:`SyntheticScenes` - procedural multi-person scenes with CIHP (or MHPv2) labels, by seed;
* :class:`CIHPDataset` / :func:`write_cihp` - the CIHP layout;
* :class:`MHPv2Dataset` / :func:`write_mhp` - the LV-MHP-v2 layout;
* transforms: :class:`RandomResize`, :class:`RandomHFlip`, :class:`Normalize`,
  :class:`PadToDivisor`, :class:`Compose`, :func:`train_transforms`, :func:`test_transforms`.
"""
from .cihp import CIHPDataset, read_image, read_label_png
from .mhp import MHPv2Dataset, write_mhp
from .synthetic import CIHP_TO_MHP, SyntheticScenes, make_scene, overlay, write_cihp
from .transforms import (Compose, Normalize, PadToDivisor, RandomHFlip, RandomResize, Resize, resize_sample,
                         test_transforms, train_transforms)

__all__ = [
    "SyntheticScenes", "make_scene", "write_cihp", "overlay", "CIHP_TO_MHP",
    "CIHPDataset", "MHPv2Dataset", "write_mhp", "read_label_png", "read_image",
    "Compose", "RandomResize", "RandomHFlip", "Normalize", "PadToDivisor", "Resize", "resize_sample",
    "train_transforms", "test_transforms",
]
