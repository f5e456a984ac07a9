"""What a reader needs to know about the machine and the software a run measured."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path

import psutil

from bench.files.meta import Machine, PythonBuild

_PACKAGES = (
    "trio",
    "anyio",
    "uvloop",
    "psutil",
    "pandas",
    "numpy",
    "scipy",
    "matplotlib",
    "rich",
    "requests",
    "httpx",
    "aiohttp",
)


def usable_cores() -> int:
    """CPUs this process may run on (affinity-aware), the `cores` of the bound."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def describe_machine() -> Machine:
    """The machine, for meta.json."""
    return Machine(
        cpu=_cpu_model(),
        cores=usable_cores(),
        logical_cpus=os.cpu_count(),
        memory_gb=round(psutil.virtual_memory().total / 2**30, 1),
        platform=platform.platform(),
        frequency_governor=_read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        load_average_start=load_average(),
    )


def describe_python() -> PythonBuild:
    """This interpreter, for meta.json."""
    return PythonBuild(
        version=platform.python_version(),
        implementation=platform.python_implementation(),
        build=" ".join(platform.python_build()),
        compiler=platform.python_compiler(),
        executable=sys.executable,
        gil_enabled=getattr(sys, "_is_gil_enabled", lambda: True)(),
    )


def package_versions() -> dict[str, str | None]:
    """The installed versions of what the suite runs on (None: not installed)."""
    return {name: _version(name) for name in _PACKAGES}


def load_average() -> tuple[float, ...] | None:
    """The 1, 5 and 15 minute load averages, where the platform has them."""
    return tuple(os.getloadavg()) if hasattr(os, "getloadavg") else None


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


def suite_commit() -> str | None:
    """The git commit of the suite's source tree (None when installed from a package)."""
    if not (suite_root() / ".git").exists():  # site-packages may lie inside another repository
        return None
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=suite_root(),
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def suite_root() -> Path:
    """The directory that holds the `bench` and `models` packages."""
    return Path(__file__).resolve().parents[2]


def python_command(python: str | None, *args: str) -> list[str]:
    """How to start a process of the suite under `python` (None: this interpreter).

    `-P` keeps the working directory off sys.path: a user's own `models.py` or `bench.py`, as
    every Django or FastAPI project has, must not shadow the suite's packages. The suite is
    found on PYTHONPATH instead (`child_environment`)."""
    return [python or sys.executable, "-P", *args]


def child_environment() -> dict[str, str]:
    """This process's environment, with the suite importable from any working directory."""
    root = str(suite_root())
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p),
    )


def start_watched(*args: str) -> subprocess.Popen[str]:
    """Start `python -m ...args` of the suite as a helper that watches its stdin, which only
    this process writes to: when the run dies, however it dies, the pipe closes and the helper
    stops. Its own session, so Ctrl-C goes to the run, which stops it itself."""
    return subprocess.Popen(
        python_command(None, *args),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_environment(),
        start_new_session=True,
    )
