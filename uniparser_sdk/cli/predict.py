"""``uniparser-predict``: parse images, folders, globs and videos with any model file.

    uniparser-predict model.onnx photo.jpg photos/ "shots/**/*.png" clip.mp4 -o out/

Per image (video frames are named ``<video>_f<frame>``) it writes, atomically (temporary file then
rename): ``<stem>_overlay.jpg`` (parts over the image, outlines, boxes, legend), ``<stem>_semantic.png``
(part labels, uint8), ``<stem>_instances.png`` (0 background, person i -> i + 1; uint16 when more than
255 persons) and ``<stem>.json`` (scores, boxes, parts, RLE masks, timings); with ``--mhp`` the MHPv2
layout (``mhp/<stem>_NN_KK.png``) and with ``--cihp`` the CIHP layout (``cihp/Category_ids``,
``cihp/Human_ids``). Images found in a folder keep their sub-folder under ``OUT``. A summary line per
image and totals are printed; user mistakes end with a one-line ``error:`` and exit code 2.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                  ".pbm", ".pgm", ".ppm", ".pnm", ".jp2")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")
EXIT_USAGE = 2


class UsageError(Exception):
    """A user mistake: reported as one line, exit code 2."""


@dataclass
class Source:
    """One input: an image file, or a video file (``frames`` > 0 when known)."""

    path: Path
    rel: Path  # output sub-folder + stem, relative to OUT (no suffix)
    video: bool = False


def _is_glob(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def collect_sources(inputs: list[str], recursive: bool = False) -> list[Source]:
    """Expand files, folders (their images; sub-folders with ``recursive``) and globs, in order,
    without duplicates. Raises :class:`UsageError` for inputs that match nothing."""
    out: list[Source] = []
    seen: set = set()

    def add(p: Path, rel: Path):
        key = os.path.realpath(p)
        if key in seen:
            return
        seen.add(key)
        out.append(Source(p, rel, p.suffix.lower() in VIDEO_SUFFIXES))

    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
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


def iter_frames(src: Source, every: int) -> Iterator[tuple[Path, np.ndarray, Optional[str]]]:
    """(relative output stem, BGR image or None, error message or None) for an image or each
    ``every``-th frame of a video."""
    from ..io_utils import imread

    if not src.video:
        try:
            yield src.rel, imread(src.path), None
        except (OSError, ValueError) as exc:
            yield src.rel, None, str(exc)
        return
    import cv2

    cap = cv2.VideoCapture(str(src.path))
    if not cap.isOpened():
        yield src.rel, None, f"cannot open video {src.path}"
        return
    try:
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                if index == 0:
                    yield src.rel, None, f"cannot decode any frame of {src.path}"
                break
            if index % every == 0:
                yield src.rel.with_name(f"{src.rel.name}_f{index:06d}"), frame, None
            index += 1
    finally:
        cap.release()


def count_work(sources: list[Source], every: int) -> Optional[int]:
    """Images + sampled frames, for the progress bar (None when a video does not tell its length)."""
    total = 0
    for s in sources:
        if not s.video:
            total += 1
            continue
        import cv2

        cap = cv2.VideoCapture(str(s.path))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        cap.release()
        if n <= 0:
            return None
        total += -(-n // every)
    return total


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="uniparser-predict",
        description="Multi-human parsing of images, folders, globs and videos with a UniParser model "
                    "(.onnx, .engine/.plan or .pth).",
        epilog="Writes <stem>_overlay.jpg, <stem>_semantic.png, <stem>_instances.png and <stem>.json per "
               "image (video frames: <video>_f<frame>) into OUT.")
    ap.add_argument("model", help="model file: .onnx (ONNX Runtime), .engine/.plan (TensorRT), .pth (PyTorch)")
    ap.add_argument("inputs", nargs="+", metavar="INPUT",
                    help="image files, folders, glob patterns (quote them) or video files")
    ap.add_argument("-o", "--output", default="uniparser_predictions", metavar="OUT",
                    help="output folder (default: %(default)s)")
    ap.add_argument("-r", "--recursive", action="store_true", help="also take images in sub-folders")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: %(default)s)")
    ap.add_argument("--every", type=int, default=1, metavar="N", help="videos: parse every N-th frame")
    ap.add_argument("--ctr-score", type=float, help="center score threshold (model default if omitted)")
    ap.add_argument("--mask-thr", type=float, help="instance mask threshold")
    ap.add_argument("--cate-score-thr", type=float, help="category maskness threshold")
    ap.add_argument("--max-instances", type=int, help="keep at most this many persons per image")
    ap.add_argument("--scale", type=int, nargs=2, metavar=("LONG", "SHORT"),
                    help="resize limits (default: the model's, 1333 800)")
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
    ap = build_parser()
    args = ap.parse_args(argv)
    try:
        return _run(args)
    except UsageError as exc:
        print(f"uniparser-predict: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("uniparser-predict: interrupted", file=sys.stderr)
        return 130


def _run(args) -> int:
    from ..backends import UnknownModelType
    from .._lazy import MissingDependency

    if args.every < 1:
        raise UsageError(f"--every must be >= 1, got {args.every}")
    if not 0.0 <= args.alpha <= 1.0:
        raise UsageError(f"--alpha must lie in [0, 1], got {args.alpha}")
    model = Path(args.model)
    if not model.is_file():
        raise UsageError(f"model file not found: {model}")
    sources = collect_sources(args.inputs, args.recursive)  # before loading the model: fail fast
    out_root = Path(args.output)
    if out_root.exists() and not out_root.is_dir():
        raise UsageError(f"output path exists and is not a folder: {out_root}")

    from ..runtime.parser import Parser

    decode = {"ctr_score": args.ctr_score, "mask_thr": args.mask_thr, "cate_score_thr": args.cate_score_thr,
              "max_instances": args.max_instances}
    try:
        parser = Parser(model, device=args.device, scale=args.scale, **decode)
    except (UnknownModelType, MissingDependency, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    except (ValueError, TypeError, RuntimeError) as exc:
        raise UsageError(f"cannot load model {model}: {exc}") from None

    from tqdm import tqdm

    total = count_work(sources, args.every)
    n_images = n_persons = 0
    failed: list[str] = []
    sums: dict[str, float] = {}
    t_start = time.perf_counter()
    with parser, tqdm(total=total, unit="img", disable=args.quiet, file=sys.stderr, dynamic_ncols=True) as bar:
        if not args.quiet:
            tqdm.write(f"model {model.name}: {parser.backend.describe()}, layout {parser.layout}", file=sys.stdout)
        for src in sources:
            for rel, image, error in iter_frames(src, args.every):
                bar.update(1)
                name = str(rel)
                if error is not None:
                    failed.append(name)
                    tqdm.write(f"uniparser-predict: error: {error}", file=sys.stderr)
                    continue
                try:
                    result = parser.predict(image)
                    result.source = str(src.path)
                    write_outputs(result, image, out_root, rel, args)
                except (OSError, ValueError, TypeError) as exc:
                    failed.append(name)
                    tqdm.write(f"uniparser-predict: error: {name}: {exc}", file=sys.stderr)
                    continue
                n_images += 1
                n_persons += result.num_persons
                for k, v in result.timings.items():
                    sums[k] = sums.get(k, 0.0) + v
                if not args.quiet:
                    tqdm.write(f"{name}: {result.num_persons} person(s), "
                               f"{sum(result.timings.values()):.1f} ms ({_fmt_ms(result.timings)})", file=sys.stdout)
    wall = time.perf_counter() - t_start
    if n_images:
        means = {k: v / n_images for k, v in sums.items()}
        print(f"done: {n_images} image(s), {n_persons} person(s), {wall:.1f} s; mean per image "
              f"{sum(means.values()):.1f} ms ({_fmt_ms(means)}); outputs in {out_root}")
    if failed:
        print(f"uniparser-predict: error: {len(failed)} input(s) failed: {', '.join(failed[:5])}"
              + (" ..." if len(failed) > 5 else ""), file=sys.stderr)
        return EXIT_USAGE
    if not n_images:
        raise UsageError("no images were parsed")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
