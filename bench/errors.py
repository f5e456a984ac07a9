"""The errors a user can cause; the CLI prints them as one line and exits with status 2."""

from __future__ import annotations


class BenchError(Exception):
    """Base of every error caused by bad input; anything else is a bug."""


class UsageError(BenchError, ValueError):
    """Raised when an argument is malformed or out of range (a concurrency list, a duration)."""


class UnknownNameError(BenchError, LookupError):
    """Raised when a model or scenario name is not one the suite knows."""


class OutputError(BenchError, OSError):
    """Raised when the results directory cannot be created or written."""


class ResultsError(BenchError, ValueError):
    """Raised when a run directory cannot be read back (missing or malformed files)."""
