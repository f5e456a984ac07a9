"""The suite's version: the one source of `bench.__version__`, the package's and meta.json's."""

from __future__ import annotations

__version__ = "0.1.0"
