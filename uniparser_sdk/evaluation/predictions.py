"""Folders of prediction PNGs: the format ``uniparser-eval --predictions DIR`` reads.

Two layouts are accepted (numpy + OpenCV only). Label PNGs are read with
:func:`uniparser_sdk.data.read_label_png` (grayscale values, palette indices, or the red channel of an
RGB file -- the MHPv2 convention); labels are class indices of the dataset, 0 = background.

**MHPv2 style** (what :meth:`ParseResult.write_mhp <uniparser_sdk.results.ParseResult.write_mhp>` and
:class:`PredictionWriter` write)::

    DIR/<id>_<NN>_<KK>.png      one label map per predicted person (NN persons, KK = 1..NN)
    DIR/scores.json             {"<id>_<NN>_<KK>": score, ...}    (optional)

The files may also sit in ``DIR/parsing_annos/``. All files of one image must carry the same NN (files
left over from an earlier run with another person count are an error, not silently double counted);
KK only orders the persons (it need not be contiguous). An image with no file has no predicted person.
Keys of ``scores.json`` are the file stems (a ``.png`` suffix is accepted too).

**CIHP style** (what :meth:`ParseResult.write_cihp <uniparser_sdk.results.ParseResult.write_cihp>` and
``PredictionWriter(style="cihp")`` write)::

    DIR/Category_ids/<id>.png   semantic part map (used as is for the semantic mIoU)
    DIR/Human_ids/<id>.png      instance map: 0 background, k = 1..N person k
    DIR/scores.json             {"<id>": [score of person 1, score of person 2, ...], ...}  (optional)

Person k's label map is ``Category_ids`` where ``Human_ids == k``; an instance with no non-zero part
label is skipped. The scores of an image may also be given as ``{"1": s1, "2": s2, ...}``.

**Scores.** Without a scores file every person scores 1.0 (:data:`DEFAULT_SCORE`); persons of equal
score keep their file order (KK, resp. the Human_ids index) and images the dataset order. When a
scores file exists it must give a finite score for every person found (an error names the first one
missing), so a stale or truncated scores file cannot go unnoticed.

Semantic map for mIoU: CIHP style uses ``Category_ids``; MHPv2 style composes the persons in
descending score order, the first person labelling a pixel wins it (the one composer,
:func:`uniparser_sdk.results.formats.cihp.compose`, which also makes
:attr:`ParseResult.semantic <uniparser_sdk.results.ParseResult.semantic>` and the CIHP files).

Usage::

    folder = PredictionFolder("preds/")                       # style detected
    pred = folder.load("img_0001", shape=(H, W), num_classes=20)
    evaluator.add(pred.persons, gt_persons, pred_semantic=pred.semantic)

    with PredictionWriter("preds/") as w:                     # writing them from ParseResults
        for image_id, result in results:
            w.add(image_id, result)                           # scores.json written on close
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

from ..data.cihp import read_label_png, split_persons
from ..results.formats.cihp import compose
from ..io_utils import atomic_write_text
from ..errors import UserInputError

__all__ = ["PredictionFolder", "PredictionWriter", "ImagePrediction", "PredictionFormatError",
           "detect_style", "read_scores", "SCORES_FILE", "DEFAULT_SCORE", "STYLES"]

PathLike = Union[str, os.PathLike]

SCORES_FILE = "scores.json"
DEFAULT_SCORE = 1.0
STYLES = ("mhp", "cihp")

_MHP_RE = re.compile(r"^(?P<id>.+)_(?P<n>\d+)_(?P<k>\d+)\.png$", re.IGNORECASE)
_MHP_KEY_RE = re.compile(r"^(?P<id>.+)_(?P<n>\d+)_(?P<k>\d+)$")


class PredictionFormatError(UserInputError):
    """A prediction folder or file does not follow the documented format (message says why)."""


@dataclass
class ImagePrediction:
    """Predictions of one image: ``persons`` as ``[(score, HxW uint8 label map)]`` sorted by score
    (descending, stable), ``semantic`` an HxW map for mIoU (None when there is nothing to compose and
    no size is known), ``files`` the files read."""

    image_id: str
    persons: List[Tuple[float, np.ndarray]] = field(default_factory=list)
    semantic: Optional[np.ndarray] = None
    files: List[str] = field(default_factory=list)


def _score_value(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PredictionFormatError(f"{where}: score must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise PredictionFormatError(f"{where}: score must be finite, got {value!r}")
    return v


def read_scores(path: PathLike) -> dict:
    """Read a scores JSON file (a JSON object); PredictionFormatError when it is not one."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise PredictionFormatError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise PredictionFormatError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def detect_style(root: PathLike) -> str:
    """``"cihp"`` when ``root`` has ``Category_ids/`` and ``Human_ids/``, else ``"mhp"``."""
    root = Path(root)
    if (root / "Category_ids").is_dir() and (root / "Human_ids").is_dir():
        return "cihp"
    return "mhp"


