"""``uniparser-predict``: parse images, folders, globs, videos, cameras and streams with any model file.

    uniparser-predict model.onnx photo.jpg photos/ "shots/**/*.png" clip.mp4 -o out/
    uniparser-predict model.onnx 0 --save-video --jsonl --every 2          # camera 0
    uniparser-predict model.onnx rtsp://cam.local/live --save-video --max-frames 1000

Per image (video frames are named ``<video>_f<frame>``) it writes, atomically (temporary file then
rename): ``<stem>_overlay.jpg`` (parts over the image, outlines, boxes, a legend that hides no person),
``<stem>_semantic.png`` (part labels, uint8), ``<stem>_instances.png`` (0 background, person i -> i + 1;
uint16 when more than 255 persons) and ``<stem>.json`` (scores, boxes, parts, COCO-compressed RLE masks,
timings); with ``--mhp`` the MHPv2 layout (``mhp/<stem>_NN_KK.png``) and with ``--cihp`` the CIHP layout
(``cihp/Category_ids``, ``cihp/Human_ids``); with ``--coco FILE`` one COCO results file for everything.

Videos, camera indices (``0``, ``1``, ...) and stream URLs (``rtsp://``, ``http://``, ... -- whatever
OpenCV's FFmpeg backend opens) are read frame by frame through ``Parser.stream`` (bounded memory; a
background thread decodes the next frames while the network runs). ``--save-video`` writes
``<stem>_overlay.mp4`` (annotated, legend in a side panel), ``--jsonl`` writes ``<stem>.jsonl`` (one JSON
object per parsed frame); with either, per-frame files are written only with ``--frame-files``.
Ctrl-C stops cleanly: the videos, JSON lines and COCO file written so far are finalised and valid, and
the exit code is 130. Images found in a folder keep their sub-folder under ``OUT``. A summary line per
image and totals are printed; user mistakes end with a one-line ``error:`` and exit code 2.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from ..errors import EXIT_USAGE
from .common import UserError, add_model_options, deferred_interrupt, open_parser, run_cli, size_arg

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                  ".pbm", ".pgm", ".ppm", ".pnm", ".jp2")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")


class UsageError(UserError):
    """A user mistake: reported as one line, exit code 2."""


@dataclass
class Source:
    """One input: an image file, a video file, a camera index or a stream URL (``kind``)."""

    path: Union[Path, str]
    rel: Path  # output sub-folder + stem, relative to OUT (no suffix)
    kind: str = "image"  # image | video | camera | stream

    @property
    def video(self) -> bool:
        """Read frame by frame (video file, camera, stream)."""
        return self.kind != "image"


def _is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def collect_sources(inputs: list[str], recursive: bool = False) -> list[Source]:
    """Expand files, folders (their images; sub-folders with ``recursive``) and globs, in order,
    without duplicates; camera indices (digits that name no file) and stream URLs (``scheme://``) are
    taken as they are. Raises :class:`UsageError` for inputs that match nothing."""
    from ..runtime.video import is_camera_index, is_stream_url, source_stem

    out: list[Source] = []
    seen: set = set()

    def add(p: Path, rel: Path):
        key = os.path.realpath(p)
        if key in seen:
            return
        seen.add(key)
        out.append(Source(p, rel, "video" if p.suffix.lower() in VIDEO_SUFFIXES else "image"))

    for arg in inputs:
        p = Path(arg)
        if is_stream_url(arg) or (is_camera_index(arg) and not p.exists()):
            if arg in seen:
                continue
            seen.add(arg)
            out.append(Source(arg, Path(source_stem(arg)), "stream" if is_stream_url(arg) else "camera"))
        elif p.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise UsageError(f"no images in folder {p}" + ("" if recursive else " (use -r for sub-folders)"))
            for f in files:
                add(f, f.relative_to(p).with_suffix(""))
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES + VIDEO_SUFFIXES:
                raise UsageError(f"{p}: not an image or video file (by extension)")
            add(p, Path(p.stem))
        elif _is_glob(arg):
            matches = sorted(Path(m) for m in glob.glob(arg, recursive=True))
            matches = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES]
            if not matches:
                raise UsageError(f"no image or video files match {arg!r}")
            for m in matches:
                add(m, Path(m.stem))
        else:
            raise UsageError(f"input not found: {arg}")
    # distinct output names: stems from different places may collide
    used: dict = {}
    for s in out:
        key = str(s.rel).lower()
        if key in used:
            used[key] += 1
            s.rel = s.rel.with_name(f"{s.rel.name}-{used[key]}")
        else:
            used[key] = 1
    return out


def read_image(src: Source) -> tuple[Optional[np.ndarray], Optional[str]]:
    """(BGR image or None, error message or None) of an image source."""
    from ..io_utils import imread

    try:
        return imread(src.path), None
    except (OSError, ValueError) as exc:
        return None, str(exc)


def count_work(sources: list[Source], every: int, max_frames: Optional[int] = None) -> Optional[int]:
    """Images + sampled frames, for the progress bar (None when a video or stream does not tell its
    length)."""
    total = 0
    for s in sources:
        if not s.video:
            total += 1
            continue
        if s.kind != "video":
            if max_frames is None:
                return None
            total += max_frames
            continue
        import cv2

        cap = cv2.VideoCapture(str(s.path))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        cap.release()
        if n <= 0:
            return None
        n = -(-n // every)
        total += min(n, max_frames) if max_frames else n
    return total


def _scale(text: str) -> tuple[int, int]:
    """``1333x800`` -> the (long, short) limits Parser takes."""
    h, w = size_arg("--scale")(text)
    return max(h, w), min(h, w)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="uniparser-predict",
        description="Multi-human parsing of images, folders, globs and videos with a UniParser model "
                    "(.onnx, .engine/.plan or .pth).",
        epilog="Writes <stem>_overlay.jpg, <stem>_semantic.png, <stem>_instances.png and <stem>.json per "
               "image (video frames: <video>_f<frame>) into OUT.")
    ap.add_argument("model", help="model file: .onnx (ONNX Runtime), .engine/.plan (TensorRT), .pth (PyTorch)")
    ap.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="image files, folders, glob patterns (quote them), video files, camera indices "
                         "(0, 1, ...) or stream URLs (rtsp://, http://, ...)")
    ap.add_argument("-o", "--output", default="uniparser_predictions", metavar="OUT",
                    help="output folder (default: %(default)s)")
    ap.add_argument("-r", "--recursive", action="store_true", help="also take images in sub-folders")
    add_model_options(ap)
    ap.add_argument("--every", type=int, default=1, metavar="N",
                    help="videos/cameras/streams: parse every N-th frame")
    ap.add_argument("--max-frames", type=int, metavar="N",
                    help="videos/cameras/streams: stop after N parsed frames")
    ap.add_argument("--batch-size", type=int, default=1, metavar="N",
                    help="videos/cameras/streams: frames per network call (default: %(default)s)")
    ap.add_argument("--save-video", action="store_true",
                    help="videos/cameras/streams: write OUT/<stem>_overlay.mp4 (annotated frames)")
    ap.add_argument("--jsonl", action="store_true",
                    help="videos/cameras/streams: write OUT/<stem>.jsonl, one JSON object per parsed frame")
    ap.add_argument("--frame-files", action="store_true",
                    help="with --save-video/--jsonl: still write the per-frame image and JSON files")
    ap.add_argument("--coco", metavar="FILE",
                    help="also write all persons as one COCO results file (pycocotools' loadRes format; "
                         "image_id = the file stem, as an int when it is all digits)")
    ap.add_argument("--scale", type=_scale, metavar="WIDTHxHEIGHT",
                    help="keep-ratio resize limits, e.g. 1333x800 = long side <= 1333, short side <= 800 "
                         "(default: the model's)")
    ap.add_argument("--mhp", action="store_true", help="also write MHPv2-layout per-person PNGs (OUT/mhp)")
    ap.add_argument("--cihp", action="store_true", help="also write CIHP-layout maps (OUT/cihp)")
    ap.add_argument("--json-parts", action="store_true", help="store one RLE mask per part in the JSON")
    ap.add_argument("--no-overlay", action="store_true", help="do not write overlay images")
    ap.add_argument("--alpha", type=float, default=0.55, help="overlay opacity (default: %(default)s)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar or per-image lines")
    return ap


def write_outputs(result, image: np.ndarray, out_root: Path, rel: Path, args) -> list[Path]:
    from ..io_utils import atomic_imwrite

    base = out_root / rel
    stem = base.name
    written = []
    if not args.no_overlay:
        written.append(result.save_overlay(base.with_name(stem + "_overlay.jpg"), image, alpha=args.alpha))
    written.append(atomic_imwrite(base.with_name(stem + "_semantic.png"), result.semantic))
    inst = result.instance_map
    inst = inst.astype(np.uint8 if result.num_persons <= 255 else np.uint16)
    written.append(atomic_imwrite(base.with_name(stem + "_instances.png"), inst))
    written.append(result.write_json(base.with_name(stem + ".json"), indent=1, include_parts=args.json_parts))
    if args.mhp:
        written += result.write_mhp(out_root / "mhp" / rel.parent, stem)
    if args.cihp:
        if result.num_persons <= 255:
            written += list(result.write_cihp(out_root / "cihp" / rel.parent, stem))
        else:
            print(f"uniparser-predict: warning: {rel}: {result.num_persons} persons do not fit the 8-bit CIHP "
                  "Human_ids map; CIHP files not written", file=sys.stderr)
    return written


def _fmt_ms(t: dict) -> str:
    return " ".join(f"{k[:4]} {v:.1f}" for k, v in t.items()) + " ms"


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    return run_cli("uniparser-predict", lambda: _run(args),
                   interrupted="interrupted; the outputs written so far are complete")


class _Run:
    """Counters and writers of one run."""

    def __init__(self, args, parser, out_root: Path, bar, coco):
        self.args, self.parser, self.out_root, self.bar, self.coco = args, parser, out_root, bar, coco
        self.n_images = self.n_persons = 0
        self.failed: list[str] = []
        self.sums: dict[str, float] = {}

    def fail(self, name: str, msg: str) -> None:
        from tqdm import tqdm

        self.failed.append(name)
        tqdm.write(f"uniparser-predict: error: {msg}", file=sys.stderr)

    def done(self, name: str, result) -> None:
        from tqdm import tqdm

        self.n_images += 1
        self.n_persons += result.num_persons
        for k, v in result.timings.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        if not self.args.quiet:
            tqdm.write(f"{name}: {result.num_persons} person(s), "
                       f"{sum(result.timings.values()):.1f} ms ({_fmt_ms(result.timings)})", file=sys.stdout)

    def image(self, src: Source) -> None:
        name = str(src.rel)
        self.bar.update(1)
        image, error = read_image(src)
        if error is not None:
            return self.fail(name, error)
        try:
            result = self.parser.predict(image)
            result.source = str(src.path)
            write_outputs(result, image, self.out_root, src.rel, self.args)
            if self.coco is not None:
                self.coco.add(_coco_id(src.rel.name), result)
        except (OSError, ValueError, TypeError) as exc:
            return self.fail(name, f"{name}: {exc}")
        self.done(name, result)

    def video(self, src: Source) -> None:
        from ..results import JsonLinesWriter
        from ..runtime.video import VideoOpenError, VideoSink, VideoSource

        args, rel = self.args, src.rel
        try:
            video = VideoSource(str(src.path), every=args.every, max_frames=args.max_frames)
        except VideoOpenError as exc:
            return self.fail(str(rel), str(exc))
        frame_files = args.frame_files or not (args.save_video or args.jsonl)
        base = self.out_root / rel
        parsed = 0
        with ExitStack() as stack:  # closed in reverse order: the stream first, then the writers
            stack.enter_context(video)
            sink = jl = None
            if args.save_video:
                sink = stack.enter_context(VideoSink(base.with_name(base.name + "_overlay.mp4"),
                                                     fps=video.fps / args.every))
            if args.jsonl:
                jl = stack.enter_context(JsonLinesWriter(base.with_name(base.name + ".jsonl")))
            frames = self.parser.stream(video, batch_size=args.batch_size, prefetch=1, with_inputs=True)
            stack.callback(frames.close)
            try:
                for k, (frame, result) in enumerate(frames):
                    self.bar.update(1)
                    index = k * args.every
                    name = f"{rel.name}_f{index:06d}"
                    result.source = str(src.path)
                    overlay = result.draw(frame, alpha=args.alpha, legend="outside") if sink is not None else None
                    line = ({"frame": index, "time_s": round(index / video.fps, 6),
                             **result.to_dict(include_parts=args.json_parts)} if jl is not None else None)
                    with deferred_interrupt():  # one frame's outputs are written together or not at all
                        if frame_files:
                            write_outputs(result, frame, self.out_root, rel.with_name(name), args)
                        if sink is not None:
                            sink.write(overlay)
                        if jl is not None:
                            jl.write(line)
                        if self.coco is not None:
                            self.coco.add(name, result)
                        parsed += 1
                    self.done(str(rel.with_name(name)), result)
            except (OSError, ValueError, TypeError) as exc:
                return self.fail(str(rel), f"{rel}: frame {parsed * args.every}: {exc}")
        if parsed == 0:
            self.fail(str(rel), f"cannot decode any frame of {src.path}")


def _coco_id(stem: str):
    from ..results import coco_image_id

    return coco_image_id(stem)


def _run(args) -> int:
    for opt in ("every", "batch_size"):
        if getattr(args, opt) < 1:
            raise UsageError(f"--{opt.replace('_', '-')} must be >= 1, got {getattr(args, opt)}")
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {args.max_frames}")
    if not 0.0 <= args.alpha <= 1.0:
        raise UsageError(f"--alpha must lie in [0, 1], got {args.alpha}")
    model = Path(args.model)
    if not model.is_file():
        raise UsageError(f"model file not found: {model}")
    sources = collect_sources(args.inputs, args.recursive)  # before loading the model: fail fast
    out_root = Path(args.output)
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(f"output path exists and is not a folder: {out_root}")

    parser = open_parser(args, model, scale=args.scale)

    from tqdm import tqdm

    from ..results import CocoResultsWriter

    total = count_work(sources, args.every, args.max_frames)
    t_start = time.perf_counter()
    with ExitStack() as stack:
        stack.enter_context(parser)
        bar = stack.enter_context(tqdm(total=total, unit="img", disable=args.quiet, file=sys.stderr,
                                       dynamic_ncols=True))
        coco = stack.enter_context(CocoResultsWriter(args.coco)) if args.coco else None
        run = _Run(args, parser, out_root, bar, coco)
        if not args.quiet:
            tqdm.write(f"model {model.name}: {parser.backend.describe()}, layout {parser.layout}, "
                       f"{parser.threads} thread(s)", file=sys.stdout)
        for src in sources:
            if src.video:
                run.video(src)
            else:
                run.image(src)
    wall = time.perf_counter() - t_start
    if run.n_images:
        means = {k: v / run.n_images for k, v in run.sums.items()}
        print(f"done: {run.n_images} image(s), {run.n_persons} person(s), {wall:.1f} s; mean per image "
              f"{sum(means.values()):.1f} ms ({_fmt_ms(means)}); outputs in {out_root}")
    if run.failed:
        print(f"uniparser-predict: error: {len(run.failed)} input(s) failed: {', '.join(run.failed[:5])}"
              + (" ..." if len(run.failed) > 5 else ""), file=sys.stderr)
        return EXIT_USAGE
    if not run.n_images:
        raise UsageError("no images were parsed")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
