"""The harness: sweeps, points, results, statistics and the command line.

`bench.run(...)` runs a sweep and `bench.load(path)` reads one back; both return `Results`
whose `.points` is a pandas DataFrame. Imports are deferred so the point process stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.results import Results


def run(*args: Any, **kwargs: Any) -> Results:
    """Run a sweep; see `bench.api.run`."""
    from bench import api

    return api.run(*args, **kwargs)


def load(*args: Any, **kwargs: Any) -> Results:
    """Read a run back; see `bench.api.load`."""
    from bench import api

    return api.load(*args, **kwargs)
