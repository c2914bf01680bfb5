"""COCO run-length encoding (both forms) and COCO-style results files. numpy only.

**RLE.** A binary HxW mask is read in column-major (Fortran) order as alternating runs of 0s and 1s,
starting with a (possibly empty) run of 0s (the COCO convention):

- uncompressed: ``{"size": [h, w], "counts": [r0, r1, ...]}`` (:func:`rle_encode`);
- compressed: ``{"size": [h, w], "counts": "<ascii>"}`` (:func:`rle_compress`), byte for byte what
  ``pycocotools.mask.encode`` writes: each count from the fourth on is stored as the difference to the
  count two places before, in little-endian groups of 5 bits, one character (``48 + bits``, bit 5 =
  "more") per group. About 2-3x smaller in JSON for person-sized masks.

:func:`rle_decode` reads both forms. Implemented here with vectorised numpy (no compiled
dependency); the tests check the strings against pycocotools.

**Results file** (:func:`coco_results` / :class:`CocoResultsWriter`): the list that
``pycocotools.coco.COCO.loadRes`` and ``COCOeval(iouType="segm")`` read -- one entry per person::

    {"image_id": 397133, "category_id": 1, "segmentation": {"size": [h, w], "counts": "..."},
     "score": 0.93, "bbox": [x, y, w, h], "area": 12345,
     "parts": [{"id": 2, "name": "hair", "segmentation": {...}}, ...]}

``category_id`` 1 = COCO's "person" (:data:`PERSON_CATEGORY`); ``parts`` (ignored by COCO tools) holds
one compressed RLE per part label, enough to rebuild the person's label map
(:func:`results_from_coco`).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence, Union

import numpy as np

from ...errors import UserInputError
from ...io_utils import Closing

__all__ = ["rle_encode", "rle_decode", "rle_compress", "rle_counts", "PERSON_CATEGORY", "coco_entries",
           "coco_results", "CocoResultsWriter", "results_from_coco", "coco_image_id"]

PathLike = Union[str, os.PathLike]

#: COCO's category for persons
PERSON_CATEGORY = {"id": 1, "name": "person", "supercategory": "person"}


class RLEError(UserInputError):
    """Malformed run-length encoding."""


# --------------------------------------------------------------------------------------------
# RLE codec
# --------------------------------------------------------------------------------------------

def rle_counts(mask: np.ndarray) -> np.ndarray:
    """Binary HxW mask (non-zero = set) -> int64 run lengths in COCO order (column-major, 0s first)."""
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"RLE expects a 2-D mask, got shape {m.shape}")
    flat = (m != 0).ravel(order="F")
    if flat.size == 0:
        return np.zeros(0, np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], change, [flat.size])))
    if flat[0]:
        counts = np.concatenate(([0], counts))
    return counts.astype(np.int64)


def rle_encode(mask: np.ndarray) -> dict:
    """Binary HxW mask -> uncompressed COCO RLE ``{"size": [h, w], "counts": [...]}`` (Python ints)."""
    m = np.asarray(mask)
    counts = rle_counts(m)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": counts.tolist()}


_MAX_GROUPS = 13  # 64-bit values need at most 13 groups of 5 bits


def _string_from_counts(counts: np.ndarray) -> str:
    """COCO's ``rleToString``, vectorised."""
    cnts = np.asarray(counts, np.int64)
    if cnts.size == 0:
        return ""
    x = cnts.copy()
    if x.size > 3:
        x[3:] = cnts[3:] - cnts[1:-2]
    groups = np.stack([(x >> (5 * k)) & 0x1F for k in range(_MAX_GROUPS)], axis=1)  # (N, G)
    rest = np.stack([x >> (5 * (k + 1)) for k in range(_MAX_GROUPS)], axis=1)
    more = np.where(groups & 0x10, rest != -1, rest != 0)
    n_chars = np.argmin(more, axis=1) + 1  # first group after which nothing more is needed
    k = np.arange(_MAX_GROUPS)[None, :]
    chars = groups | np.where(k < (n_chars[:, None] - 1), 0x20, 0)
    chars = (chars + 48).astype(np.uint8)
    return chars[k < n_chars[:, None]].tobytes().decode("ascii")


def _counts_from_string(s: Union[str, bytes]) -> np.ndarray:
    """COCO's ``rleFrString``, vectorised."""
    b = np.frombuffer(s.encode("ascii") if isinstance(s, str) else bytes(s), np.uint8).astype(np.int64)
    if b.size == 0:
        return np.zeros(0, np.int64)
    c = b - 48
    if (c < 0).any() or (c > 63).any():
        raise RLEError("compressed RLE counts hold characters outside '0'..'o'")
    more = (c & 0x20) != 0
    if more[-1]:
        raise RLEError("compressed RLE counts end in the middle of a number")
    ends = np.flatnonzero(~more)
    starts = np.concatenate(([0], ends[:-1] + 1))
    group = np.repeat(np.arange(ends.size), ends - starts + 1)
    pos = np.arange(b.size) - starts[group]
    if pos.max(initial=0) >= _MAX_GROUPS:
        raise RLEError("compressed RLE count too large")
    vals = np.zeros(ends.size, np.int64)
    np.add.at(vals, group, (c & 0x1F) << (5 * pos))
    negative = (c[ends] & 0x10) != 0
    width = 5 * (ends - starts + 1)
    vals = np.where(negative, vals - (np.int64(1) << width), vals)
    out = vals.copy()
    if out.size > 3:  # out[i] = vals[i] + out[i - 2] for i > 2
        odd = np.cumsum(np.concatenate(([vals[1]], vals[3::2])))
        even = np.cumsum(np.concatenate(([vals[2]], vals[4::2])))
        out[1::2] = odd
        out[2::2] = even
    return out


