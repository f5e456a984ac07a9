"""The workload spec shared by every model: scenarios, per-job draws, the CPU kernels, checksums."""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

DistKind = Literal["constant", "uniform", "exponential", "lognormal"]
CpuKind = Literal["python", "native", "json"]
Via = Literal["http", "service", "postgres"]  # where an I/O step goes (`IoStep`)

_MASK = (1 << 64) - 1
# Knuth's MMIX LCG: the python kernel's state update, and the base of its cheap jump-ahead check.
_LCG_A = 6364136223846793005
_LCG_C = 1442695040888963407
# hashlib releases the GIL for buffers over 2 KiB, so 16 KiB blocks make the native kernel
# run truly in parallel while staying fine-grained enough for sub-millisecond steps.
_NATIVE_BLOCK = bytes(range(256)) * 64
# The json kernel's order: four items, and a receipt whose every field is padded to its width.
_ORDER_ITEMS = 4
_RECEIPT = "Order {id:020d}\nCustomer {email}\n{lines}\nTotal {total:>10.2f} {currency}\n"
_LINE = "{quantity:02d} x {sku} at {price:>8.2f}"
_RECEIPT_BYTES = len(
    _RECEIPT.format(
        id=0,
        email="c00000@example.com",
        lines="\n".join([_LINE.format(quantity=1, sku="SKU-00000", price=0.0)] * _ORDER_ITEMS),
        total=0.0,
        currency="EUR",
    )
)


# The standard normal's 99th percentile: a lognormal's p99 is exp(mu + Z99 * sigma).
_Z99 = 2.3263478740408408
# SplitMix64's increment: 2^64 over the golden ratio, odd.
_GOLDEN = 0x9E3779B97F4A7C15


class Draws(Protocol):
    """What a duration is drawn from: a job's `Stream`, or `random.Random` where the draws
    stay inside Python (the bound's estimates, an open load's arrivals)."""

    def random(self) -> float: ...
    def uniform(self, a: float, b: float) -> float: ...
    def expovariate(self, lambd: float) -> float: ...
    def lognormvariate(self, mu: float, sigma: float) -> float: ...


