"""The workload spec shared by every model: scenarios, per-job draws, the CPU kernels, checksums."""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

DistKind = Literal["constant", "uniform", "exponential", "lognormal"]
CpuKind = Literal["python", "native"]

_MASK = (1 << 64) - 1
# Knuth's MMIX LCG: the python kernel's state update, and the base of its cheap jump-ahead check.
_LCG_A = 6364136223846793005
_LCG_C = 1442695040888963407
# hashlib releases the GIL for buffers over 2 KiB, so 16 KiB blocks make the native kernel
# run truly in parallel while staying fine-grained enough for sub-millisecond steps.
_NATIVE_BLOCK = bytes(range(256)) * 64


# The standard normal's 99th percentile: a lognormal's p99 is exp(mu + Z99 * sigma).
_Z99 = 2.3263478740408408


@dataclass(frozen=True)
class Dist:
    """A duration distribution in milliseconds.

    `constant` and `exponential` use `mean_ms`; `uniform` uses `low_ms` and `high_ms`;
    `lognormal` is given by its median `p50_ms` and its tail `p99_ms`.
    """

    kind: DistKind
    mean_ms: float = 0.0
    low_ms: float = 0.0
    high_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    def expected_ms(self) -> float:
        """The mean duration."""
        if self.kind == "uniform":
            return (self.low_ms + self.high_ms) / 2
        if self.kind == "lognormal":
            return math.exp(math.log(self.p50_ms) + self._sigma() ** 2 / 2)
        return self.mean_ms

    def draw_ms(self, rng: random.Random) -> float:
        """Draw one duration."""
        if self.kind == "uniform":
            return rng.uniform(self.low_ms, self.high_ms)
        if self.kind == "lognormal":
            return rng.lognormvariate(math.log(self.p50_ms), self._sigma())
        if self.kind == "constant" or self.mean_ms == 0:
            return self.mean_ms
        return rng.expovariate(1.0 / self.mean_ms)

    def _sigma(self) -> float:
        return math.log(self.p99_ms / self.p50_ms) / _Z99


@dataclass(frozen=True)
class IoStep:
    """Waiting on another system: a payment gateway, a database, a mail relay."""

    name: str
    wait: Dist
    request_bytes: int = 0
    response_bytes: int = 0


@dataclass(frozen=True)
class CpuStep:
    """Calibrated CPU work; `python` holds the GIL, `native` releases it."""

    name: str
    cpu: Dist
    kind: CpuKind = "python"


Step = IoStep | CpuStep


@dataclass(frozen=True)
class Stage:
    """Steps that may run at the same time; a job's stages run in order."""

    name: str
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Scenario:
    """A named job shape."""

    name: str
    description: str
    stages: tuple[Stage, ...]

    def critical_path_ms(self) -> float:
        """Mean length of the longest chain: stages in series, the steps of a stage in parallel."""
        return sum(max(_mean_ms(step) for step in stage.steps) for stage in self.stages)

    def cpu_ms(self) -> float:
        """Mean CPU work per job."""
        return sum(
            step.cpu.expected_ms()
            for stage in self.stages
            for step in stage.steps
            if isinstance(step, CpuStep)
        )

    def max_width(self) -> int:
        """The most steps any stage runs at once."""
        return max(len(stage.steps) for stage in self.stages)


def _mean_ms(step: Step) -> float:
    return step.wait.expected_ms() if isinstance(step, IoStep) else step.cpu.expected_ms()


@dataclass(frozen=True)
class Calibration:
    """How much kernel work makes one millisecond of CPU on this machine."""

    python_iterations_per_ms: float
    native_blocks_per_ms: float


@dataclass(frozen=True, slots=True)
class Wait:
    """One drawn I/O wait of a job."""

    seconds: float
    request_bytes: int
    response_bytes: int


@dataclass(frozen=True, slots=True)
class Compute:
    """One drawn piece of CPU work of a job."""

    kind: CpuKind
    units: int
    seed: int


Action = Wait | Compute


@dataclass(frozen=True, slots=True)
class Job:
    """Job `index` with every random draw made: the same for every model."""

    index: int
    stages: tuple[tuple[Action, ...], ...]


def draw_job(scenario: Scenario, calibration: Calibration, seed: int, index: int) -> Job:
    """Draw job `index`; the result depends only on (scenario, calibration, seed, index)."""
    # A string seed goes through SHA-512, so the draw is stable across processes and interpreters.
    rng = random.Random(f"{seed}:{index}")
    return Job(
        index,
        tuple(
            tuple(_draw_action(step, calibration, rng) for step in stage.steps)
            for stage in scenario.stages
        ),
    )


