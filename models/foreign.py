"""Models in other languages: one program each (go, node, java) that runs a point as
docs/protocol.md says; here, how each is built (once per source, cached, outside the clock) and
run, and how its result becomes the Python models' records, checked as theirs are.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.load import Background, Record, Tally, Window
from models.workload import Job, draw_job, scenario_to_dict

HERE = Path(__file__).parent
# Builds live here, one folder per language and source digest: a changed source builds anew.
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pyconcurrency-bench"


@dataclass(frozen=True)
class Language:
    """A language's toolchain: the program's source, how to build and run it ({src}: the
    source, {out}: its build folder), the tools it needs and the command that installs them."""

    source: str
    build: tuple[str, ...]
    run: tuple[str, ...]
    tools: tuple[str, ...]
    install: str

    def missing(self) -> str:
        """Why this language's points cannot run here ("" if they can)."""
        absent = [tool for tool in self.tools if shutil.which(tool) is None]
        if not absent:
            return ""
        return f"{', '.join(absent)} not found: install it with `{self.install}`"

    def command(self) -> list[str]:
        """The program's command, built first if its build is not cached."""
        src = HERE / self.source
        digest = hashlib.sha256(src.read_bytes()).hexdigest()[:16]
        out = CACHE / "builds" / f"{src.stem}-{digest}"
        if self.build and not (out / "built").exists():
            out.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f"{out.name}-", dir=out.parent))
            done = subprocess.run(
                [part.format(src=src, out=staging) for part in self.build],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                shutil.rmtree(staging, ignore_errors=True)
                raise RuntimeError(f"building {src.name} failed: {done.stderr.strip()[-2000:]}")
            (staging / "built").touch()
            try:  # another process may have built it meanwhile: either build will do
                staging.rename(out)
            except OSError:
                shutil.rmtree(staging, ignore_errors=True)
        return [part.format(src=src, out=out) for part in self.run]


LANGUAGES = {
    "go": Language(
        "go/model.go",
        ("go", "build", "-o", "{out}/model", "{src}"),
        ("{out}/model",),
        ("go",),
        "apt-get install -y golang-go",
    ),
    "node": Language(
        "node/model.js", (), ("node", "{src}"), ("node",), "apt-get install -y nodejs"
    ),
    "java": Language(
        "java/Model.java",
        ("javac", "-d", "{out}", "{src}"),
        ("java", "-cp", "{out}", "Model"),
        ("javac", "java"),
        "apt-get install -y openjdk-17-jdk-headless",
    ),
}


def spec_of(window: Window, out: Path) -> dict[str, object]:
    """The point as the program reads it (docs/protocol.md)."""
    return {
        "protocol": 1,
        "scenario": scenario_to_dict(window.scenario),
        "calibration": dataclasses.asdict(window.calibration),
        "seed": window.seed,
        "concurrency": window.concurrency,
        "warmup_s": window.warmup_s,
        "duration_s": window.duration_s,
        "ramp_s": window.ramp_s,
        "max_jobs": window.max_jobs,
        "service": None if window.service is None else list(window.service),
        "arrivals": None if window.arrivals is None else list(window.arrivals),
        "out": str(out),
    }


def run(window: Window, language: str) -> Tally:
    """Run the point in `language`'s program; its clock's start is announced as the Python
    models announce theirs, and its result is read once it has ended."""
    command = LANGUAGES[language].command()
    with tempfile.TemporaryDirectory(prefix=f"bench-{language}-") as folder:
        spec, out = Path(folder) / "spec.json", Path(folder) / "result.json"
        spec.write_text(json.dumps(spec_of(window, out)))
        with subprocess.Popen(
            [*command, str(spec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as program:
            assert program.stdout is not None and program.stderr is not None
            line = program.stdout.readline()
            if line.startswith("start "):
                window = dataclasses.replace(window, started_s=float(line.split()[1]))
                window.announce()
            errors = program.stderr.read()
            program.wait()
        if program.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"the {language} model failed (exit status {program.returncode}): "
                + (errors.strip().splitlines() or ["no error output"])[-1]
            )
        return tally_of(window, json.loads(out.read_text()))


def tally_of(window: Window, result: dict[str, Any]) -> Tally:
    """The program's result as the records and lists a Python model's tally holds."""
    jobs: dict[int, Job] = {}

    def job(index: int) -> Job:
        if index not in jobs:
            jobs[index] = draw_job(window.scenario, window.calibration, window.seed, index)
        return jobs[index]

    tally = Tally()
    for index, submitted, started, ended, checksum, outcome, taken in result["records"]:
        record: Record = (job(index), submitted, started, ended, int(checksum), outcome)
        tally.records.append(record)
        if taken is not None:
            tally.taken_s[index] = taken
    for index, stage, step, handed, ended, checksum, outcome in result["background"]:
        action = job(index).stages[stage][step]
        entry: Background = (action, handed, handed, ended, int(checksum), outcome)
        tally.background.append(entry)
    tally.handed_off = [int(i) for i in result["handed_off"]]
    tally.retried = [int(i) for i in result["retried"]]
    tally.sold = [int(p) for p in result["sold"]]
    tally.stock = [int(level) for level in result["stock"]]
    tally.discarded = [int(i) for i in result["discarded"]]
    tally.errors = [str(e) for e in result["errors"]]
    return tally
