"""Other Pythons to run points under (`--python`), and the environments that hold their runtime.

A point's process needs only the runtime set (`pip install '.[runtime]'`: trio, anyio, uvloop,
psutil), not pandas or matplotlib, so an interpreter without wheels for those (a free-threaded
build, say) can still run points. `python -m bench interpreter add PATH` makes a virtual
environment for PATH under the cache directory with that set installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import sysconfig
import tomllib
from importlib import metadata
from pathlib import Path

from bench.errors import BenchError
from bench.files.meta import Interpreter
from bench.measuring.environment import suite_root
from models import MODELS, web

# The oldest Python the models run on (asyncio.TaskGroup, ExceptionGroup, tomllib).
MIN_VERSION = (3, 11)
# What a point's process imports; uvloop may lack a build for a new interpreter (its models
# are then skipped there), the others may not.
REQUIRED = ("trio", "anyio", "psutil")
OPTIONAL = ("uvloop",)
# Asked of every interpreter: the runtime set and whatever a model requires (uvloop, the engines).
_PROBED = tuple(
    dict.fromkeys([*REQUIRED, *(m.requires for m in MODELS.values() if m.requires), *web.POOLS])
)
_DISTRIBUTION = "pyconcurrency-bench"
_PROBE = """
import importlib.util, json, sys, sysconfig
sys.path[:] = [p for p in sys.path if p]  # -c puts the working directory first: drop it
gil = getattr(sys, "_is_gil_enabled", None)
print(json.dumps({
    "version": list(sys.version_info[:3]),
    "implementation": sys.implementation.name,
    "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    "gil_enabled": True if gil is None else gil(),
    "config_args": sysconfig.get_config_var("CONFIG_ARGS") or "",
    "modules": [m for m in %r if importlib.util.find_spec(m) is not None],
}))
"""


class InterpreterError(BenchError, OSError):
    """Raised when an interpreter is missing, too old or lacks the runtime set."""


def probe(path: str) -> Interpreter:
    """Ask the interpreter at `path` what it is; InterpreterError if it cannot run points."""
    if not Path(path).exists():
        raise InterpreterError(
            f"--python {path}: no such file; give the path of a python executable"
        )
    try:
        done = subprocess.run(
            [path, "-c", _PROBE % (_PROBED,)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as exc:
        raise InterpreterError(f"--python {path}: cannot run it ({exc.strerror or exc})") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InterpreterError(f"--python {path}: not a Python 3.11 or later ({last})")
    try:
        data = json.loads(done.stdout)
    except ValueError:
        raise InterpreterError(
            f"--python {path}: not a Python (it did not answer as one)"
        ) from None
    version = tuple(data["version"])
    if version < MIN_VERSION:
        raise InterpreterError(
            f"--python {path}: Python {'.'.join(map(str, version))} is too old; "
            f"the models need {'.'.join(map(str, MIN_VERSION))} or later"
        )
    text = ".".join(map(str, version))
    return Interpreter(
        path=path,
        version=text,
        tag=text + ("t" if data["free_threaded"] else ""),
        implementation=data["implementation"],
        free_threaded=data["free_threaded"],
        gil_enabled=data["gil_enabled"],
        config_args=data["config_args"],
        modules=tuple(data["modules"]),
    )


def check_runtime(interpreter: Interpreter) -> Interpreter:
    """The interpreter, if it can import the runtime set; else how to give it one."""
    missing = [m for m in REQUIRED if m not in interpreter.modules]
    if missing:
        raise InterpreterError(
            f"--python {interpreter.path}: lacks the runtime packages ({', '.join(missing)}); "
            f"make an environment for it with `python -m bench interpreter add {interpreter.path}` "
            "and pass the python it prints"
        )
    return interpreter


def cache_dir() -> Path:
    """Where `interpreter add` keeps its environments."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / _DISTRIBUTION / "interpreters"


def runtime_requirements() -> list[str]:
    """The runtime set, as declared in pyproject.toml (the `runtime` extra): read from the
    source tree when there is one (it may be newer than the installed metadata)."""
    pyproject = suite_root() / "pyproject.toml"
    if pyproject.is_file():
        declared: list[str] = tomllib.loads(pyproject.read_text())["project"][
            "optional-dependencies"
        ]["runtime"]
        return declared
    requirements = []
    for line in metadata.requires(_DISTRIBUTION) or []:
        requirement, _, marker = line.partition(";")
        if 'extra == "runtime"' in marker or "extra == 'runtime'" in marker:
            requirements.append(requirement.strip())
    return requirements


def add(path: str, echo: bool = True) -> Interpreter:
    """Make (or refresh) an environment for the interpreter at `path` with the runtime set;
    return the environment's python."""
    base = probe(path)
    digest = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:8]
    env = cache_dir() / f"{base.tag}-{digest}"
    python = env / "bin" / "python"
    output = None if echo else subprocess.DEVNULL
    if not python.exists():
        _step(
            [path, "-m", "venv", str(env)], f"cannot make a virtual environment with {path}", output
        )
    required = [r for r in runtime_requirements() if not r.startswith(OPTIONAL)]
    _step(
        [str(python), "-m", "pip", "install", "--quiet", *required],
        f"cannot install the runtime set ({', '.join(required)}) for {path}",
        output,
    )
    for optional in (r for r in runtime_requirements() if r.startswith(OPTIONAL)):
        # uvloop may have no build for a new interpreter: its models are skipped there.
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", optional],
            stdout=output,
            stderr=subprocess.DEVNULL,
            check=False,
        )
    return check_runtime(probe(str(python)))


def _step(command: list[str], failure: str, output: int | None) -> None:
    done = subprocess.run(command, stdout=output, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InterpreterError(f"{failure}: {last}")


def cached() -> list[Interpreter]:
    """The environments `interpreter add` made, as they describe themselves now."""
    found = []
    for python in sorted(cache_dir().glob("*/bin/python")):
        try:
            found.append(probe(str(python)))
        except InterpreterError:
            continue  # a broken environment: `add` remakes it
    return found


def own() -> Interpreter:
    """The interpreter this process runs under."""
    return probe(sys.executable)


def own_tag() -> str:
    """This interpreter's tag (3.11.7, or 3.13.5t for a free-threaded build), without a probe."""
    return platform.python_version() + ("t" if sysconfig.get_config_var("Py_GIL_DISABLED") else "")
