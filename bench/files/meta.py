"""meta.json as typed records: what a run measured, on what, and how; each with a to/from pair.

`from_dict` accepts every schema so far (see `bench.files.results`): a key an older run lacks
takes the value that run implied (one interpreter, no micro-benchmarks, a closed load).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from models.workload import Calibration, Scenario, scenario_from_dict, scenario_to_dict

_Record = TypeVar("_Record")


@dataclass(frozen=True)
class Machine:
    """The machine a run measured (`cores`: those this process may run on, the bound's)."""

    cpu: str = "?"
    cores: int = 1
    logical_cpus: int | None = None
    memory_gb: float | None = None
    platform: str = "?"
    frequency_governor: str | None = None
    load_average_start: tuple[float, ...] | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Machine:
        """The inverse of `dataclasses.asdict`."""
        load = data.get("load_average_start")
        return _known(cls, data, load_average_start=None if load is None else tuple(load))


@dataclass(frozen=True)
class PythonBuild:
    """The interpreter the run's parent process ran under."""

    version: str = "?"
    implementation: str = "?"
    build: str = ""
    compiler: str = ""
    executable: str = ""
    gil_enabled: bool = True

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PythonBuild:
        """The inverse of `dataclasses.asdict`."""
        return _known(cls, data)


@dataclass(frozen=True)
class Interpreter:
    """A Python that points can run under, as it describes itself."""

    path: str
    version: str  # e.g. 3.13.5
    tag: str  # the version, with a "t" for a free-threaded build: 3.13.5t
    implementation: str
    free_threaded: bool
    gil_enabled: bool
    config_args: str
    modules: tuple[str, ...]  # which runtime packages it can import

    def to_dict(self) -> dict[str, Any]:
        """For meta.json."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interpreter:
        """The inverse of `to_dict`."""
        return _known(cls, data, modules=tuple(data["modules"]))


@dataclass(frozen=True)
class MicroCost:
    """One cost of one runtime: `name` is what was measured, `note` exactly how."""

    name: str
    runtime: str
    value: float
    unit: str
    note: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MicroCost:
        """The inverse of `dataclasses.asdict`."""
        return _known(cls, data, value=float(data["value"]))


@dataclass(frozen=True)
class RunConfig:
    """How the run was asked to measure: the load, the levels, the windows, the caps."""

    load: str = "closed"
    rates: tuple[float, ...] | str | None = None  # open load: the rates, or "auto"
    arrivals: str | None = None
    slo_ms: float | None = None  # the p99 target (closed: the verdict's; older runs: none)
    transport: str = "sleep"
    service: str | None = None  # "local", the user's HOST:PORT, or None without one
    models: tuple[str, ...] = ()
    concurrency: tuple[int, ...] = ()
    warmup_s: float | None = 0.0  # None: each point's own (a budget planned them)
    duration_s: float | None = 0.0
    budget_s: float | None = None  # the run's time budget, when it had one
    seed: int = 0
    repeat: int = 1
    max_processes: int | None = None
    max_threads: int | None = None
    point_timeout_s: float | None = None
    cores: int | None = None  # the bound's cores; None in runs that did not record them

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunConfig:
        """The inverse of `dataclasses.asdict`."""
        rates = data.get("rates")
        return _known(
            cls,
            data,
            rates=tuple(rates) if isinstance(rates, list) else rates,
            models=tuple(data.get("models", ())),
            concurrency=tuple(data.get("concurrency", ())),
        )


@dataclass(frozen=True)
class RunMeta:
    """Everything meta.json says of a run; `to_dict` is the file's JSON."""

    scenario: Scenario
    schema_version: int
    created: str = ""
    finished: str | None = None  # None while the run goes on, or when it was interrupted
    command: tuple[str, ...] = ()
    suite_version: str | None = None
    suite_commit: str | None = None
    machine: Machine = field(default_factory=Machine)
    python: PythonBuild = field(default_factory=PythonBuild)
    packages: Mapping[str, str | None] = field(default_factory=dict)
    processes_start_method: str | None = None
    interpreters: tuple[Interpreter, ...] = ()
    calibration: Calibration | None = None
    micro: tuple[MicroCost, ...] | None = None  # None: not measured
    config: RunConfig = field(default_factory=RunConfig)
    engines: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # The HTTP client libraries of the run's points: each one's version and the defaults the
    # suite changed (its pool's size).
    http_clients: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    load_average_end: tuple[float, ...] | None = None
    # The budget that would have bought every level's jobs (closed runs with a budget).
    budget_advice_s: float | None = None

    @property
    def cores(self) -> int:
        """The cores of the bound: as configured, else the machine's."""
        return self.config.cores or self.machine.cores

    def costs(self) -> dict[tuple[str, str], float]:
        """The micro-benchmarks as (name, runtime) -> value (empty when not measured)."""
        return {(m.name, m.runtime): m.value for m in self.micro or ()}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of meta.json."""
        data = dataclasses.asdict(self)
        data["scenario"] = scenario_to_dict(self.scenario)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunMeta:
        """The inverse of `to_dict`, for every schema version."""
        micro = data.get("micro")
        load_end = data.get("load_average_end")
        calibration = data.get("calibration")
        return _known(
            cls,
            data,
            scenario=scenario_from_dict(data["scenario"]),
            command=tuple(data.get("command", ())),
            machine=Machine.from_dict(data.get("machine", {})),
            python=PythonBuild.from_dict(data.get("python", {})),
            interpreters=tuple(Interpreter.from_dict(i) for i in data.get("interpreters", ())),
            calibration=None if calibration is None else Calibration(**calibration),
            micro=None if micro is None else tuple(MicroCost.from_dict(m) for m in micro),
            config=RunConfig.from_dict(data.get("config", {})),
            load_average_end=None if load_end is None else tuple(load_end),
        )


def _known(cls: type[_Record], data: Mapping[str, Any], **converted: Any) -> _Record:
    """`cls` from the keys of `data` it has fields for (a newer writer's extra keys are left
    out), with the `converted` values in place of the raw ones."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names} | converted)
