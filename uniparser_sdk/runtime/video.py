"""Frames in, annotated frames out: OpenCV video sources and an atomic video writer.

    with VideoSource("rtsp://cam/stream", every=2) as video, Parser("m.onnx") as parser, \\
            VideoSink("out.mp4", fps=video.fps / 2) as sink:
        for frame, result in parser.stream(video, with_inputs=True):
            sink.write(result.draw(frame, legend="outside"))

:class:`VideoSource` opens what ``cv2.VideoCapture`` opens: a video file, a camera index (``0`` or
``"0"``), or a stream URL (``rtsp://``, ``http(s)://``, ``file://``, ... through OpenCV's FFmpeg
backend). It yields BGR frames, every ``every``-th one (the others are grabbed, not decoded), up to
``max_frames`` parsed frames; a source that stops delivering (end of file, dropped stream) ends the
iteration. :class:`VideoSink` writes to a temporary file next to the target and renames it into place
on :meth:`~VideoSink.close` (also when a ``with`` block ends by Ctrl-C), so the video that appears is
always finalised and playable. numpy + OpenCV only.
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Iterator, Optional, Union

import cv2
import numpy as np

from ..errors import UserInputError
from ..io_utils import Closing

__all__ = ["VideoSource", "VideoSink", "VideoOpenError", "is_stream_url", "is_camera_index", "source_stem"]

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class VideoOpenError(UserInputError, OSError):
    """OpenCV cannot open a video file, camera or stream (or write a video)."""


def is_stream_url(text) -> bool:
    """``scheme://...`` (rtsp, http, https, udp, file, ...)."""
    return isinstance(text, str) and bool(_URL.match(text))


def is_camera_index(text) -> bool:
    """A camera index: a non-negative int, or a string of digits."""
    if isinstance(text, (int, np.integer)) and not isinstance(text, bool):
        return int(text) >= 0
    return isinstance(text, str) and text.isdigit()


def source_stem(source) -> str:
    """A file-name stem for a source: ``camera0``, ``cam.local_554_live`` (URL), or the file's stem."""
    if is_camera_index(source) and not (isinstance(source, str) and os.path.exists(source)):
        return f"camera{int(source)}"
    s = str(source)
    if is_stream_url(s):
        scheme, rest = s.split("://", 1)
        if scheme.lower() == "file":
            return Path(rest).stem or "stream"
        rest = rest.split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]  # no query, no credentials
        if "." in rest.rsplit("/", 1)[-1]:  # .../clip.mp4 -> clip
            rest = rest.rsplit(".", 1)[0]
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", rest).strip("._")
        return stem or "stream"
    return Path(s).stem


class VideoSource(Closing):
    """Iterable of BGR uint8 frames from a video file, camera index or stream URL (see module doc)."""

    def __init__(self, source: Union[str, int, os.PathLike], every: int = 1, max_frames: Optional[int] = None):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise UserInputError(f"every must be a positive integer, got {every!r}")
        if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int)
                                       or max_frames < 1):
            raise UserInputError(f"max_frames must be a positive integer, got {max_frames!r}")
        self.source = source
        self.every, self.max_frames = every, max_frames
        if is_camera_index(source) and not (isinstance(source, str) and os.path.exists(source)):
            self.kind, arg = "camera", int(source)
        elif is_stream_url(str(source)):
            self.kind, arg = "stream", str(source)
        else:
            self.kind, arg = "file", str(source)
            if not os.path.isfile(arg):
                raise VideoOpenError(f"video file not found: {arg}")
        self._cap = cv2.VideoCapture(arg)
        if not self._cap.isOpened():
            self._cap.release()
            what = {"camera": "camera", "stream": "stream", "file": "video"}[self.kind]
            raise VideoOpenError(f"cannot open {what} {source}")
        fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        #: frames per second the source reports (25 when it reports none)
        self.fps = fps if math.isfinite(fps) and 0 < fps < 1000 else 25.0
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if self.kind == "file" else 0
        #: frames in the file (None for cameras, streams, and files that do not say)
        self.frame_count: Optional[int] = n if n > 0 else None
        #: source index of the last frame delivered (-1 before the first)
        self.index = -1
        self._used = False

    @property
    def expected_frames(self) -> Optional[int]:
        """Frames this source will deliver, when known."""
        if self.frame_count is None:
            return self.max_frames
        n = -(-self.frame_count // self.every)
        return min(n, self.max_frames) if self.max_frames else n

    def __iter__(self) -> Iterator[np.ndarray]:
        if self._used:
            raise ValueError("a VideoSource can be iterated once")
        self._used = True
        return self._frames()

    def _frames(self) -> Iterator[np.ndarray]:
        cap, delivered, index = self._cap, 0, -1
        while cap is not None and (self.max_frames is None or delivered < self.max_frames):
            for _ in range(self.every - 1 if index >= 0 else 0):  # skipped frames: grab, do not decode
                if not cap.grab():
                    return
                index += 1
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            index += 1
            self.index = index
            delivered += 1
            yield frame
            cap = self._cap

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None



    def __repr__(self) -> str:
        return f"VideoSource({self.source!r}, kind={self.kind}, fps={self.fps:g}, every={self.every})"


class VideoSink(Closing):
    """Atomic video writer: frames go to ``.<name>.partial<suffix>`` next to ``path``; :meth:`close`
    finalises the container and renames it onto ``path``. The frame size is taken from the first frame
    (every frame must have it; odd heights/widths are padded by one black row/column, as most codecs
    need even sizes). Nothing is created when no frame was written. ``fourcc``: codec
    (default ``mp4v`` for .mp4/.m4v/.mov, ``MJPG`` for .avi)."""

    def __init__(self, path: Union[str, os.PathLike], fps: float, fourcc: Optional[str] = None):
        self.path = Path(path)
        if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
            raise UserInputError(f"fps must be a positive number, got {fps!r}")
        self.fps = float(fps)
        suffix = self.path.suffix.lower()
        self.fourcc = fourcc or ("MJPG" if suffix == ".avi" else "mp4v")
        if len(self.fourcc) != 4:
            raise UserInputError(f"fourcc must have 4 characters, got {self.fourcc!r}")
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._writer = None
        self.size: Optional[tuple[int, int]] = None
        self.frames = 0
        self.closed = False

    def write(self, frame: np.ndarray) -> None:
        if self.closed:
            raise ValueError("VideoSink is closed")
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"VideoSink takes HxWx3 uint8 BGR frames, got {frame.dtype} {frame.shape}")
        if frame.shape[0] % 2 or frame.shape[1] % 2:  # most codecs (mp4v, H.264) need even sizes
            frame = np.pad(frame, ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0)))
        h, w = frame.shape[:2]
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                raise VideoOpenError(f"OpenCV cannot write {self.path.suffix or 'this'} video with codec "
                                     f"{self.fourcc!r} to {self.path}")
            self.size = (h, w)
        elif (h, w) != self.size:
            raise ValueError(f"frame size {h}x{w} differs from the video's {self.size[0]}x{self.size[1]}")
        self._writer.write(np.ascontiguousarray(frame))
        self.frames += 1

    def close(self) -> Optional[Path]:
        """Finalise and move the video into place (None when no frame was written). Idempotent."""
        if self.closed:
            return self.path if self.frames else None
        self.closed = True
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        os.replace(self._tmp, self.path)
        return self.path


