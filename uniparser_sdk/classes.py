"""Class names, left/right pairs and colour palettes of the datasets UniParser is trained on.

Index 0 is always background. The category kernels of the model (``seg_kernels``) cover classes
1..N-1, so a model for a dataset with N classes has N-1 kernels.
"""
from __future__ import annotations

import cv2
import numpy as np

MHP_V2_CLASSES = (
    "background", "cap/hat", "helmet", "face", "hair", "left-arm", "right-arm", "left-hand",
    "right-hand", "protector", "bikini/bra", "jacket/windbreaker/hoodie", "t-shirt", "polo-shirt",
    "sweater", "singlet", "torso-skin", "pants", "shorts/swim-shorts", "skirt", "stockings", "socks",
    "left-boot", "right-boot", "left-shoe", "right-shoe", "left-highheel", "right-highheel",
    "left-sandal", "right-sandal", "left-leg", "right-leg", "left-foot", "right-foot", "coat",
    "dress", "robe", "jumpsuit", "other-full-body-clothes", "headwear", "backpack", "ball", "bats",
    "belt", "bottle", "carrybag", "cases", "sunglasses", "eyewear", "glove", "scarf", "umbrella",
    "wallet/purse", "watch", "wristband", "tie", "other-accessary", "other-upper-body-clothes",
    "other-lower-body-clothes",
)

CIHP_CLASSES = (
    "background", "hat", "hair", "glove", "sunglasses", "upper-clothes", "dress", "coat", "socks",
    "pants", "torso-skin", "scarf", "skirt", "face", "left-arm", "right-arm", "left-leg",
    "right-leg", "left-shoe", "right-shoe",
)

DATASETS = {"mhp": MHP_V2_CLASSES, "cihp": CIHP_CLASSES}


def flip_pairs(classes) -> list[tuple[int, int]]:
    """(left, right) index pairs found by name: 'left-x' with 'right-x'."""
    index = {name: i for i, name in enumerate(classes)}
    pairs = []
    for name, i in index.items():
        if name.startswith("left-"):
            j = index.get("right-" + name[len("left-"):])
            if j is not None:
                pairs.append((i, j))
    return pairs


def flip_permutation(classes) -> np.ndarray:
    """Label lookup table that swaps left and right classes (for horizontal flips)."""
    perm = np.arange(len(classes), dtype=np.uint8)
    for a, b in flip_pairs(classes):
        perm[a], perm[b] = b, a
    return perm


def classes_for(num_classes: int) -> tuple[str, ...]:
    """Class names for a model with ``num_classes`` classes (background included)."""
    for names in DATASETS.values():
        if len(names) == num_classes:
            return names
    return ("background",) + tuple(f"class-{i}" for i in range(1, num_classes))


def palette(n: int, seed: int = 7) -> np.ndarray:
    """n distinct BGR colours, background (0) black. Deterministic."""
    cols = np.zeros((n, 3), dtype=np.uint8)
    # golden-ratio hues with alternating value/saturation keep neighbours distinct
    for i in range(1, n):
        h = (i * 0.618033988749895 + seed * 0.1) % 1.0
        s = 0.65 + 0.35 * ((i * 7) % 3) / 2
        v = 0.75 + 0.25 * ((i * 5) % 2)
        hsv = np.uint8([[[int(h * 180), int(s * 255), int(v * 255)]]])
        cols[i] = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return cols
