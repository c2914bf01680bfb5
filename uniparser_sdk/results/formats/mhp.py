"""MHPv2 layout: one single-channel label PNG per person, ``<id>_<NN>_<KK>.png``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

__all__ = ["write_mhp", "mhp_name"]

PathLike = Union[str, os.PathLike]


def mhp_name(image_id: str, num_persons: int, k: int) -> str:
    """``<id>_<NN>_<KK>.png`` (NN persons, KK = 1..NN, both at least two digits)."""
    return f"{image_id}_{num_persons:02d}_{k:02d}.png"


def write_mhp(result, out_dir: PathLike, image_id: str) -> list[Path]:
    """One uint8 label PNG per person of a :class:`~uniparser_sdk.results.ParseResult`, in score order,
    atomically; nothing for zero persons. Returns the paths written."""
    from ...io_utils import atomic_imwrite

    out_dir = Path(out_dir)
    n = result.num_persons
    return [atomic_imwrite(out_dir / mhp_name(image_id, n, k), p.parts)
            for k, p in enumerate(result.persons, start=1)]
