"""The point's resource monitor: CPU, context switches and peak RSS of its process tree, read
from /proc exactly at the measured window's edges (psutil where there is no /proc)."""

from __future__ import annotations

import contextlib
import math
import os
import resource
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import psutil

from bench.analysing.steady import Goal, Tick, has_enough, is_steady
from models.load import Ledger

# Peak RSS is sampled, not tracked: often enough to catch a peak that lasts, rarely enough that
# the monitor's own reads stay a small part of the tree's CPU.
_SAMPLE_PERIOD_S = 0.2
# A point keeps at most this many samples of its tree: past it, every other one goes and the
# period doubles, so an hour's point holds no more than a minute's.
MAX_SAMPLES = 1024
# Memory in megabytes, 10^6 bytes, as the columns' "_mb" says (MiB until schema 7).
BYTES_PER_MB = 1_000_000
# PSS costs the kernel a walk of each process's pages (0.4 ms for a 30 MiB one): it is read
# only as often as keeps that walk under this share of the monitor's time.
_PSS_SHARE = 0.01
# How often the monitor wakes: to sample, and for a conductor to look at the ledger.
TICK_S = 0.1
# Once the window has closed no job may end for a while yet (background work, the model's own
# teardown: a cluster or a broker stopping), so a stall takes this many times as long.
AFTER_WINDOW_STALL = 3.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
# A reading of the tree's CPU later than this after its edge (a share of the window, or the
# jitter of a busy machine's wake-ups, whichever is longer) counts the wrong interval: the CPU
# is then not measured. It happens when the model's own threads starve this thread of the GIL
# (a thousand threads busy in a client library, each holding it for up to the switch
# interval), which read 0 s of CPU for a point that served jobs.
_MOST_EDGE_LAG = 0.05
_EDGE_JITTER_S = 0.05


class Sample(NamedTuple):
    """The process tree at one moment of a point, seconds from the window's start."""

    at_s: float
    rss_mb: float  # MB, over the tree
    pss_mb: float  # MB: shared pages split between the processes that map them; NaN: unknown
    cpu_s: float  # the tree's CPU since it started
    jobs: float  # jobs ended so far (closed load; NaN for open)
    latency_s: float  # their summed latencies: the slope of this over time is the jobs in flight


@dataclass
class TreeUsage:
    """CPU and context switches of the point's process tree over the measured window, and
    where the window's edges fell."""

    started_s: float = 0.0
    opens_s: float = math.nan  # the measured window's edges, in perf_counter seconds
    closes_s: float = math.nan
    steady: bool = True  # whether the conductor saw steady state before its warm-up cap
    cpu_s: float = 0.0
    ctx_switches: int = 0
    rss_peak_mb: float = 0.0
    pss_peak_mb: float = math.nan  # where the kernel reports it (Linux)
    service_cpu_s: float = math.nan  # the latency service's CPU, when the run started it
    samples: list[Sample] = field(default_factory=list)  # the tree over time


class Conductor:
    """Picks a closed point's window edges from what its model publishes in the ledger: opens
    it once the load is steady (or the warm-up's cap has passed), closes it once the window
    has reached its goal (or its cap), and writes each edge for the model's users to see."""

    def __init__(self, ledger: Ledger, concurrency: int, ramp_s: float, goal: Goal) -> None:
        self.ledger = ledger
        self.concurrency = concurrency
        self.ramp_s = ramp_s
        self.goal = goal
        self.ticks: list[Tick] = []
        self.steady = False

    def opens(self, started_s: float, cap_s: float) -> float:
        """The opening's time if the window opens now, else the time to look again."""
        now_s = self._tick()
        self.steady = is_steady(self.ticks, self.concurrency, started_s + self.ramp_s)
        if self.steady or now_s >= cap_s:
            self.ticks = self.ticks[-1:]  # the window's ticks start at its opening
            return self._write(0)
        return now_s + TICK_S

    def closes(self) -> float:
        """The closing's time if the window closes now, else the time to look again."""
        now_s = self._tick()
        if has_enough(self.ticks, self.goal):
            return self._write(1)
        return now_s + TICK_S

    def _write(self, edge: int) -> float:
        """Set an edge to now: the users' folds place the jobs by it as soon as they see it
        (models.load.GRACE_S)."""
        now_s = time.perf_counter()
        self.ledger.write(edge, now_s)
        return now_s

    def _tick(self) -> float:
        jobs, latency_s = self.ledger.totals()
        now_s = time.perf_counter()
        self.ticks.append(Tick(now_s, jobs, latency_s))
        return now_s