def _mix64(z: int) -> int:
    """SplitMix64's finaliser (Steele, Lea and Flood, 2014): a bijection of 64-bit words."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


class Stream:
    """The random numbers of one job: SplitMix64 from a state mixed out of the run's seed and
    the job's index, then the transforms below. Only 64-bit words, additions, shifts, xors and
    products mod 2^64, and libm's log, exp, sqrt and cos, so any language draws the same job i;
    and it starts in O(1), where a Mersenne Twister seeds 624 words (4.6 us a job)."""

    __slots__ = ("state",)

    def __init__(self, seed: int, index: int) -> None:
        self.state = _mix64(_mix64(seed & _MASK) ^ (index & _MASK))

    def bits(self) -> int:
        """The next 64-bit word: `_mix64` of the advanced state, written out (a call per draw
        is a fifth of a draw's time)."""
        z = self.state = (self.state + _GOLDEN) & _MASK
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
        return z ^ (z >> 31)

    def random(self) -> float:
        """Uniform on [0, 1): the next word's top 53 bits."""
        return (self.bits() >> 11) * 2.0**-53

    def uniform(self, a: float, b: float) -> float:
        """Uniform on [a, b)."""
        return a + (b - a) * self.random()

    def expovariate(self, lambd: float) -> float:
        """Exponential of rate `lambd`, by inversion."""
        return -math.log(1.0 - self.random()) / lambd

    def lognormvariate(self, mu: float, sigma: float) -> float:
        """exp(mu + sigma z), z a standard normal by Box-Muller (the cosine of two uniforms)."""
        radius = math.sqrt(-2.0 * math.log(1.0 - self.random()))
        return math.exp(mu + sigma * radius * math.cos(2.0 * math.pi * self.random()))

    def choice(self, cum_weights: Sequence[float]) -> int:
        """An index drawn with probability in proportion to its weight, from the weights'
        running sums: the first sum above a uniform share of the total."""
        return bisect.bisect_right(
            cum_weights, self.random() * cum_weights[-1], 0, len(cum_weights) - 1
        )


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

    def draw_ms(self, rng: Draws) -> float:
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

    def tail_ms(self, limit_ms: float) -> float:
        """P(duration > limit_ms)."""
        if self.kind == "uniform":
            if self.high_ms <= self.low_ms:
                return float(self.low_ms > limit_ms)
            return min(1.0, max(0.0, (self.high_ms - limit_ms) / (self.high_ms - self.low_ms)))
        if self.kind == "lognormal":
            return 1.0 - _phi((math.log(limit_ms) - math.log(self.p50_ms)) / self._sigma())
        if self.kind == "constant" or self.mean_ms == 0:
            return float(self.mean_ms > limit_ms)
        return math.exp(-limit_ms / self.mean_ms)

    def capped_mean_ms(self, limit_ms: float) -> float:
        """E[min(duration, limit_ms)]: the mean time an attempt takes under a timeout."""
        if self.kind == "uniform":
            low, high = self.low_ms, min(self.high_ms, limit_ms)
            if high <= low:
                return min(self.low_ms, limit_ms)
            inside = (high - low) / (self.high_ms - self.low_ms)
            return inside * (low + high) / 2 + self.tail_ms(limit_ms) * limit_ms
        if self.kind == "lognormal":
            mu, sigma = math.log(self.p50_ms), self._sigma()
            below = _phi((math.log(limit_ms) - mu - sigma**2) / sigma)
            return self.expected_ms() * below + limit_ms * self.tail_ms(limit_ms)
        if self.kind == "constant" or self.mean_ms == 0:
            return min(self.mean_ms, limit_ms)
        return self.mean_ms * (1.0 - math.exp(-limit_ms / self.mean_ms))


def _phi(z: float) -> float:
    """The standard normal's distribution function."""
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


@dataclass(frozen=True)
class Lock:
    """A shared resource updated under a lock: the stock of one product per job.

    The product is drawn per job with Zipf popularity (`skew` 0 is uniform; 1 makes the most
    popular of 100 products about a fifth of all orders), so the hot products' locks contend.
    """

    products: int = 100
    skew: float = 1.0

    def hottest_share(self) -> float:
        """The share of jobs that lock the most popular product."""
        return _popularity(self.products, self.skew)[0] / _popularity(self.products, self.skew)[-1]


@functools.cache
def _popularity(products: int, skew: float) -> tuple[float, ...]:
    """Cumulative Zipf weights of products 0..products-1."""
    return tuple(itertools.accumulate(1.0 / (rank**skew) for rank in range(1, products + 1)))


@dataclass(frozen=True)
class IoStep:
    """Waiting on another system: a payment gateway, a database, a mail relay.

    An attempt fails with probability `fail_rate` (the service answers with an error after its
    delay) or times out after `timeout_ms`; `retries` more attempts follow, each after a pause of
    `backoff_ms` doubled per retry. Over `--transport http`, a step `via` "http" is an HTTP
    request through the point's client library, one `via` "service" a round trip of the wire
    protocol (an internal service's own). With the stock in PostgreSQL (`--transport
    postgres`), a step `via` "postgres" is a transaction through the point's database driver
    (`models.db`); otherwise it too is a round trip of the wire protocol.
    """

    name: str
    wait: Dist
    request_bytes: int = 0
    response_bytes: int = 0
    fail_rate: float = 0.0
    retries: int = 0
    backoff_ms: float = 0.0
    timeout_ms: float | None = None
    lock: Lock | None = None
    background: bool = False
    via: Via = "http"

    def mean_ms(self) -> float:
        """Mean time of the step, retries and pauses included."""
        if self.timeout_ms is None:
            attempt_ms = self.wait.expected_ms()
        else:
            attempt_ms = self.wait.capped_mean_ms(self.timeout_ms)
        # Attempt k+1 happens with probability redo**k, after a pause of backoff * 2**(k-1).
        return sum(
            self._redo() ** k * (attempt_ms + (self.backoff_ms * 2 ** (k - 1) if k else 0.0))
            for k in range(self.retries + 1)
        )

    def success_rate(self) -> float:
        """The chance that some attempt succeeds."""
        return 1.0 - self._redo() ** (self.retries + 1)

    def _redo(self) -> float:
        """The chance that an attempt times out or fails."""
        timed_out = 0.0 if self.timeout_ms is None else self.wait.tail_ms(self.timeout_ms)
        return timed_out + (1.0 - timed_out) * self.fail_rate


@dataclass(frozen=True)
class CpuStep:
    """Calibrated CPU work; `python` holds the GIL, `native` releases it, `json` holds it and
    allocates as a request handler does (`burn_json`)."""

    name: str
    cpu: Dist
    kind: CpuKind = "python"
    lock: Lock | None = None
    background: bool = False

    def mean_ms(self) -> float:
        """Mean CPU time of the step."""
        return self.cpu.expected_ms()

    def success_rate(self) -> float:
        """CPU work always succeeds."""
        return 1.0


Step = IoStep | CpuStep


@dataclass(frozen=True)
class Stage:
    """Steps that may run at the same time; a job's stages run in order."""

    name: str
    steps: tuple[Step, ...]

    def mean_ms(self) -> float:
        """Mean time until the job can go on: the longest of the steps it waits for."""
        steps = tuple(step for step in self.steps if not step.background)
        if len(steps) <= 1:  # one step (or none: all in the background) has an exact mean
            return sum(step.mean_ms() for step in steps)
        return _mean_longest_ms(steps)


# Draws behind the mean of a stage's longest step: its standard error stays well under 1%.
_STAGE_SAMPLES = 20_000


@functools.cache
def _mean_longest_ms(steps: tuple[Step, ...]) -> float:
    """E[max] of steps run at once, by simulation with a fixed seed: the max of the means would
    understate it (eight 30 ms calls at once take 82 ms on average, not 30)."""
    rng = random.Random(0)
    return statistics.fmean(
        max(_sample_ms(step, rng) for step in steps) for _ in range(_STAGE_SAMPLES)
    )


def _sample_ms(step: Step, rng: random.Random) -> float:
    """One draw of a step's time, retries and pauses included."""
    if isinstance(step, CpuStep):
        return step.cpu.draw_ms(rng)
    total = 0.0
    for k in range(step.retries + 1):
        total += step.backoff_ms * 2 ** (k - 1) if k else 0.0
        duration = step.wait.draw_ms(rng)
        if step.timeout_ms is not None and duration > step.timeout_ms:
            total += step.timeout_ms
        else:
            total += duration
            if rng.random() >= step.fail_rate:
                break
    return total


@dataclass(frozen=True)
class Scenario:
    """A named job shape."""

    name: str
    description: str
    stages: tuple[Stage, ...]

    def critical_path_ms(self) -> float:
        """Mean time of a job on a machine with no overhead: stages in series, the steps of a
        stage in parallel. Background steps are not on it: the user does not wait for them."""
        return sum(stage.mean_ms() for stage in self.stages)

    def cpu_ms(self) -> float:
        """Mean CPU work per job, background steps included."""
        return sum(step.mean_ms() for step in self.steps() if isinstance(step, CpuStep))

    def success_rate(self) -> float:
        """The share of jobs that succeed: every step the job waits for must."""
        return math.prod(step.success_rate() for step in self.steps() if not step.background)

    def max_width(self) -> int:
        """The most steps any stage runs while its job waits (background steps not counted)."""
        return max(sum(not s.background for s in stage.steps) for stage in self.stages)

    def max_io_width(self) -> int:
        """The most I/O steps any stage runs at once: the connections one job may hold."""
        return max(sum(isinstance(s, IoStep) for s in stage.steps) for stage in self.stages)

    def background_steps(self) -> int:
        """How many steps of a job run in the background."""
        return sum(step.background for step in self.steps())

    def handoff_workers(self, users: int) -> int:
        """Threads enough for the background work of `users` users, by Little's law: each user
        hands off background_ms of work per critical path, and a pool twice that size keeps up
        with the bursts. A pool starts its threads only as work comes."""
        background_ms = sum(step.mean_ms() for step in self.steps() if step.background)
        if not background_ms:
            return 1
        return max(
            self.background_steps(), math.ceil(2 * users * background_ms / self.critical_path_ms())
        )

    def routes(self, via: Via) -> bool:
        """Whether some I/O step goes `via` this route."""
        return any(isinstance(step, IoStep) and step.via == via for step in self.steps())

    def products(self) -> int:
        """How many products the stock table holds (0 when no step locks one)."""
        return max((step.lock.products for step in self.steps() if step.lock), default=0)

    def steps(self) -> list[Step]:
        """Every step, stage by stage."""
        return [step for stage in self.stages for step in stage.steps]

    def lock_limit_per_s(self) -> float:
        """The most jobs per second the hottest product's lock lets through (inf if none).

        A job holds that lock for the step's mean time; jobs that pick the product queue for it.
        """
        limits = [
            1000.0 / (step.lock.hottest_share() * step.mean_ms())
            for step in self.steps()
            if step.lock is not None and step.mean_ms() > 0
        ]
        return min(limits, default=math.inf)


@dataclass(frozen=True)
class Calibration:
    """How much kernel work makes one millisecond of CPU on this machine."""

    python_iterations_per_ms: float
    native_blocks_per_ms: float
    json_orders_per_ms: float = math.nan  # NaN: a run from before the json kind


class StepFailed(Exception):
    """An attempt of an I/O step failed: the service answered with an error."""


# A job's parts are drawn per job, in the models' hot path: plain slotted dataclasses, not
# frozen ones (those set each field through object.__setattr__, which made an io-bound draw
# take twice as long) nor named tuples (a Python-level __new__: half as long again); nothing
# changes them once drawn.
@dataclass(slots=True)
class Attempt:
    """One drawn try of an I/O step."""

    seconds: float  # how long the service takes to answer
    fails: bool  # whether the answer is an error
    backoff_s: float  # the pause before this try (0 for the first)


@dataclass(slots=True)
class Wait:
    """One drawn I/O step of a job: its tries, in order, until one succeeds."""

    job: int
    attempts: tuple[Attempt, ...]
    timeout_s: float | None
    request_bytes: int
    response_bytes: int
    product: int | None  # the product whose stock the step updates under its lock
    background: bool
    via: Via


@dataclass(slots=True)
class Compute:
    """One drawn piece of CPU work of a job."""

    job: int
    kind: CpuKind
    units: int
    seed: int
    product: int | None = None
    background: bool = False


Action = Wait | Compute

# How a job (or a background step) ended; the last field of a record.
OK, FAILED, TIMED_OUT, LOST = 0, 1, 2, 3


@dataclass(slots=True)
class Job:
    """Job `index` with every random draw made: the same for every model."""

    index: int
    stages: tuple[tuple[Action, ...], ...]


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """A JSON-ready form; each step says whether it is `io` or `cpu`."""
    data = dataclasses.asdict(scenario)
    for stage, stage_data in zip(scenario.stages, data["stages"], strict=True):
        for step, step_data in zip(stage.steps, stage_data["steps"], strict=True):
            step_data["type"] = "io" if isinstance(step, IoStep) else "cpu"
    return data


def scenario_from_dict(data: dict[str, Any]) -> Scenario:
    """The inverse of `scenario_to_dict`."""
    return Scenario(
        data["name"],
        data["description"],
        tuple(
            Stage(stage["name"], tuple(_step_from_dict(step) for step in stage["steps"]))
            for stage in data["stages"]
        ),
    )


def _step_from_dict(data: dict[str, Any]) -> IoStep | CpuStep:
    fields = {key: value for key, value in data.items() if key != "type"}
    fields["lock"] = Lock(**data["lock"]) if data.get("lock") else None
    if data["type"] == "io":
        return IoStep(**fields | {"wait": Dist(**data["wait"])})
    return CpuStep(**fields | {"cpu": Dist(**data["cpu"])})


def draw_job(scenario: Scenario, calibration: Calibration, seed: int, index: int) -> Job:
    """Draw job `index`; the result depends only on (scenario, calibration, seed, index)."""
    rng = Stream(seed, index)
    return Job(
        index,
        tuple(
            [
                tuple([_draw_action(index, step, calibration, rng) for step in stage.steps])
                for stage in scenario.stages
            ]
        ),
    )


def _draw_action(job: int, step: Step, calibration: Calibration, rng: Stream) -> Action:
    product = None
    if step.lock is not None:
        weights = _popularity(step.lock.products, step.lock.skew)
        product = rng.choice(weights)
    if isinstance(step, IoStep):
        attempts = tuple(
            Attempt(
                step.wait.draw_ms(rng) / 1000.0,
                rng.random() < step.fail_rate,
                step.backoff_ms * 2 ** (k - 1) / 1000.0 if k else 0.0,
            )
            for k in range(step.retries + 1)
        )
        timeout_s = None if step.timeout_ms is None else step.timeout_ms / 1000.0
        return Wait(
            job,
            attempts,
            timeout_s,
            step.request_bytes,
            step.response_bytes,
            product,
            step.background,
            step.via,
        )
    rate = {
        "python": calibration.python_iterations_per_ms,
        "native": calibration.native_blocks_per_ms,
        "json": calibration.json_orders_per_ms,
    }[step.kind]
    units = round(step.cpu.draw_ms(rng) * rate)
    return Compute(job, step.kind, units, rng.bits(), product, step.background)


def burn_python(iterations: int, seed: int) -> int:
    """Pure-Python work that holds the GIL; returns the LCG state after `iterations` steps."""
    # This thread's own copies of the constants (a shift makes a new int): a free-threaded
    # build counts references to an int another thread owns atomically, and 3.13t leaves a
    # module's int constants mortal, so two threads sharing them each step took twice the CPU
    # per step.
    a, c, mask = (_LCG_A << 1) >> 1, (_LCG_C << 1) >> 1, (_MASK << 1) >> 1
    x = seed
    for _ in range(iterations):
        x = (x * a + c) & mask
    return x


def burn_native(blocks: int) -> int:
    """Hash `blocks` blocks with the GIL released; returns the first 8 bytes of the digest."""
    digest = hashlib.sha256()
    for _ in range(blocks):
        digest.update(_NATIVE_BLOCK)
    return int.from_bytes(digest.digest()[:8], "big")


def burn_json(orders: int, seed: int) -> int:
    """CPU work as a service does it: for each order, build it as dicts, lists and strings,
    encode it as JSON and decode it, total it and render its receipt from a template. It
    allocates and frees containers and strings, where `burn_python` makes nothing but ints.
    Its objects die as it returns: alone it sets off no cyclic collection (those come from
    what lives across a job's waits, as in a service).

    Each order is drawn from the LCG state and the next state is computed from the decoded
    order's id and the receipt's length (fixed, as every field is padded), so the result is
    the LCG state after `orders` steps, as `burn_python`'s: checked in O(log orders), and
    wrong if an order did not survive the round trip through JSON intact."""
    x = seed
    for _ in range(orders):
        order = {
            "id": x,
            "customer": {"email": f"c{x & 0xFFFF:05d}@example.com", "country": "FR"},
            "currency": "EUR",
            "items": [
                {
                    "sku": f"SKU-{(x >> (16 * k)) & 0xFFFF:05d}",
                    "quantity": 1 + ((x >> (16 * k + 8)) & 3),
                    "price_cents": 100 + ((x >> (16 * k + 4)) & 0x3FF),
                }
                for k in range(_ORDER_ITEMS)
            ],
        }
        decoded = json.loads(json.dumps(order))
        items = decoded["items"]
        cents = sum(item["quantity"] * item["price_cents"] for item in items)
        receipt = _RECEIPT.format(
            id=decoded["id"],
            email=decoded["customer"]["email"],
            lines="\n".join(
                _LINE.format(quantity=i["quantity"], sku=i["sku"], price=i["price_cents"] / 100)
                for i in items
            ),
            total=cents / 100,
            currency=decoded["currency"],
        )
        x = (decoded["id"] * _LCG_A + _LCG_C + len(receipt) - _RECEIPT_BYTES) & _MASK
    return x


def compute(action: Compute) -> int:
    """Run one piece of CPU work with the right kernel."""
    if action.kind == "python":
        return burn_python(action.units, action.seed)
    if action.kind == "json":
        return burn_json(action.units, action.seed)
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


# A list comprehension, not tuple(generator): these run for every stage of every job, and a
# generator costs a frame per call.
def foreground(stage: tuple[Action, ...]) -> list[Action]:
    """The steps of a stage that its job waits for."""
    return [action for action in stage if not action.background]


def background(stage: tuple[Action, ...]) -> list[Action]:
    """The steps of a stage that its job hands off and does not wait for."""
    return [action for action in stage if action.background]


@dataclass
class Verifier:
    """Checks each job's outcome and checksum without redoing its CPU work."""

    _native: list[int] = field(default_factory=lambda: [burn_native(0)])
    _state: hashlib._Hash = field(default_factory=hashlib.sha256)

    def expected(self, job: Job) -> int:
        """The checksum a successful run of `job` returns (background steps not included)."""
        return combine(
            [
                combine([self.expected_action(a) for a in stage if not a.background])
                for stage in job.stages
            ]
        )

    def accepts(self, job: Job, outcome: int, checksum: int) -> bool:
        """Whether a run of `job` may end with `outcome` and `checksum`.

        A success must carry the right checksum; a failure needs a try drawn to fail; a timeout
        needs a timeout. Which tries time out is not checked: a loaded runtime is late, and
        timing out more under load is what it really does.
        """
        if outcome == OK:  # the common case, checked as each job ends: the checksum alone
            return checksum == self.expected(job)
        return self._accepts([a for stage in job.stages for a in foreground(stage)], outcome)

    def accepts_step(self, action: Action, outcome: int, checksum: int) -> bool:
        """Whether one step (a background step) may end with `outcome` and `checksum`."""
        return self._accepts([action], outcome) and (
            outcome != OK or checksum == self.expected_action(action)
        )

    @staticmethod
    def _accepts(actions: list[Action], outcome: int) -> bool:
        waits = [a for a in actions if isinstance(a, Wait)]
        if outcome == FAILED:
            return any(attempt.fails for w in waits for attempt in w.attempts)
        if outcome == TIMED_OUT:
            return any(w.timeout_s is not None for w in waits)
        return outcome == OK

    def expected_action(self, action: Action) -> int:
        """The checksum a successful step returns."""
        if isinstance(action, Wait):
            return io_result(action)
        if action.kind in ("python", "json"):  # the json kernel ends on the LCG's state too
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
        json_orders_per_ms=_rate(lambda n: burn_json(n, 1), 4, trials, target_ms),
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
