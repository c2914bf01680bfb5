"""Readers and writers of result formats: :mod:`.coco` (COCO RLE both ways, COCO results files),
:mod:`.json` (the SDK's JSON summary, JSON lines), :mod:`.cihp` (the one composer + CIHP maps),
:mod:`.mhp` (MHPv2 per-person PNGs). Reused by the evaluation and the CLIs. numpy + OpenCV only."""
