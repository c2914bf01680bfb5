"""The one CLI runner and the shared option parsers of every ``uniparser-*`` command.

Exit codes (:mod:`uniparser_sdk.errors`): 0 ok, 1 the job failed, 2 usage or input error, 130
interrupted. User mistakes are printed as one line (``prog: error: ...``), never as a traceback.

Image sizes on every CLI follow the paper's and mmdetection's convention: ``WIDTHxHEIGHT``
(``1333x800`` = 1333 wide, 800 high); :func:`parse_size` is the one parser.
"""
from __future__ import annotations

import argparse
import re
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

from ..errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, UniParserError, UserInputError

SIZE_CONVENTION = "WIDTHxHEIGHT, e.g. 1333x800 (the paper's and mmdetection's width x height)"
_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


class UserError(UserInputError):
    """A mistake of the user (bad path, bad value): printed as one line, exit code 2."""


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """``"1333x800"`` -> ``(height, width)`` = ``(800, 1333)``: WIDTHxHEIGHT on the command line, (H, W)
    inside the SDK. Raises :class:`UserError` naming the convention."""
    m = _SIZE.match(str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise UserError(f"{what} {text!r}: expected {SIZE_CONVENTION}")
    return int(m.group(2)), int(m.group(1))


def format_size(hw) -> str:
    """(height, width) -> ``"WIDTHxHEIGHT"``."""
    return f"{int(hw[1])}x{int(hw[0])}"


def size_arg(what: str = "size") -> Callable[[str], tuple[int, int]]:
    """argparse ``type=`` for a WIDTHxHEIGHT option (argparse reports the error, exit code 2)."""
    def _parse(text: str) -> tuple[int, int]:
        try:
            return parse_size(text, what)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    _parse.__name__ = what
    return _parse


def positive_int(text: str) -> int:
    """argparse ``type=`` for options that must be >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def add_model_options(group) -> None:
    """The options of every CLI that runs a model through :class:`~uniparser_sdk.runtime.parser.Parser`:
    device, threads, low memory and the decode overrides."""
    group.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    group.add_argument("--threads", type=positive_int, metavar="N",
                       help="CPU threads of the network (default: the CPUs this process may use -- affinity "
                            "and cgroup quota -- not the host's count)")
    group.add_argument("--low-memory", action="store_true",
                       help=".onnx: ONNX Runtime memory arena and memory patterns off (flat memory over "
                            "varied image sizes; somewhat slower)")
    group.add_argument("--ctr-score", type=float, metavar="T", help="override the model's center score threshold")
    group.add_argument("--mask-thr", type=float, metavar="T", help="override the model's mask threshold")
    group.add_argument("--cate-score-thr", type=float, metavar="T",
                       help="override the model's category score threshold")
    group.add_argument("--max-instances", type=positive_int, metavar="K",
                       help="override the model's maximum number of persons per image")


def open_parser(args, model, **kwargs):
    """``Parser(model)`` with the options of :func:`add_model_options`; a model that cannot be loaded is a
    :class:`UserError` naming it."""
    from .._lazy import MissingDependency
    from ..runtime.parser import Parser

    decode = {k: getattr(args, k) for k in ("ctr_score", "mask_thr", "cate_score_thr", "max_instances")}
    try:
        return Parser(model, device=args.device, threads=args.threads, low_memory=args.low_memory,
                      **kwargs, **{k: v for k, v in decode.items() if v is not None})
    except (MissingDependency, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    except UserInputError:
        raise
    except (ImportError, ValueError, TypeError, RuntimeError, OSError) as exc:
        raise UserError(f"cannot load model {model}: {exc}") from exc


@contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Ctrl-C inside the block is held until the block ends, then raised: a group of writes that belong
    together (one frame's video frame, JSON line and COCO entry) is done whole or not at all. Outside the
    main thread (no signal handlers there) the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def run_cli(prog: str, body: Callable[[], int | None], user_errors: tuple = (),
            interrupted: str = "interrupted") -> int:
    """Run a CLI body and map errors to exit codes: user mistakes (``UserInputError``,
    ``FileNotFoundError``, ``user_errors``) -> 2, other SDK errors -> their ``exit_code`` (1),
    Ctrl-C -> 130 (``interrupted`` is the line printed, e.g. what was kept). Unexpected exceptions
    propagate (a bug deserves its traceback)."""
    try:
        return int(body() or 0)
    except (UserInputError, FileNotFoundError, *user_errors) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UniParserError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", EXIT_FAILED))
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
