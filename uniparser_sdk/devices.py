"""The one parser of device strings: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (torch's spelling).

Every backend and CLI takes a device as a string and reads it through :func:`parse_device`; what each
backend then does with it (ONNX Runtime providers, a torch device, a CUDA device for TensorRT) is the
backend's business.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

from .errors import UserInputError

KINDS = ("auto", "cpu", "cuda")


class DeviceError(UserInputError):
    """A device string the SDK does not understand."""


class Device(NamedTuple):
    kind: str  # "auto", "cpu" or "cuda"
    index: Optional[int]  # the N of "cuda:N"; None when not given

    @property
    def cuda_index(self) -> int:
        """The CUDA device ordinal to use (0 unless ``cuda:N`` named one)."""
        return self.index or 0

    def __str__(self) -> str:
        return f"{self.kind}:{self.index}" if self.index is not None else self.kind


def parse_device(device) -> Device:
    """``"cuda:1"`` -> ``Device("cuda", 1)``; raises :class:`DeviceError` (a ValueError) otherwise."""
    text = str(device).strip().lower()
    kind, sep, index = text.partition(":")
    if kind not in KINDS or (sep and kind != "cuda"):
        raise DeviceError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not sep:
        return Device(kind, None)
    if not index.isdigit():
        raise DeviceError(f"bad device {device!r}; use 'cuda:N' with N a GPU ordinal (0, 1, ...)")
    return Device("cuda", int(index))
