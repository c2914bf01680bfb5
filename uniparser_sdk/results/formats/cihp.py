"""CIHP layout: one semantic map and one instance map per image -- the ONE composer and writer.

CIHP cannot store overlapping persons, so the persons are composed into single maps with one rule,
used by :attr:`ParseResult.semantic`, :attr:`ParseResult.instance_map`, :func:`write_cihp`, the
evaluation's semantic map of MHPv2-style prediction folders and ``PredictionWriter(style="cihp")``:
**the highest-scoring person labelling a pixel wins it** (persons in descending score order; on equal
scores the earlier one).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

import numpy as np

__all__ = ["compose", "write_cihp", "MAX_PERSONS"]

PathLike = Union[str, os.PathLike]

#: persons an 8-bit ``Human_ids`` map can hold
MAX_PERSONS = 255


def compose(label_maps: Iterable[np.ndarray], shape: Optional[Sequence[int]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Label maps in descending score order -> (semantic HxW uint8, instance HxW int32: 0 background,
    i + 1 where person i wins). The first person claiming a pixel keeps it. ``shape`` is needed only
    when there is no map."""
    maps = [np.asarray(m) for m in label_maps]
    if shape is None:
        if not maps:
            raise ValueError("compose needs a shape when there is no label map")
        shape = maps[0].shape
    shape = tuple(int(v) for v in shape)
    sem = np.zeros(shape, np.uint8)
    inst = np.zeros(shape, np.int32)
    for i, m in enumerate(maps):
        if m.shape != shape:
            raise ValueError(f"person {i}: map shape {m.shape} != {shape}")
        take = (inst == 0) & (m > 0)
        sem[take] = m[take]
        inst[take] = i + 1
    return sem, inst


def write_cihp(result, out_root: PathLike, image_id: str) -> Tuple[Path, Path]:
    """``<out_root>/Category_ids/<id>.png`` (semantic) and ``<out_root>/Human_ids/<id>.png`` (instance
    map, uint8) of a :class:`~uniparser_sdk.results.ParseResult`, atomically. Raises ValueError (writing
    nothing) for more than 255 persons."""
    from ...io_utils import atomic_imwrite

    if result.num_persons > MAX_PERSONS:
        raise ValueError(f"{result.num_persons} persons do not fit an 8-bit Human_ids map (max {MAX_PERSONS})")
    sem, inst = compose([p.parts for p in result.persons], result.image_shape)
    root = Path(out_root)
    cat = atomic_imwrite(root / "Category_ids" / f"{image_id}.png", sem)
    hum = atomic_imwrite(root / "Human_ids" / f"{image_id}.png", inst.astype(np.uint8))
    return cat, hum
