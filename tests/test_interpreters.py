"""Points under another Python: found, checked, given an environment, and recorded."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import api
from bench.cli import main
from bench.files.meta import Interpreter
from bench.measuring import interpreters
from bench.measuring.interpreters import InterpreterError

PYENV = Path.home() / ".pyenv" / "versions"
OTHER = sorted(PYENV.glob("3.1[23]*/bin/python"))  # pyenv's 3.12 and 3.13 on this kind of machine
OLD = sorted(PYENV.glob("3.10*/bin/python"))


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/no/such/python", r"--python /no/such/python: no such file"),
        ("/bin/echo", r"--python /bin/echo: not a Python"),
        *[(str(p), r"is too old; the models need 3.11 or later") for p in OLD[:1]],
    ],
)
def test_bad_python_is_one_line_and_status_2(
    path: str, message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["run", "--python", path, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and err.count("\n") == 1
    assert __import__("re").search(message, err), err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not OTHER, reason="no second CPython (pyenv 3.12 or 3.13) on this machine")
def test_an_interpreter_without_the_runtime_set_says_how_to_get_one() -> None:
    bare = interpreters.probe(str(OTHER[0]))
    if set(interpreters.REQUIRED) <= set(bare.modules):
        pytest.skip(f"{OTHER[0]} already has the runtime set")
    with pytest.raises(InterpreterError, match=r"lacks the runtime packages .*interpreter add"):
        interpreters.check_runtime(bare)


@pytest.fixture(scope="module")
def other_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Interpreter]:
    """An environment for pyenv's other CPython, made as `bench interpreter add` makes it."""
    if not OTHER:
        pytest.skip("no second CPython (pyenv 3.12 or 3.13) on this machine")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        made = interpreters.add(str(OTHER[0]), echo=False)
        assert [p.path for p in interpreters.cached()] == [made.path]
        yield made


def test_a_point_under_another_interpreter_records_its_version(
    other_env: Interpreter, tmp_path: Path
) -> None:
    assert other_env.version != ".".join(map(str, sys.version_info[:3]))
    results = api.run(
        scenario="io-bound",
        models=["threads", "asyncio"],
        concurrency=[2],
        warmup_s=0.0,
        duration_s=0.3,
        repeat=1,
        transport="sleep",
        python=[other_env.path],
        out=tmp_path,
    )
    assert list(results.points["status"]) == ["ok", "ok"]
    assert set(results.points["interpreter"]) == {other_env.tag}
    meta = json.loads((results.run_dir / "meta.json").read_text())
    (described,) = meta["interpreters"]
    assert described["version"] == other_env.version
    assert described["path"] == other_env.path
