"""What a reader needs to know about the machine and the software a run measured."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from models import processes_model

_PACKAGES = ("trio", "anyio", "uvloop", "psutil", "pandas", "numpy", "scipy", "matplotlib", "rich")


def usable_cores() -> int:
    """CPUs this process may run on (affinity-aware), the `cores` of the bound."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def describe_environment() -> dict[str, Any]:
    """Machine, interpreter and package versions, for meta.json."""
    return {
        "machine": {
            "cpu": _cpu_model(),
            "cores": usable_cores(),
            "logical_cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "platform": platform.platform(),
            "frequency_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
            "load_average_start": load_average(),
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "build": " ".join(platform.python_build()),
            "compiler": platform.python_compiler(),
            "executable": sys.executable,
            "gil_enabled": getattr(sys, "_is_gil_enabled", lambda: True)(),
        },
        "packages": {name: _version(name) for name in _PACKAGES},
        "processes_start_method": processes_model.START_METHOD,
        "suite_commit": _git_commit(),
    }


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, where the platform has them."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def child_environment() -> dict[str, str]:
    """This process's environment, with the suite importable from any working directory."""
    root = str(Path(__file__).resolve().parent.parent)
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
    )
