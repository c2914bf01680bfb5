"""The result objects every backend returns: :class:`ParseResult` and :class:`Person`.

:class:`ParseResult` holds one :class:`Person` per detected human, sorted by score (descending).
Each person carries a part-label map at the ORIGINAL image size (0 = background, 1..C-1 = the
classes of the model's dataset). Persons may overlap: a pixel can carry a label for several persons.
Where a single map is needed (:attr:`ParseResult.semantic`, :attr:`ParseResult.instance_map`, the
CIHP writer, the overlay), the highest-scoring person with a non-zero label wins the pixel (on equal
scores, the earlier person in the list): :func:`~uniparser_sdk.results.formats.cihp.compose`.

Writers and readers live in :mod:`uniparser_sdk.results.formats`; drawing in
:mod:`uniparser_sdk.results.draw`. numpy + OpenCV only; never imports torch.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np

from ..classes import classes_for
from ..io_utils import atomic_imwrite, atomic_write_text
from .draw import draw_result
from .formats.cihp import compose, write_cihp
from .formats.coco import coco_entries
from .formats.json import result_from_dict, result_to_dict
from .formats.mhp import write_mhp

PathLike = Union[str, os.PathLike]

__all__ = ["Person", "ParseResult"]


# --------------------------------------------------------------------------------------------
# Person
# --------------------------------------------------------------------------------------------

def _as_label_map(parts, what: str = "parts") -> np.ndarray:
    arr = np.asarray(parts)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be an HxW label map, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{what} must be an integer label map, got dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"{what} labels must lie in 0..255, got {arr.min()}..{arr.max()}")
    return arr.astype(np.uint8)


@dataclass(eq=False)
class Person:
    """One detected human: a score and an HxW uint8 part-label map at the original image size."""

    score: float
    parts: np.ndarray

    def __post_init__(self):
        self.score = float(self.score)
        if math.isnan(self.score):
            raise ValueError("person score is NaN")
        self.parts = _as_label_map(self.parts)

    @property
    def mask(self) -> np.ndarray:
        """HxW bool: pixels with any part label."""
        return self.parts > 0

    @property
    def area(self) -> int:
        """Number of labelled pixels."""
        return int(np.count_nonzero(self.parts))

    @property
    def bbox(self) -> Optional[tuple[int, int, int, int]]:
        """(x0, y0, x1, y1) of the labelled pixels, x1/y1 exclusive; None for an empty person."""
        m = self.mask
        rows = np.flatnonzero(m.any(axis=1))
        if rows.size == 0:
            return None
        cols = np.flatnonzero(m.any(axis=0))
        return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1

    @property
    def part_ids(self) -> list[int]:
        """Sorted non-zero labels present in :attr:`parts`."""
        return _present_labels(self.parts)

    def __eq__(self, other):
        if not isinstance(other, Person):
            return NotImplemented
        return self.score == other.score and np.array_equal(self.parts, other.parts)

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        h, w = self.parts.shape
        return (f"Person(score={self.score:.4f}, parts=<{h}x{w} uint8>, bbox={self.bbox}, "
                f"part_ids={self.part_ids})")


# --------------------------------------------------------------------------------------------
# ParseResult
# --------------------------------------------------------------------------------------------

def _present_labels(labels: np.ndarray) -> list[int]:
    hist = np.bincount(labels.ravel(), minlength=256)
    return [int(i) for i in np.flatnonzero(hist[1:]) + 1]


@dataclass
class ParseResult:
    """Multi-human parsing result of one image.

    ``persons`` are sorted by score, descending (enforced; the sort is stable). ``image_shape`` is
    the original (H, W); every person's ``parts`` must have that shape. ``classes`` are the class
    names, index 0 = background (an int is accepted and mapped with :func:`classes_for`).
    ``timings`` holds milliseconds per stage (e.g. preprocess, network, decode, postprocess).
    """

    persons: list[Person]
    image_shape: tuple[int, int]
    classes: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    source: Optional[str] = None

    def __post_init__(self):
        if isinstance(self.classes, (int, np.integer)):
            self.classes = classes_for(int(self.classes))
        self.classes = tuple(str(c) for c in self.classes)
        if len(self.classes) < 1:
            raise ValueError("classes must contain at least the background class")
        shape = tuple(int(v) for v in tuple(self.image_shape)[:2])
        if len(shape) != 2 or min(shape) < 0:
            raise ValueError(f"image_shape must be (H, W), got {self.image_shape!r}")
        self.image_shape = shape
        persons = [p if isinstance(p, Person) else Person(*p) for p in self.persons]
        for i, p in enumerate(persons):
            if p.parts.shape != shape:
                raise ValueError(f"person {i}: parts shape {p.parts.shape} != image_shape {shape}")
            if p.parts.size and int(p.parts.max()) >= len(self.classes):
                raise ValueError(f"person {i}: label {int(p.parts.max())} out of range for "
                                 f"{len(self.classes)} classes")
        self.persons = sorted(persons, key=lambda p: -p.score)
        self.timings = {str(k): float(v) for k, v in dict(self.timings or {}).items()}
        if self.source is not None:
            self.source = str(self.source)

    # ---- construction ------------------------------------------------------------------------

    @classmethod
    def from_label_maps(cls, scores: Sequence[float], maps, classes,
                        image_shape: Optional[tuple[int, int]] = None,
                        timings: Optional[dict] = None, source: Optional[str] = None) -> "ParseResult":
        """Build from per-person scores and label maps (an NxHxW array or a list of HxW arrays).

        ``classes`` is a tuple of names or the number of classes. ``image_shape`` is required only
        when ``maps`` is an empty list.
        """
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if isinstance(maps, np.ndarray):
            if maps.ndim != 3:
                raise ValueError(f"maps must be NxHxW, got shape {maps.shape}")
            if image_shape is None:
                image_shape = maps.shape[1:]
            maps = list(maps)
        else:
            maps = list(maps)
        if len(maps) != scores.size:
            raise ValueError(f"{scores.size} scores but {len(maps)} label maps")
        if image_shape is None:
            if not maps:
                raise ValueError("image_shape is required when there are no label maps")
            image_shape = np.asarray(maps[0]).shape[:2]
        persons = [Person(float(s), m) for s, m in zip(scores, maps)]
        return cls(persons, tuple(image_shape), classes, dict(timings or {}), source)

    @classmethod
    def from_dict(cls, d: dict) -> "ParseResult":
        """Inverse of ``to_dict(include_parts=True)`` (masks in either COCO RLE form)."""
        return result_from_dict(d)

    # ---- container protocol ------------------------------------------------------------------

    @property
    def num_persons(self) -> int:
        return len(self.persons)

    def __len__(self) -> int:
        return len(self.persons)

    def __iter__(self) -> Iterator[Person]:
        return iter(self.persons)

    def __getitem__(self, i) -> Person:
        return self.persons[i]

    # ---- composite maps ----------------------------------------------------------------------

    def _composite(self) -> tuple[np.ndarray, np.ndarray]:
        return compose([p.parts for p in self.persons], self.image_shape)

    @property
    def part_ids(self) -> list[int]:
        """Sorted non-zero labels visible in :attr:`semantic` (the parts the legend lists)."""
        return _present_labels(self.semantic)

    @property
    def semantic(self) -> np.ndarray:
        """HxW uint8 part labels; the highest-scoring person labelling a pixel wins it."""
        return self._composite()[0]

    @property
    def instance_map(self) -> np.ndarray:
        """HxW int32: 0 background, i + 1 where person i (score order) wins the pixel."""
        return self._composite()[1]

    # ---- serialisation -----------------------------------------------------------------------

    def to_dict(self, include_parts: bool = False, compressed: bool = True) -> dict:
        """JSON-ready summary. Per person: score, bbox (x0, y0, x1, y1; exclusive end) or None,
        area, part ids and names, mask as COCO RLE (compressed string counts, what pycocotools
        writes; ``compressed=False``: uncompressed list counts); with ``include_parts`` also one RLE
        mask per part (enough to rebuild the label maps with :meth:`from_dict`)."""
        return result_to_dict(self, include_parts=include_parts, compressed=compressed)

    def to_json(self, indent: Optional[int] = None, include_parts: bool = False, compressed: bool = True) -> str:
        return json.dumps(self.to_dict(include_parts=include_parts, compressed=compressed), indent=indent)

    def write_json(self, path: PathLike, indent: Optional[int] = None,
                   include_parts: bool = False, compressed: bool = True) -> Path:
        """Write :meth:`to_json` atomically; returns the path."""
        return atomic_write_text(path, self.to_json(indent=indent, include_parts=include_parts,
                                                    compressed=compressed) + "\n")

    def to_coco(self, image_id, parts: bool = True) -> list[dict]:
        """COCO results entries (one per person, category 1 "person", compressed RLE segmentation,
        score, bbox [x, y, w, h], area, and with ``parts`` one RLE per part); see
        :mod:`uniparser_sdk.results.formats.coco`."""
        return coco_entries(self, image_id, parts=parts)

    def write_mhp(self, out_dir: PathLike, image_id: str) -> list[Path]:
        """MHPv2-style annotations: ``<out_dir>/<id>_<NN>_<KK>.png`` per person (KK = 1..NN, in
        score order), single-channel uint8 label PNGs. Writes nothing for zero persons. Returns the
        paths written."""
        return write_mhp(self, out_dir, image_id)

    def write_cihp(self, out_root: PathLike, image_id: str) -> tuple[Path, Path]:
        """CIHP-style maps: ``<out_root>/Category_ids/<id>.png`` (semantic) and
        ``<out_root>/Human_ids/<id>.png`` (instance map), composed by the one rule of
        :func:`~uniparser_sdk.results.formats.cihp.compose` (highest score wins). Returns both paths.
        Raises ValueError (writing nothing) when there are more than 255 persons."""
        return write_cihp(self, out_root, image_id)

    # ---- visualisation -----------------------------------------------------------------------

    def draw(self, image_bgr: np.ndarray, alpha: float = 0.55, legend=True, boxes: bool = True) -> np.ndarray:
        """Overlay on a copy of ``image_bgr`` (HxW, HxWx3 or HxWx4 uint8 at the original size).

        - every labelled pixel of :attr:`semantic` is blended with its class colour:
          ``round((1 - alpha) * image + alpha * colour)``; other pixels are left untouched;
        - each person's outline is drawn in its own colour (distinct per person);
        - ``boxes``: the person's bounding box and a tag with its score, in the same colour;
        - ``legend`` (the parts present, colour + name): ``True``/``"auto"`` at the free spot nearest
          the top-right corner that hides no person, else in a panel added to the right of the image
          (the output is then wider); ``"outside"``: always that panel, sized from all class names
          (constant output size, for videos); ``"inside"``: in the image even over persons; ``False``.
        """
        return draw_result(self, image_bgr, alpha=alpha, legend=legend, boxes=boxes)

    def save_overlay(self, path: PathLike, image: np.ndarray, **draw_kwargs) -> Path:
        """:meth:`draw` on ``image`` and write the overlay atomically; returns the path."""
        return atomic_imwrite(path, self.draw(image, **draw_kwargs))

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        return (f"ParseResult(num_persons={self.num_persons}, image_shape={self.image_shape}, "
                f"classes=<{len(self.classes)}>, scores={[round(p.score, 4) for p in self.persons]}"
                f"{src})")