def rle_compress(mask_or_rle) -> dict:
    """Binary HxW mask, or an uncompressed RLE dict -> compressed COCO RLE ``{"size", "counts": str}``
    (identical to ``pycocotools.mask.encode`` with the bytes decoded as ASCII)."""
    if isinstance(mask_or_rle, Mapping):
        h, w, counts = _parse(mask_or_rle)
        return {"size": [h, w], "counts": _string_from_counts(counts)}
    m = np.asarray(mask_or_rle)
    counts = rle_counts(m)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": _string_from_counts(counts)}


def _parse(rle) -> tuple[int, int, np.ndarray]:
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise RLEError(f"not an RLE dict with 'size' [h, w] and 'counts': {rle!r:.200}") from exc
    if h < 0 or w < 0:
        raise RLEError(f"invalid RLE size {[h, w]}")
    if isinstance(counts, (str, bytes)):
        counts = _counts_from_string(counts)
    else:
        try:
            counts = np.asarray(counts, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise RLEError(f"RLE counts must be integers or a COCO string: {counts!r:.100}") from exc
    if (counts < 0).any():
        raise RLEError("RLE counts must be non-negative")
    if int(counts.sum()) != h * w:
        raise RLEError(f"RLE counts sum to {int(counts.sum())}, expected h*w = {h * w}")
    return h, w, counts


def rle_decode(rle: Mapping) -> np.ndarray:
    """COCO RLE, uncompressed (list counts) or compressed (string counts) -> HxW bool mask."""
    h, w, counts = _parse(rle)
    values = (np.arange(counts.size) % 2).astype(bool)
    return np.repeat(values, counts).reshape((h, w), order="F")


# --------------------------------------------------------------------------------------------
# COCO results files
# --------------------------------------------------------------------------------------------

def coco_image_id(name) -> Union[int, str]:
    """COCO image ids are ints (``000000397133.jpg`` -> 397133): a name of digits becomes that int,
    anything else stays a string."""
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        return int(name)
    s = Path(str(name)).stem
    return int(s) if s.isdigit() else s


def coco_entries(result, image_id, category_id: int = PERSON_CATEGORY["id"], parts: bool = True) -> list[dict]:
    """The COCO results entries of one :class:`~uniparser_sdk.results.ParseResult` (one per person,
    score order)."""
    out = []
    for p in result.persons:
        seg = rle_compress(p.mask)
        bbox = p.bbox
        entry = {"image_id": image_id, "category_id": int(category_id), "segmentation": seg,
                 "score": float(p.score),
                 "bbox": ([bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1]] if bbox else [0, 0, 0, 0]),
                 "area": p.area}
        if parts:
            entry["parts"] = [{"id": i, "name": result.classes[i], "segmentation": rle_compress(p.parts == i)}
                              for i in p.part_ids]
        out.append(entry)
    return out


def coco_results(results: Iterable, image_ids: Sequence, category_id: int = PERSON_CATEGORY["id"],
                 parts: bool = True) -> list[dict]:
    """COCO results list for ``results`` (ParseResults) with their ``image_ids`` (same order)."""
    results, image_ids = list(results), list(image_ids)
    if len(results) != len(image_ids):
        raise ValueError(f"{len(results)} results but {len(image_ids)} image ids")
    out = []
    for res, iid in zip(results, image_ids):
        out.extend(coco_entries(res, iid, category_id, parts))
    return out


class CocoResultsWriter(Closing):
    """Collects COCO results entries and writes them as one JSON list, atomically, on :meth:`close`
    (entries are small: compressed RLE strings). Context manager; closing twice is a no-op."""

    def __init__(self, path: PathLike, parts: bool = True, category_id: int = PERSON_CATEGORY["id"]):
        self.path = Path(path)
        self.parts, self.category_id = bool(parts), int(category_id)
        self.entries: list[dict] = []
        self.closed = False

    def add(self, image_id, result) -> None:
        if self.closed:
            raise ValueError("CocoResultsWriter is closed")
        self.entries.extend(coco_entries(result, image_id, self.category_id, self.parts))

    def close(self) -> Path:
        from ...io_utils import atomic_write_text

        if not self.closed:
            atomic_write_text(self.path, json.dumps(self.entries, separators=(",", ":")) + "\n")
            self.closed = True
        return self.path




def results_from_coco(entries, classes) -> dict:
    """COCO results (a list, or the path of a results JSON) with ``parts`` -> ``{image_id: ParseResult}``
    (inverse of :func:`coco_results`; ``classes``: names or their number)."""
    from ..result import ParseResult, Person

    if isinstance(entries, (str, os.PathLike)):
        with open(entries, encoding="utf-8") as f:
            entries = json.load(f)
    by_image: dict = {}
    for i, e in enumerate(entries):
        if "parts" not in e:
            raise RLEError(f"entry {i} has no 'parts'; write the results with parts=True")
        h, w = (int(v) for v in e["segmentation"]["size"])
        parts = np.zeros((h, w), np.uint8)
        for part in e["parts"]:
            parts[rle_decode(part["segmentation"])] = int(part["id"])
        by_image.setdefault(e["image_id"], ((h, w), []))[1].append(Person(e["score"], parts))
    return {iid: ParseResult(persons, shape, classes) for iid, (shape, persons) in by_image.items()}
