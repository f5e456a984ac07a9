"""Faults and hostile input, as a careless or unlucky user meets them: every case ends in a
one-line error before anything runs, a point recorded as failed or skipped, or a run that keeps
what it measured with its report and summary; never a traceback, never an orphan."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from bench import api
from bench.cli import main
from bench.errors import OutputError
from bench.files.results import load_results
from bench.files.run_dir import POINT_COLUMNS, Point, PointsWriter
from bench.measuring.point import PointSpec
from bench.measuring.sweep import Progress
from models.recording import Histogram
from models.wire import REQUEST

ROOT = Path(__file__).parent.parent
TINY_RUN = ["--transport", "sleep", "--warmup", "0", "--duration", "0.2", "--repeat", "1"]


def scenario_file(tmp_path: Path, step: str, name: str = "hostile", steps: int = 1) -> Path:
    path = tmp_path / "hostile.toml"
    body = "".join(f'\n  [[stages.steps]]\n  name = "step {i}"\n  {step}\n' for i in range(steps))
    path.write_text(f'name = "{name}"\n\n[[stages]]\nname = "only"\n{body}')
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("bench: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("step", "steps", "message"),
    [
        ('type = "io"\n  wait = { dist = "constant", mean_ms = 1e12 }', 1, r"above the most"),
        (
            'type = "io"\n  wait = { dist = "constant", mean_ms = 5 }\n  retries = 2000',
            1,
            r"retries: 2000 is above the most the suite runs, 100",
        ),
        (
            'type = "cpu"\n  cpu = { dist = "constant", mean_ms = 1 }\n'
            "  lock = { products = 1000000000, skew = 1e6 }",
            1,
            r"lock.products: 1000000000 is above the most the suite runs",
        ),
        ('type = "io"\n  wait = { dist = "constant", mean_ms = 1 }', 10_000, r"at most 100"),
        (
            'type = "io"\n  wait = { dist = "constant", mean_ms = 10 }\n  timeout_ms = 5',
            1,
            r"no job of scenario 'hostile' can succeed",
        ),
    ],
)
def test_a_hostile_scenario_is_one_line_before_anything_runs(
    step: str, steps: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = scenario_file(tmp_path, step, steps=steps)
    assert main(["run", "--scenario", str(path), "--out", str(tmp_path / "out"), *TINY_RUN]) == 2
    assert re.search(message, one_line_error(capsys))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.parametrize("flag", ["--duration", "--warmup"])
def test_a_duration_past_a_day_is_one_line(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", flag, "1e9", "--out", str(tmp_path)]) == 2
    assert "is longer than a point may run; give at most 86400 s" in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_a_rate_whose_schedule_would_not_fit_in_memory_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--load", "open", "--rate", "1e9", "--out", str(tmp_path)]) == 2
    assert "is 3e+09 arrivals; a point holds at most 1e+07" in one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_the_hint_after_a_bad_flag_names_a_real_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--bogus"]) == 2
    assert "see `python -m bench --help`" in one_line_error(capsys)
    assert main(["run", "--bogus"]) == 2
    assert "see `python -m bench run --help`" in one_line_error(capsys)


@pytest.mark.parametrize("command", ["python -m bench list", "python -m bench --help"])
def test_output_piped_to_a_reader_that_quits_ends_without_a_traceback(command: str) -> None:
    done = subprocess.run(
        f"{sys.executable} {command.removeprefix('python ')} | true",
        shell=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr


def test_a_scenario_name_with_slashes_makes_a_safe_run_folder(tmp_path: Path) -> None:
    path = scenario_file(tmp_path, 'type = "io"\n  wait = { dist = "constant", mean_ms = 1 }',
                         name="../../shop/checkout")  # fmt: skip
    out = tmp_path / "out"
    assert main(["run", "--scenario", str(path), "--models", "asyncio", "--concurrency", "1",
                 "--out", str(out), "--quiet", *TINY_RUN]) == 0  # fmt: skip
    (run,) = out.iterdir()
    assert run.name.endswith("-shop-checkout")
    assert (run / "report.html").is_file()


def test_a_run_without_an_ok_point_keeps_its_report_and_summary(tmp_path: Path) -> None:
    args = ["--models", "processes", "--concurrency", "128", "--max-processes", "64"]
    assert main(["run", *args, "--out", str(tmp_path), "--quiet", *TINY_RUN]) == 1
    (run,) = tmp_path.iterdir()
    page = (run / "report.html").read_text()
    assert "No figure: no point was measured ok" in page
    assert "above the processes cap of 64" in page
    assert (run / "summary.csv").is_file()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("results")
    args = ["--models", "sync,asyncio", "--concurrency", "1,2", "--out", str(out), "--quiet"]
    assert main(["run", *args, *TINY_RUN]) == 0
    (run,) = out.iterdir()
    return run


def copy_of(run: Path, to: Path) -> Path:
    to.mkdir()
    for name in ("meta.json", "points.csv", "histograms.jsonl"):
        (to / name).write_bytes((run / name).read_bytes())
    return to


@pytest.mark.parametrize("name", ["points.csv", "histograms.jsonl"])
def test_a_torn_last_line_is_left_out_with_a_warning(
    name: str, finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_of(finished_run, tmp_path / "run")
    text = (run / name).read_text()
    (run / name).write_text(text[: len(text) - 25])  # the crash cut the last line short
    assert main(["report", str(run)]) == 0
    captured = capsys.readouterr()
    assert f"warning: the last line of {run / name} was cut short" in captured.err
    assert len(load_results(run).points) == (3 if name == "points.csv" else 4)
    assert (run / "report.html").is_file() and (run / "summary.csv").is_file()


def test_a_run_that_stopped_before_its_first_point_still_reports(
    finished_run: Path, tmp_path: Path
) -> None:
    run = copy_of(finished_run, tmp_path / "run")
    header = (run / "points.csv").read_text().splitlines()[0]
    (run / "points.csv").write_text(header + "\n")
    (run / "histograms.jsonl").write_text("")
    assert main(["report", str(run)]) == 0
    assert "No figure" in (run / "report.html").read_text()


def test_a_failed_write_leaves_no_temporary_file_and_is_one_line(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_of(finished_run, tmp_path / "run")
    (run / "report.html").mkdir()  # nothing can replace a folder with a file
    assert main(["report", str(run)]) == 2
    assert "cannot write report.html in" in one_line_error(capsys)
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # ended, or a zombie
        return ""


def test_a_full_disk_while_a_point_is_written_is_one_line(tmp_path: Path) -> None:
    writer = PointsWriter(tmp_path)
    (tmp_path / "points.csv").unlink()
    (tmp_path / "points.csv").symlink_to("/dev/full")  # every write: ENOSPC
    point = Point(dict.fromkeys(POINT_COLUMNS, 1.0), Histogram())
    with pytest.raises(OutputError, match=r"cannot write points.csv in .*No space left on device"):
        writer.append(point)


def descendants(process: psutil.Process) -> list[psutil.Process]:
    try:
        return process.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize(
    ("model", "transport"),
    # Over the sleep transport a point does not need the service: it must end on its own.
    [("processes", "sleep"), ("asyncio", "sleep"), ("asyncio", "tcp")],
)
def test_nothing_outlives_a_killed_run(model: str, transport: str, tmp_path: Path) -> None:
    args = ["--scenario", "io-bound", "--models", model, "--concurrency", "4", "--warmup", "0"]
    args += ["--duration", "60", "--repeat", "1", "--transport", transport, "--quiet"]
    run = subprocess.Popen(
        [sys.executable, "-m", "bench", "run", *args, "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    parent = psutil.Process(run.pid)
    tree: list[psutil.Process] = []
    try:
        # Wait for the point to be under way: the service, the point process and its workers.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            tree = descendants(parent)
            points = [p for p in tree if "bench.measuring.child" in command_line(p)]
            if points and len(descendants(points[0])) >= (2 if model == "processes" else 0):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the point never started")
        tree = descendants(parent)
        serving = any(" serve " in command_line(p) for p in tree)  # the run's latency service
        assert serving == (transport == "tcp")
        run.send_signal(signal.SIGKILL)
        run.wait()
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert alive == [], [command_line(p) for p in alive]
    finally:  # a failed step must not leave processes behind to trouble later tests
        run.kill()
        run.wait()
        for process in tree:
            if process.is_running():
                process.kill()


def test_the_service_stopped_mid_request_ends_quietly() -> None:
    service = subprocess.Popen(
        [sys.executable, "-m", "bench", "serve", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert service.stdout is not None
        found = re.search(r"listening on (\S+):(\d+)", service.stdout.readline())
        assert found is not None
        with socket.create_connection((found[1], int(found[2])), timeout=10) as client:
            client.sendall(REQUEST.pack(10_000_000, 1, 0, 0))  # answer in 10 s
            time.sleep(0.5)  # the request is in flight
            service.send_signal(signal.SIGTERM)
            _, err = service.communicate(timeout=30)
    finally:
        service.kill()
        service.communicate()
    assert service.returncode == 0
    assert "Traceback" not in err, err


def test_a_fake_service_fails_its_points_with_the_reason(tmp_path: Path) -> None:
    # Something that listens and answers every request with 5 bytes, as any port might.
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer_garbage() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=garble, args=(connection,), daemon=True).start()

    def garble(connection: socket.socket) -> None:
        with connection:
            while connection.recv(65536):
                connection.sendall(b"\x07garb")

    acceptor = threading.Thread(target=answer_garbage, daemon=True)
    acceptor.start()
    try:
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        args = ["--models", "asyncio,threads", "--concurrency", "2", "--service", address]
        assert main(["run", "--scenario", "io-bound", *args, "--out", str(tmp_path), "--quiet",
                     "--warmup", "0", "--duration", "0.3", "--repeat", "1"]) == 1  # fmt: skip
    finally:  # the acceptor ends before its socket closes under it
        stop.set()
        acceptor.join()
        listener.close()
    points = load_results(next(tmp_path.iterdir())).points
    assert list(points["status"]) == ["failed", "failed"]
    assert all("is not the latency service's" in reason for reason in points["reason"])


def test_a_stopped_service_fails_its_point_and_is_replaced(tmp_path: Path) -> None:
    stopped: list[psutil.Process] = []

    def stop_the_service_during_the_second_point(i: int, total: int, spec: PointSpec) -> None:
        if i == 1:  # the first point started the service
            (service,) = [p for p in descendants(psutil.Process()) if " serve " in command_line(p)]
            # SIGSTOP once the point is under way: it accepts connections and never answers.
            threading.Timer(1.0, service.suspend).start()
            stopped.append(service)

    # The window (14 s) outlasts the stall limit (10 s and 20 critical paths: 11 s): the point
    # ends when its jobs stop ending, long before its hard timeout (88 s).
    results = api.run(
        "io-bound", ["asyncio"], [2], warmup_s=0.0, duration_s=14.0, repeat=3, out=tmp_path,
        progress=Progress(on_start=stop_the_service_during_the_second_point),
    )  # fmt: skip
    first, second, third = results.points.to_dict("records")
    assert first["status"] == "ok"
    assert second["status"] == "failed"
    assert "stopped answering during the point" in second["reason"]
    assert "no job ended for 1" in second["reason"]  # the stall limit, not the hard timeout
    assert third["status"] == "ok"  # on a new service
    assert not stopped[0].is_running()
