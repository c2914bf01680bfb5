"""The SDK's JSON summary of a result (``ParseResult.to_dict`` / ``write_json``) and JSON lines.

Per person: score, bbox (x0, y0, x1, y1; exclusive end) or None, area, part ids and names, and the
mask as COCO RLE -- compressed (string counts, what pycocotools writes) by default, uncompressed
(list counts) with ``compressed=False``; with ``include_parts`` one RLE per part, enough to rebuild
the label maps (:func:`result_from_dict`, which reads both RLE forms).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Optional, Union

import numpy as np

from .coco import rle_compress, rle_decode, rle_encode
from ...io_utils import Closing

__all__ = ["result_to_dict", "result_from_dict", "JsonLinesWriter"]

PathLike = Union[str, os.PathLike]


def result_to_dict(result, include_parts: bool = False, compressed: bool = True) -> dict:
    enc = rle_compress if compressed else rle_encode
    persons = []
    for p in result.persons:
        ids = p.part_ids
        bbox = p.bbox
        item = {
            "score": p.score,
            "bbox": list(bbox) if bbox is not None else None,
            "area": p.area,
            "part_ids": ids,
            "part_names": [result.classes[i] for i in ids],
            "mask": enc(p.mask),
        }
        if include_parts:
            item["parts"] = [{"id": i, "name": result.classes[i], "mask": enc(p.parts == i)} for i in ids]
        persons.append(item)
    return {
        "source": result.source,
        "image_shape": list(result.image_shape),
        "num_persons": result.num_persons,
        "classes": list(result.classes),
        "timings": dict(result.timings),
        "persons": persons,
    }


def result_from_dict(d: dict):
    """Inverse of ``result_to_dict(include_parts=True)`` (either RLE form)."""
    from ..result import ParseResult, Person

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
    return ParseResult(persons, shape, tuple(d["classes"]), d.get("timings") or {}, d.get("source"))


class JsonLinesWriter(Closing):
    """One JSON object per line (e.g. one per video frame).

    ``path``: a file, written to a temporary file next to it and renamed onto it by :meth:`close` --
    also on Ctrl-C inside a ``with`` block -- so the file that appears is complete, every line valid
    JSON; or ``"-"`` / a text stream: lines are written and flushed as they come (follow them live).
    """

    def __init__(self, path: Union[PathLike, IO[str]]):
        self._final: Optional[Path] = None
        self._own = False
        if hasattr(path, "write"):
            self._f = path
        elif str(path) == "-":
            import sys

            self._f = sys.stdout
        else:
            import tempfile

            self._final = Path(path)
            self._final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self._final.parent, prefix=f".{self._final.name}.", suffix=".tmp")
            self._tmp = Path(tmp)
            self._f = os.fdopen(fd, "w", encoding="utf-8")
            self._own = True
        self.lines = 0
        self.closed = False

    @property
    def path(self) -> Optional[Path]:
        return self._final

    def write(self, obj) -> None:
        if self.closed:
            raise ValueError("JsonLinesWriter is closed")
        self._f.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._f.flush()
        self.lines += 1

    def close(self) -> Optional[Path]:
        """Finish the file (rename it into place); idempotent."""
        if self.closed:
            return self._final
        self.closed = True
        if self._own:
            from ...io_utils import _fsync_dir, _umask

            try:
                os.fsync(self._f.fileno())
            finally:
                self._f.close()
            os.chmod(self._tmp, 0o666 & ~_umask())
            os.replace(self._tmp, self._final)
            _fsync_dir(self._final.parent)
        return self._final

    def discard(self) -> None:
        """Drop a file-backed output (remove the temporary file)."""
        if self._own and not self.closed:
            self.closed = True
            self._f.close()
            self._tmp.unlink(missing_ok=True)