class PredictionFolder:
    """Index of a prediction folder (see the module docstring for the format).

    Args:
        root: the folder.
        style: ``"auto"`` (default: :func:`detect_style`), ``"mhp"`` or ``"cihp"``.
        scores: path of the scores JSON; default ``root/scores.json`` when it exists.

    Raises FileNotFoundError when ``root`` (or an explicitly given ``scores``) does not exist and
    PredictionFormatError for a malformed folder. ``ids`` lists the image ids found (sorted);
    ``has_scores`` tells whether a scores file is used.
    """

    def __init__(self, root: PathLike, style: str = "auto", scores: Optional[PathLike] = None):
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"predictions folder not found: {root}")
        if style == "auto":
            style = detect_style(root)
        if style not in STYLES:
            raise ValueError(f"prediction style must be 'auto', 'mhp' or 'cihp', got {style!r}")
        self.root, self.style = root, style
        if scores is None:
            default = root / SCORES_FILE
            self.scores_path: Optional[Path] = default if default.is_file() else None
        else:
            self.scores_path = Path(scores)
            if not self.scores_path.is_file():
                raise FileNotFoundError(f"scores file not found: {self.scores_path}")
        self._scores = read_scores(self.scores_path) if self.scores_path is not None else None
        if style == "mhp":
            self._index_mhp()
        else:
            self._index_cihp()

    # ---- indexing -------------------------------------------------------------------------------

    def _index_mhp(self) -> None:
        folder = self.root
        names = os.listdir(folder)
        if not any(_MHP_RE.match(n) for n in names) and (folder / "parsing_annos").is_dir():
            folder = folder / "parsing_annos"
            names = os.listdir(folder)
        self.file_dir = folder
        files: Dict[str, List[Tuple[int, int, str]]] = {}
        for name in names:
            m = _MHP_RE.match(name)
            if m:
                files.setdefault(m["id"], []).append((int(m["k"]), int(m["n"]), name))
        for sid, lst in files.items():
            lst.sort()
            if len({n for _, n, _ in lst}) != 1:
                raise PredictionFormatError(
                    f"predictions of {sid!r} in {folder} disagree on the person count NN "
                    f"(stale files of an earlier run?): {[name for _, _, name in lst]}")
        self._mhp = files
        if self._scores is not None:
            self._scores = {(k[:-4] if k.lower().endswith(".png") else k): v for k, v in self._scores.items()}
        self.ids = sorted(files)

    def _index_cihp(self) -> None:
        cat_dir, hum_dir = self.root / "Category_ids", self.root / "Human_ids"
        for d in (cat_dir, hum_dir):
            if not d.is_dir():
                raise FileNotFoundError(f"CIHP-style predictions need {d}")
        cats = {n[:-4] for n in os.listdir(cat_dir) if n.lower().endswith(".png")}
        hums = {n[:-4] for n in os.listdir(hum_dir) if n.lower().endswith(".png")}
        lonely = sorted(cats ^ hums)
        if lonely:
            sid = lonely[0]
            have, miss = (cat_dir, hum_dir) if sid in cats else (hum_dir, cat_dir)
            raise PredictionFormatError(f"{len(lonely)} prediction id(s) lack one of the two maps, e.g. "
                                        f"{have / (sid + '.png')} has no {miss / (sid + '.png')}")
        self.file_dir = self.root
        self.ids = sorted(cats)

    # ---- queries --------------------------------------------------------------------------------

    @property
    def has_scores(self) -> bool:
        return self._scores is not None

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, image_id: str) -> bool:
        if self.style == "mhp":
            return image_id in self._mhp
        return (self.root / "Category_ids" / f"{image_id}.png").is_file()

    def num_files(self) -> int:
        """Number of prediction PNGs (persons for MHPv2 style, images for CIHP style)."""
        if self.style == "mhp":
            return sum(len(v) for v in self._mhp.values())
        return len(self.ids)

    def load(self, image_id: str, shape: Optional[Tuple[int, int]] = None,
             num_classes: Optional[int] = None) -> ImagePrediction:
        """The predictions of ``image_id`` (no person when it has no file).

        ``shape``: the image's (H, W); every map must have it (PredictionFormatError otherwise) and an
        image without predictions then gets an all-background semantic map. ``num_classes``: labels
        must be below it (PredictionFormatError naming the file and the largest label otherwise).
        """
        if self.style == "mhp":
            pred = self._load_mhp(image_id, shape, num_classes)
        else:
            pred = self._load_cihp(image_id, shape, num_classes)
        if pred.semantic is None and shape is not None:
            pred.semantic = np.zeros(tuple(shape), np.uint8)
        return pred

    @staticmethod
    def _check(m: np.ndarray, path, image_id: str, shape, num_classes) -> np.ndarray:
        if shape is not None and m.shape != tuple(shape):
            raise PredictionFormatError(
                f"prediction {path} is {m.shape[0]}x{m.shape[1]} but image {image_id!r} of the dataset is "
                f"{shape[0]}x{shape[1]} (predictions made for another dataset or split?)")
        if num_classes is not None and m.size and int(m.max()) >= num_classes:
            raise PredictionFormatError(
                f"prediction {path} has label {int(m.max())} but the dataset has {num_classes} classes "
                f"(0..{num_classes - 1}); predictions made for another dataset?")
        return m

    def _score(self, key: str, where: str, index: Optional[int] = None) -> float:
        if self._scores is None:
            return DEFAULT_SCORE
        if key not in self._scores:
            raise PredictionFormatError(f"{self.scores_path} has no score for {key!r} ({where})")
        value = self._scores[key]
        if index is None:
            return _score_value(value, f"{self.scores_path} [{key!r}]")
        if isinstance(value, list):
            if index - 1 >= len(value):
                raise PredictionFormatError(f"{self.scores_path} [{key!r}] lists {len(value)} scores but "
                                            f"{where} has person {index}")
            return _score_value(value[index - 1], f"{self.scores_path} [{key!r}][{index - 1}]")
        if isinstance(value, dict):
            if str(index) not in value:
                raise PredictionFormatError(f"{self.scores_path} [{key!r}] has no score for person "
                                            f"{index} of {where}")
            return _score_value(value[str(index)], f"{self.scores_path} [{key!r}][{str(index)!r}]")
        raise PredictionFormatError(f"{self.scores_path} [{key!r}] must be a list of scores (one per "
                                    f"Human_ids index) or an object {{\"1\": score, ...}}, got {value!r}")

    def _load_mhp(self, image_id: str, shape, num_classes) -> ImagePrediction:
        out = ImagePrediction(image_id)
        persons = []
        for _, _, name in self._mhp.get(image_id, []):
            path = self.file_dir / name
            score = self._score(name[:-4], str(path))
            m = self._check(read_label_png(str(path)), path, image_id, shape, num_classes)
            persons.append((score, m))
            out.files.append(str(path))
        order = sorted(range(len(persons)), key=lambda i: -persons[i][0])
        out.persons = [persons[i] for i in order]
        out.files = [out.files[i] for i in order]
        if out.persons:
            shapes = {m.shape for _, m in out.persons}
            if len(shapes) != 1:
                raise PredictionFormatError(f"predictions of {image_id!r} differ in size: {sorted(shapes)}")
            out.semantic = compose([m for _, m in out.persons])[0]  # the one rule: highest score wins
        return out

    def _load_cihp(self, image_id: str, shape, num_classes) -> ImagePrediction:
        out = ImagePrediction(image_id)
        cat_p = self.root / "Category_ids" / f"{image_id}.png"
        hum_p = self.root / "Human_ids" / f"{image_id}.png"
        if not cat_p.is_file():
            return out
        if not hum_p.is_file():
            raise PredictionFormatError(f"{cat_p} has no instance map {hum_p}")
        cat, hum = read_label_png(str(cat_p)), read_label_png(str(hum_p))
        if cat.shape != hum.shape:
            raise PredictionFormatError(f"{cat_p} {cat.shape} and {hum_p} {hum.shape} differ in size")
        self._check(cat, cat_p, image_id, shape, num_classes)
        self._check(hum, hum_p, image_id, shape, None)
        out.files = [str(cat_p), str(hum_p)]
        persons = [(self._score(image_id, str(hum_p), k), m) for k, m in split_persons(cat, hum)]
        order = sorted(range(len(persons)), key=lambda i: -persons[i][0])
        out.persons = [persons[i] for i in order]
        out.semantic = cat
        return out

    def __repr__(self) -> str:
        return (f"PredictionFolder({str(self.root)!r}, style={self.style!r}, images={len(self)}, "
                f"scores={str(self.scores_path) if self.scores_path else None!r})")


