"""The harness: sweeps, points, results, statistics and the command line.

`bench.run(...)` runs a sweep and `bench.load(path)` reads one back; both return `Results`
whose `.points` is a pandas DataFrame and `.meta` a `RunMeta`. `bench.report(results)` writes
a run's report.html, and `bench.plots` draws its figures. The sub-packages are the pipeline:
`measuring`, `analysing`, `presenting`, and the `files` between them. Imports are deferred so
the point process stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.version import __version__

if TYPE_CHECKING:
    from bench.files.results import Results

__all__ = ["__version__", "load", "report", "run"]


def run(*args: Any, **kwargs: Any) -> Results:
    """Run a sweep; see `bench.api.run`."""
    from bench import api

    return api.run(*args, **kwargs)


def load(*args: Any, **kwargs: Any) -> Results:
    """Read a run back; see `bench.api.load`."""
    from bench import api

    return api.load(*args, **kwargs)


def report(results: Results) -> Path:
    """Write (or rewrite) the run's report.html and return its path."""
    from bench.presenting.report import write_report

    return write_report(results)