def _draw_action(step: Step, calibration: Calibration, rng: random.Random) -> Action:
    if isinstance(step, IoStep):
        return Wait(step.wait.draw_ms(rng) / 1000.0, step.request_bytes, step.response_bytes)
    rate = (
        calibration.python_iterations_per_ms
        if step.kind == "python"
        else calibration.native_blocks_per_ms
    )
    return Compute(step.kind, round(step.cpu.draw_ms(rng) * rate), rng.getrandbits(64))


def burn_python(iterations: int, seed: int) -> int:
    """Pure-Python work that holds the GIL; returns the LCG state after `iterations` steps."""
    x = seed
    for _ in range(iterations):
        x = (x * _LCG_A + _LCG_C) & _MASK
    return x


def burn_native(blocks: int) -> int:
    """Hash `blocks` blocks with the GIL released; returns the first 8 bytes of the digest."""
    digest = hashlib.sha256()
    for _ in range(blocks):
        digest.update(_NATIVE_BLOCK)
    return int.from_bytes(digest.digest()[:8], "big")


def compute(action: Compute) -> int:
    """Run one piece of CPU work with the right kernel."""
    if action.kind == "python":
        return burn_python(action.units, action.seed)
    return burn_native(action.units)


def io_result(action: Wait) -> int:
    """What an I/O step contributes to the checksum: the bytes of its response."""
    return action.response_bytes


def combine(values: Iterable[int]) -> int:
    """Fold step results (in spec order) into one checksum."""
    acc = 0
    for value in values:
        acc = ((acc * 1_000_003) ^ value) & _MASK
    return acc


@dataclass
class Verifier:
    """Computes each job's expected checksum without redoing its CPU work."""

    _native: list[int] = field(default_factory=lambda: [burn_native(0)])
    _state: hashlib._Hash = field(default_factory=hashlib.sha256)

    def expected(self, job: Job) -> int:
        """The checksum a correct run of `job` returns."""
        return combine(combine(self._expected_action(a) for a in stage) for stage in job.stages)

    def _expected_action(self, action: Action) -> int:
        if isinstance(action, Wait):
            return io_result(action)
        if action.kind == "python":
            return _lcg_skip(action.seed, action.units)
        # The digest after k blocks is a prefix of the digest after k+1: extend once, reuse.
        while len(self._native) <= action.units:
            self._state.update(_NATIVE_BLOCK)
            self._native.append(int.from_bytes(self._state.copy().digest()[:8], "big"))
        return self._native[action.units]


def _lcg_skip(x: int, steps: int) -> int:
    """The LCG state after `steps` steps from `x`, in O(log steps) (Brown, 1994)."""
    mult, plus = 1, 0
    cur_mult, cur_plus = _LCG_A, _LCG_C
    while steps:
        if steps & 1:
            mult = (mult * cur_mult) & _MASK
            plus = (plus * cur_mult + cur_plus) & _MASK
        cur_plus = ((cur_mult + 1) * cur_plus) & _MASK
        cur_mult = (cur_mult * cur_mult) & _MASK
        steps >>= 1
    return (mult * x + plus) & _MASK


def calibrate(trials: int = 25, target_ms: float = 10.0) -> Calibration:
    """Measure kernel speed in CPU time (thread time), keeping the fastest of several trials.

    On a shared machine a trial can run at half speed (a busy SMT sibling, a stolen vCPU) and
    still count as CPU time; the fastest trial is the machine's own speed, so a job's CPU work
    is never less than its nominal `cpu_ms` and no model can beat the bound through calibration.
    """
    # Trials right after idling ran up to a third slower here (7.0k vs 11k steps/ms): spin first.
    spin_until = time.perf_counter() + 0.3
    while time.perf_counter() < spin_until:
        burn_python(10_000, 1)
    return Calibration(
        python_iterations_per_ms=_rate(lambda n: burn_python(n, 1), 20_000, trials, target_ms),
        native_blocks_per_ms=_rate(burn_native, 64, trials, target_ms),
    )


def _rate(kernel: Callable[[int], int], start: int, trials: int, target_ms: float) -> float:
    units = start
    while _cpu_ms(kernel, units) < target_ms / 4:  # grow until one trial is long enough to time
        units *= 2
    best = 0.0
    for _ in range(trials):
        best = max(best, units / max(_cpu_ms(kernel, units), 1e-6))
        time.sleep(0.02)  # spread the trials, so one busy spell of a neighbour cannot cover all
    return best


def _cpu_ms(kernel: Callable[[int], int], units: int) -> float:
    start = time.thread_time()
    kernel(units)
    return (time.thread_time() - start) * 1000.0
