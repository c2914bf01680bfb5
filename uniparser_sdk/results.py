"""Results objects returned by every backend, their visualisation and file writers.

:class:`ParseResult` holds one :class:`Person` per detected human, sorted by score (descending).
Each person carries a part-label map at the ORIGINAL image size (0 = background, 1..C-1 = the
classes of the model's dataset). Persons may overlap: a pixel can carry a label for several persons.
Where a single map is needed (:attr:`ParseResult.semantic`, :attr:`ParseResult.instance_map`, the
CIHP writer, the overlay), the highest-scoring person with a non-zero label wins the pixel (on equal
scores, the earlier person in the list).

Writers (all atomic, see :mod:`uniparser_sdk.io_utils`):

- :meth:`ParseResult.write_mhp`: MHPv2 layout, one single-channel PNG per person,
  ``<id>_<NN>_<KK>.png`` (NN persons, KK = 1..NN, both two-digit).
- :meth:`ParseResult.write_cihp`: CIHP layout, ``Category_ids/<id>.png`` (semantic map) and
  ``Human_ids/<id>.png`` (instance map, 0 background, person i -> i + 1).
- :meth:`ParseResult.write_json`: a summary with masks as COCO-style uncompressed RLE
  (:func:`rle_encode` / :func:`rle_decode`).

numpy + OpenCV only; never imports torch.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import cv2
import numpy as np

from .classes import classes_for, palette
from .io_utils import atomic_imwrite, atomic_write_text

PathLike = Union[str, os.PathLike]

__all__ = ["Person", "ParseResult", "rle_encode", "rle_decode"]


# --------------------------------------------------------------------------------------------
# RLE (COCO uncompressed convention)
# --------------------------------------------------------------------------------------------

def rle_encode(mask: np.ndarray) -> dict:
    """Binary HxW mask -> ``{"size": [h, w], "counts": [...]}`` (COCO uncompressed RLE).

    Pixels are read in column-major (Fortran) order; ``counts`` alternates runs of zeros and ones
    and always starts with a run of zeros (0 if the first pixel is set). Non-zero values count as
    set. Counts are plain Python ints (JSON-serialisable).
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"rle_encode expects a 2-D mask, got shape {m.shape}")
    h, w = m.shape
    flat = (m != 0).ravel(order="F")
    if flat.size == 0:
        return {"size": [int(h), int(w)], "counts": []}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds)
    if flat[0]:
        counts = np.concatenate(([0], counts))
    return {"size": [int(h), int(w)], "counts": counts.tolist()}


def rle_decode(rle: dict) -> np.ndarray:
    """COCO uncompressed RLE -> HxW bool mask (inverse of :func:`rle_encode`)."""
    try:
        h, w = (int(v) for v in rle["size"])
        counts = rle["counts"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not an RLE dict with 'size' [h, w] and 'counts': {rle!r:.200}") from exc
    if isinstance(counts, (str, bytes)):
        raise ValueError("compressed (string) RLE counts are not supported; "
                         "decode them with pycocotools or pass uncompressed counts")
    counts = np.asarray(counts, dtype=np.int64).reshape(-1)
    if h < 0 or w < 0:
        raise ValueError(f"invalid RLE size {[h, w]}")
    if (counts < 0).any():
        raise ValueError("RLE counts must be non-negative")
    if int(counts.sum()) != h * w:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected h*w = {h * w}")
    values = (np.arange(counts.size) % 2).astype(bool)
    flat = np.repeat(values, counts)
    return flat.reshape((h, w), order="F")


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

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _person_colors(n: int) -> np.ndarray:
    """n saturated, bright, mutually distinct BGR colours (golden-ratio hue steps)."""
    if n <= 0:
        return np.zeros((0, 3), dtype=np.uint8)
    hues = ((np.arange(n) * 0.618033988749895 + 0.05) % 1.0 * 180).astype(np.uint8)
    hsv = np.stack([hues, np.full(n, 255, np.uint8), np.full(n, 255, np.uint8)], axis=1)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]


