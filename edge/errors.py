"""Typed errors. Each says what went wrong, where, and what to do next.

The CLI turns any AgegateError into a one-paragraph message and exit code 1
(2 for usage errors), never a traceback.
"""
from __future__ import annotations


class AgegateError(Exception):
    """Base of every error that agegate raises on purpose."""

    exit_code = 1


class UsageError(AgegateError):
    exit_code = 2


class DatasetError(AgegateError):
    """A data set cannot be read at all (not: one bad record, which is a Problem)."""


class ModelError(AgegateError):
    """A model file is missing, truncated, or not what its metadata says."""


class MissingExtraError(AgegateError):
    """A command needs an optional dependency group that is not installed."""

    def __init__(self, extra: str, module: str):
        super().__init__(
            f"this command needs the '{extra}' extra ({module} is not installed).\n"
            f"Install it with:  pip install 'agegate[{extra}]'   (from a checkout: pip install -e '.[{extra}]')"
        )


class BundleError(AgegateError):
    """A bundle failed verification; nothing was installed."""


class ConfigError(AgegateError):
    """The box config is invalid; names the key path."""


def error_json(kind: str, message: str, exit_code: int) -> dict:
    """An error as a command given --json prints it (stdout; the message also goes to stderr): what went
    wrong (the error's class, e.g. BundleError; UsageError for a bad option) and the exit code, so a script
    that drives a fleet of boxes reads both."""
    return {"ok": False, "error": kind, "message": message, "exit_code": exit_code}