class Stall:
    """Watches a closed load's ledger while users take jobs: no job ending for `limit_s` means
    the model or its service has stopped, and the point ends then with that reason."""

    def __init__(self, ledger: Ledger, limit_s: float) -> None:
        self.ledger = ledger
        self.limit_s = limit_s
        self.jobs = -1.0
        self.since_s = time.perf_counter()

    def check(self) -> None:
        """End this process, saying why, if no job has ended for the limit."""
        jobs, _ = self.ledger.totals()
        now_s = time.perf_counter()
        if jobs != self.jobs:
            self.jobs, self.since_s = jobs, now_s
        elif now_s - self.since_s > self.limit_s:
            # The model's threads are stuck where no exception reaches them: end the process,
            # whose parent kills what it started and records the point as failed with this.
            print(
                f"no job ended for {self.limit_s:.0f} s: the model or its service stopped "
                "answering",
                file=sys.stderr,
                flush=True,
            )
            os._exit(3)


class TreeMonitor(threading.Thread):
    """Waits for the window to start, then reads the process tree exactly at its edges: fixed
    ones, or those a `Conductor` picks."""

    def __init__(
        self,
        announce_fd: int,
        warmup_s: float,
        duration_s: float,
        service_pid: int | None,
        conductor: Conductor | None = None,
        stall: Stall | None = None,
        own_memory: bool = True,
    ) -> None:
        super().__init__(daemon=True)
        # False: the model is a program this process only waits for (another language), so
        # the memory read is its tree's, not this Python's.
        self.own_memory = own_memory
        self.announce_fd = announce_fd
        self.warmup_s = warmup_s
        self.duration_s = duration_s
        self.conductor = conductor
        self.stall = stall
        self.finished = threading.Event()
        self.usage = TreeUsage()
        self.failure: Exception | None = None
        self.process = psutil.Process()
        self.tree: list[psutil.Process] = [self.process]
        self.rss_sample_s = 0.0  # how long the last RSS sample took
        self.rss_sampled_s = 0.0  # when
        self.sample_period_s = _SAMPLE_PERIOD_S
        self.kept_s = -math.inf  # when the last sample was kept
        self.pss_next_s = -math.inf  # when PSS may be read again
        # The run's latency service: outside the tree, its CPU is read at the same edges.
        self.service = None if service_pid is None else psutil.Process(service_pid)

    def run(self) -> None:
        """Watch the tree; an error is kept for the point to raise (`failure`), not lost in a
        thread's traceback while the point reports figures nobody measured."""
        try:
            self._watch()
        except Exception as exc:
            self.failure = exc
            raise

    def _watch(self) -> None:
        """Sample RSS until the model ends; read CPU and switches as the window opens and closes."""
        announced = os.read(self.announce_fd, 8)
        if len(announced) < 8:  # the model ended before starting its window
            return
        started_s = self.usage.started_s = struct.unpack("d", announced)[0]
        if self.stall is not None:  # the model's start-up, however long, is not a stall
            self.stall.since_s = time.perf_counter()
        cap_s = started_s + self.warmup_s
        conductor = self.conductor
        if conductor is None:
            self.usage.opens_s = self._sample_rss_until(lambda: cap_s)
        else:
            self.usage.opens_s = self._sample_rss_until(lambda: conductor.opens(started_s, cap_s))
            self.usage.steady = conductor.steady
        at_open, service_at_open = self._usage(), self._service_cpu_s()
        opens_s = self.usage.opens_s
        late_s = time.perf_counter() - opens_s
        if conductor is None:
            self.usage.closes_s = self._sample_rss_until(lambda: opens_s + self.duration_s)
        else:
            self.usage.closes_s = self._sample_rss_until(conductor.closes)
        at_close, service_at_close = self._usage(), self._service_cpu_s()
        late_s = max(late_s, time.perf_counter() - self.usage.closes_s)
        if service_at_open is not None and service_at_close is not None:
            self.usage.service_cpu_s = service_at_close - service_at_open
        # Totals, not per-process deltas: a worker reaped during the window moves its CPU into
        # its parent's count of reaped children, and a process that appeared counts from zero.
        self.usage.cpu_s = sum(cpu for cpu, _ in at_close.values()) - sum(
            cpu for cpu, _ in at_open.values()
        )
        self.usage.ctx_switches = sum(
            ctx - at_open[pid][1] for pid, (_, ctx) in at_close.items() if pid in at_open
        )
        if late_s > max(_MOST_EDGE_LAG * (self.usage.closes_s - opens_s), _EDGE_JITTER_S):
            self.usage.cpu_s = self.usage.service_cpu_s = math.nan
        if self.stall is not None:  # after the window: its jobs drain, then the model stops
            self.stall.limit_s *= AFTER_WINDOW_STALL
        self._sample_rss_until(lambda: math.inf)

    def _service_cpu_s(self) -> float | None:
        return None if self.service is None else _cpu_s(self.service)

    def _sample_rss_until(self, edge: Callable[[], float]) -> float:
        """Sample the tree's RSS every period until the edge's time (`edge()`, asked again
        after every wait, as a conductor decides it) has come, or the model's end; returns the
        edge.

        On busy cores a sample of a large tree can take longer than the period, so none starts
        unless it can end well before the window's edge.
        """
        while (left := (edge_s := edge()) - time.perf_counter()) > 0 and not self.finished.is_set():
            if self.stall is not None:
                self.stall.check()
            now_s = time.perf_counter()
            if left > 3 * self.rss_sample_s and now_s - self.rss_sampled_s >= _SAMPLE_PERIOD_S:
                self.rss_sampled_s = now_s
                self._sample_rss()
                self.rss_sample_s = time.perf_counter() - now_s
                left = edge_s - time.perf_counter()
            self.finished.wait(max(0.0, min(TICK_S, left)))
        return edge_s

    def _sample_rss(self) -> None:
        """Read the tree's memory (and keep a sample of it over time, with its CPU and the
        ledger's jobs, at the kept samples' period)."""
        now_s = time.perf_counter()
        self.tree = [self.process, *self.process.children(recursive=True)]
        held = self.tree if self.own_memory else self.tree[1:]
        rss = sum(_quietly(lambda p: p.memory_info().rss, proc, 0) for proc in held)
        usage = self.usage
        usage.rss_peak_mb = max(usage.rss_peak_mb, rss / BYTES_PER_MB)
        pss = math.nan
        if now_s >= self.pss_next_s:
            pss = math.fsum(_pss_mb(proc.pid) for proc in held)
            spent_s = time.perf_counter() - now_s
            self.pss_next_s = now_s + spent_s / _PSS_SHARE
            if not math.isnan(pss) and not pss <= usage.pss_peak_mb:  # a NaN peak: the first
                usage.pss_peak_mb = pss
        if now_s - self.kept_s < self.sample_period_s * 0.99:
            return
        self.kept_s = now_s
        cpu = math.fsum(seconds for proc in self.tree if (seconds := _cpu_s(proc)) is not None)
        jobs, latency_s = math.nan, math.nan
        if self.stall is not None:
            jobs, latency_s = self.stall.ledger.totals()
        at_s = now_s - usage.started_s
        usage.samples.append(Sample(at_s, rss / BYTES_PER_MB, pss, cpu, jobs, latency_s))
        if len(usage.samples) > MAX_SAMPLES:
            usage.samples = usage.samples[::2]
            self.sample_period_s *= 2.0

    def _usage(self) -> dict[int, tuple[float, int]]:
        """CPU seconds and context switches (all threads) per process of the known tree.

        CPU is read first, in one quick pass over /proc/<pid>/stat: with every core busy this
        thread gets the CPU only now and then, and a slow pass would smear the window's edge.
        It counts reaped children too, so a worker that exits right at the edge is not lost.
        """
        cpu = {proc.pid: _cpu_s(proc) for proc in self.tree}
        return {
            pid: (seconds, _ctx_switches(proc))
            for proc in self.tree
            if (seconds := cpu[(pid := proc.pid)]) is not None
        }