def _text_color(bgr) -> tuple[int, int, int]:
    b, g, r = (int(v) for v in bgr)
    return (0, 0, 0) if 0.114 * b + 0.587 * g + 0.299 * r > 140 else (255, 255, 255)


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
        """Inverse of ``to_dict(include_parts=True)``."""
        shape = tuple(d["image_shape"])
        persons = []
        for i, pd in enumerate(d.get("persons", [])):
            if "parts" not in pd:
                raise ValueError(f"person {i} has no per-part masks; write it with include_parts=True")
            parts = np.zeros(shape, dtype=np.uint8)
            for part in pd["parts"]:
                m = rle_decode(part["mask"])
                if m.shape != shape:
                    raise ValueError(f"person {i}: part mask shape {m.shape} != image_shape {shape}")
                parts[m] = int(part["id"])
            persons.append(Person(pd["score"], parts))
        return cls(persons, shape, tuple(d["classes"]), d.get("timings") or {}, d.get("source"))

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
        sem = np.zeros(self.image_shape, dtype=np.uint8)
        inst = np.zeros(self.image_shape, dtype=np.int32)
        for i, p in enumerate(self.persons):  # descending score: the first claim wins
            take = (inst == 0) & (p.parts > 0)
            sem[take] = p.parts[take]
            inst[take] = i + 1
        return sem, inst

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

    def to_dict(self, include_parts: bool = False) -> dict:
        """JSON-ready summary. Per person: score, bbox (x0, y0, x1, y1; exclusive end) or None,
        area, part ids and names, mask as COCO uncompressed RLE; with ``include_parts`` also one
        RLE mask per part (enough to rebuild the label maps with :meth:`from_dict`)."""
        persons = []
        for p in self.persons:
            ids = p.part_ids
            bbox = p.bbox
            item = {
                "score": p.score,
                "bbox": list(bbox) if bbox is not None else None,
                "area": p.area,
                "part_ids": ids,
                "part_names": [self.classes[i] for i in ids],
                "mask": rle_encode(p.mask),
            }
            if include_parts:
                item["parts"] = [{"id": i, "name": self.classes[i], "mask": rle_encode(p.parts == i)}
                                 for i in ids]
            persons.append(item)
        return {
            "source": self.source,
            "image_shape": list(self.image_shape),
            "num_persons": self.num_persons,
            "classes": list(self.classes),
            "timings": dict(self.timings),
            "persons": persons,
        }

    def to_json(self, indent: Optional[int] = None, include_parts: bool = False) -> str:
        return json.dumps(self.to_dict(include_parts=include_parts), indent=indent)

    def write_json(self, path: PathLike, indent: Optional[int] = None,
                   include_parts: bool = False) -> Path:
        """Write :meth:`to_json` atomically; returns the path."""
        return atomic_write_text(path, self.to_json(indent=indent, include_parts=include_parts) + "\n")

    def write_mhp(self, out_dir: PathLike, image_id: str) -> list[Path]:
        """MHPv2-style annotations: ``<out_dir>/<id>_<NN>_<KK>.png`` per person (KK = 1..NN, in
        score order), single-channel uint8 label PNGs. Writes nothing for zero persons. Returns the
        paths written."""
        out_dir = Path(out_dir)
        n = self.num_persons
        paths = []
        for k, p in enumerate(self.persons, start=1):
            paths.append(atomic_imwrite(out_dir / f"{image_id}_{n:02d}_{k:02d}.png", p.parts))
        return paths

    def write_cihp(self, out_root: PathLike, image_id: str) -> tuple[Path, Path]:
        """CIHP-style maps: ``<out_root>/Category_ids/<id>.png`` (semantic) and
        ``<out_root>/Human_ids/<id>.png`` (instance map). Returns both paths.
        Raises ValueError (writing nothing) when there are more than 255 persons."""
        if self.num_persons > 255:
            raise ValueError(f"{self.num_persons} persons do not fit an 8-bit Human_ids map (max 255)")
        sem, inst = self._composite()
        root = Path(out_root)
        cat = atomic_imwrite(root / "Category_ids" / f"{image_id}.png", sem)
        hum = atomic_imwrite(root / "Human_ids" / f"{image_id}.png", inst.astype(np.uint8))
        return cat, hum

    # ---- visualisation -----------------------------------------------------------------------

    def draw(self, image_bgr: np.ndarray, alpha: float = 0.55, legend: bool = True,
             boxes: bool = True) -> np.ndarray:
        """Overlay on a copy of ``image_bgr`` (HxW, HxWx3 or HxWx4 uint8 at the original size).

        - every labelled pixel of :attr:`semantic` is blended with its class colour:
          ``round((1 - alpha) * image + alpha * colour)``; other pixels are left untouched;
        - each person's outline is drawn in its own colour (distinct per person);
        - ``boxes``: the person's bounding box and a tag with its score, in the same colour;
        - ``legend``: a panel in the top-right corner listing the parts present (colour + name).
        """
        img = np.asarray(image_bgr)
        if img.dtype != np.uint8:
            raise TypeError(f"draw expects a uint8 image, got {img.dtype}")
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.ndim == 3 and img.shape[2] == 1:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        elif img.ndim == 3 and img.shape[2] == 4:
            img = np.ascontiguousarray(img[:, :, :3])
        elif not (img.ndim == 3 and img.shape[2] == 3):
            raise ValueError(f"draw expects an HxW, HxWx3 or HxWx4 image, got shape {img.shape}")
        if img.shape[:2] != self.image_shape:
            raise ValueError(f"image size {img.shape[:2]} != result image_shape {self.image_shape}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        out = img.copy()
        H, W = self.image_shape
        if H == 0 or W == 0:
            return out
        colors = palette(len(self.classes))
        sem = self.semantic
        fg = sem > 0
        if fg.any():
            blend = (1.0 - alpha) * img[fg].astype(np.float32) + alpha * colors[sem[fg]].astype(np.float32)
            out[fg] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)

        thick = max(1, int(round(min(H, W) / 500)))
        font_scale = float(np.clip(min(H, W) / 900.0, 0.35, 1.0))
        font_thick = 1 if font_scale < 0.8 else 2
        pcols = _person_colors(self.num_persons)
        # lowest score first, so the best person's outline ends up on top
        for i in range(self.num_persons - 1, -1, -1):
            p = self.persons[i]
            bbox = p.bbox
            if bbox is None:
                continue
            col = tuple(int(c) for c in pcols[i])
            contours, _ = cv2.findContours(p.mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, contours, -1, col, thick, cv2.LINE_AA)
            if boxes:
                x0, y0, x1, y1 = bbox
                cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), col, thick)
                tag = f"#{i + 1} {p.score:.2f}"
                (tw, th), base = cv2.getTextSize(tag, _FONT, font_scale, font_thick)
                ty0 = y0 - th - base - 2
                if ty0 < 0:  # no room above the box: put the tag inside it
                    ty0 = y0
                cv2.rectangle(out, (x0, ty0), (x0 + tw + 2, ty0 + th + base + 2), col, -1)
                cv2.putText(out, tag, (x0 + 1, ty0 + th + 1), _FONT, font_scale, _text_color(col),
                            font_thick, cv2.LINE_AA)
        if legend and fg.any():
            self._draw_legend(out, _present_labels(sem), colors, font_scale, font_thick)
        return out

    def _draw_legend(self, out: np.ndarray, ids: list[int], colors: np.ndarray,
                     font_scale: float, font_thick: int) -> None:
        H, W = out.shape[:2]
        (_, th), base = cv2.getTextSize("Hg", _FONT, font_scale, font_thick)
        line = th + base + 4
        sw = th + base  # swatch side
        pad = 4
        max_lines = max(1, (H - 2 * pad) // line)
        items: list[tuple[Optional[int], str]] = [(c, self.classes[c]) for c in ids]
        if len(items) > max_lines:
            keep = max_lines - 1
            items = items[:keep] + [(None, f"+{len(ids) - keep} more")]
        text_w = max(cv2.getTextSize(name, _FONT, font_scale, font_thick)[0][0] for _, name in items)
        pw = pad + sw + pad + text_w + pad
        ph = pad + len(items) * line + pad - 4
        x0, y0 = max(0, W - pw - pad), min(pad, H - 1)
        x1, y1 = min(W, x0 + pw), min(H, y0 + ph)
        # darkened panel behind the legend for readability
        out[y0:y1, x0:x1] = (out[y0:y1, x0:x1].astype(np.uint16) * 2 // 5).astype(np.uint8)
        for k, (cid, name) in enumerate(items):
            ly = y0 + pad + k * line
            tx = x0 + pad
            if cid is not None:
                cv2.rectangle(out, (x0 + pad, ly), (x0 + pad + sw - 1, ly + sw - 1),
                              tuple(int(v) for v in colors[cid]), -1)
                tx = x0 + pad + sw + pad
            cv2.putText(out, name, (tx, ly + th), _FONT, font_scale, (255, 255, 255), font_thick,
                        cv2.LINE_AA)

    def save_overlay(self, path: PathLike, image: np.ndarray, **draw_kwargs) -> Path:
        """:meth:`draw` on ``image`` and write the overlay atomically; returns the path."""
        return atomic_imwrite(path, self.draw(image, **draw_kwargs))

    def __repr__(self) -> str:
        src = f", source={self.source!r}" if self.source else ""
        return (f"ParseResult(num_persons={self.num_persons}, image_shape={self.image_shape}, "
                f"classes=<{len(self.classes)}>, scores={[round(p.score, 4) for p in self.persons]}"
                f"{src})")
