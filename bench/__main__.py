"""`python -m bench` and the `pyconcurrency-bench` script: the command line."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> int:
    """Run the command line, with the suite's own packages ahead of a user's namesakes."""
    _drop_working_directory()
    from bench.cli import main as cli  # only now: `models` must resolve to the suite's

    try:
        return cli()
    except BrokenPipeError:
        # The reader went away (`| head`): nothing more to print, least of all a traceback.
        # Python's own flush at exit would fail again, so stdout now goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _drop_working_directory() -> None:
    """`python -m` puts the working directory first on sys.path, where a project's own
    `models.py` (as every Django or FastAPI project has) would shadow the suite's `models`.
    Keep it only when it is where the suite itself lives (a source checkout)."""
    here = Path.cwd().resolve()
    if here != Path(__file__).resolve().parents[1]:
        sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != here]


if __name__ == "__main__":
    sys.exit(main())
