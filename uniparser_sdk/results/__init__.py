"""Results of every backend, their drawing, and the file formats (readers and writers).

    from uniparser_sdk.results import ParseResult, Person

- :mod:`.result`: :class:`ParseResult`, :class:`Person`;
- :mod:`.draw`: the overlay (legend placed where it hides no person);
- :mod:`.formats`: :mod:`~.formats.coco` (COCO RLE, compressed and uncompressed; COCO results files),
  :mod:`~.formats.json` (JSON summary, JSON lines), :mod:`~.formats.cihp` (the one composer and the
  CIHP writer), :mod:`~.formats.mhp` (MHPv2 per-person PNGs).

numpy + OpenCV only; never imports torch.
"""
from .formats.cihp import compose, write_cihp
from .formats.coco import (PERSON_CATEGORY, CocoResultsWriter, coco_image_id, coco_results, results_from_coco,
                           rle_compress, rle_decode, rle_encode)
from .formats.json import JsonLinesWriter
from .result import ParseResult, Person

__all__ = ["ParseResult", "Person", "rle_encode", "rle_decode", "rle_compress", "compose", "write_cihp",
           "coco_results", "coco_image_id", "CocoResultsWriter", "results_from_coco", "PERSON_CATEGORY",
           "JsonLinesWriter"]
