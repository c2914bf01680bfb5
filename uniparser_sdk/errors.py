"""The SDK's one exception base class, and the exit codes of every CLI.

Every error the SDK raises on purpose derives from :class:`UniParserError`, so ``except UniParserError``
catches them all; each also keeps the built-in base users already catch (``ValueError`` for bad values,
``FileNotFoundError`` for missing files, ``RuntimeError`` for failures, ``ImportError`` for a missing
optional dependency).

CLI exit codes (:func:`uniparser_sdk.cli.common.run_cli`):

====  ==========================================================================
0     success
1     the job failed (export parity, a build, a runtime failure)
2     usage or input error (bad option, missing file, unreadable image/model)
130   interrupted (Ctrl-C); outputs written so far are complete and valid
====  ==========================================================================
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UniParserError(Exception):
    """Base class of every error the UniParser SDK raises on purpose."""

    #: the CLI exit code this error maps to (usage/input errors: 2; failures: 1)
    exit_code = EXIT_FAILED


class UserInputError(UniParserError, ValueError):
    """A mistake in what the user passed (a value, a path, a file): one line, exit code 2."""

    exit_code = EXIT_USAGE