def _quietly(read: Any, proc: psutil.Process, default: Any) -> Any:
    """Read a process that may have just exited."""
    try:
        return read(proc)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return default


def _pss_mb(pid: int) -> float:
    """A process's proportional set size in MB, from the kernel's one-line rollup (Linux 4.14
    on), so it is cheap to read; NaN where there is none."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as rollup:
            for line in rollup:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024 / BYTES_PER_MB  # kB: KiB
    except OSError:
        pass
    return math.nan


def _cpu_s(proc: psutil.Process) -> float | None:
    """User and system CPU of a process and of its reaped children (None once it is gone)."""
    try:
        with open(f"/proc/{proc.pid}/stat", "rb") as stat:
            data = stat.read()
    except FileNotFoundError:
        return None
    except OSError:  # not Linux: psutil's slower reading
        times = _quietly(lambda p: p.cpu_times(), proc, None)
        return None if times is None else sum(times[:4])
    # utime, stime, cutime, cstime are fields 14-17; the command name in () may hold spaces.
    fields = data[data.rindex(b")") + 2 :].split()
    return sum(int(x) for x in fields[11:15]) / _CLOCK_TICKS


def _ctx_switches(proc: psutil.Process) -> int:
    """Voluntary and involuntary switches of every thread (psutil counts only the main one)."""
    if proc.pid == os.getpid():  # this process: the kernel's total includes exited threads
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_nvcsw + usage.ru_nivcsw
    tasks = Path(f"/proc/{proc.pid}/task")
    if not tasks.is_dir():  # not Linux: the main thread is all psutil can see
        switches = _quietly(lambda p: p.num_ctx_switches(), proc, None)
        return 0 if switches is None else switches.voluntary + switches.involuntary
    total = 0
    with contextlib.suppress(OSError):  # the process has just ended: its threads are gone
        for status in tasks.glob("*/status"):
            with contextlib.suppress(OSError):  # a thread that has just ended
                for line in status.read_text().splitlines():
                    if "ctxt_switches:" in line:  # voluntary_ and nonvoluntary_
                        total += int(line.split(":")[1])
    return total
