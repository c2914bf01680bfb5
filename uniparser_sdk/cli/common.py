"""Shared CLI plumbing: user mistakes become one-line errors with exit code 2, never tracebacks."""
from __future__ import annotations

import sys
from typing import Callable


class UserError(Exception):
    """A mistake of the user (bad path, bad value): printed as one line, exit code 2."""


def run_cli(prog: str, body: Callable[[], int | None], user_errors: tuple = ()) -> int:
    try:
        return int(body() or 0)
    except (UserError, FileNotFoundError, *user_errors) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