def _key_id(key: str) -> Optional[str]:
    m = _MHP_KEY_RE.match(key)
    return m["id"] if m else None


class PredictionWriter:
    """Write :class:`~uniparser_sdk.results.ParseResult` objects as a prediction folder.

    ``style="mhp"``: ``ParseResult.write_mhp`` per image (files of an earlier write of the same id
    with another person count are removed first); ``style="cihp"``: ``ParseResult.write_cihp``.
    The scores go to ``out_dir/scores.json`` (atomic) on :meth:`close`, merged into an existing one
    (entries of the ids written are replaced). Context manager.
    """

    def __init__(self, out_dir: PathLike, style: str = "mhp"):
        if style not in STYLES:
            raise ValueError(f"style must be 'mhp' or 'cihp', got {style!r}")
        self.out_dir, self.style = Path(out_dir), style
        self.out_dir.mkdir(parents=True, exist_ok=True)
        existing = self.out_dir / SCORES_FILE
        self.scores: dict = read_scores(existing) if existing.is_file() else {}
        self._files: Dict[str, List[str]] = {}   # MHPv2 style: id -> its person files on disk
        if style == "mhp":
            for name in os.listdir(self.out_dir):
                m = _MHP_RE.match(name)
                if m:
                    self._files.setdefault(m["id"], []).append(name)
        self.closed = False

    def add(self, image_id: str, result) -> None:
        if self.closed:
            raise ValueError("PredictionWriter is closed")
        image_id = str(image_id)
        if self.style == "mhp":
            for name in self._files.pop(image_id, []):
                try:
                    os.remove(self.out_dir / name)
                except FileNotFoundError:
                    pass
            stale = [k for k in self.scores if _key_id(k) == image_id]
            for key in stale:
                del self.scores[key]
            self._files[image_id] = [p.name for p in result.write_mhp(self.out_dir, image_id)]
            n = result.num_persons
            for k, p in enumerate(result.persons, start=1):
                self.scores[f"{image_id}_{n:02d}_{k:02d}"] = float(p.score)
        else:
            result.write_cihp(self.out_dir, image_id)
            self.scores[image_id] = [float(p.score) for p in result.persons]

    def close(self) -> Path:
        """Write ``scores.json`` (atomic); returns its path. Idempotent."""
        path = self.out_dir / SCORES_FILE
        if not self.closed:
            atomic_write_text(path, json.dumps(self.scores, indent=1, sort_keys=True) + "\n")
            self.closed = True
        return path

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False
