"""Spreading a run's time budget over its points: every point gets its start-up, its warm-up
and a shortest window; what is left buys longer windows for the levels that need them, the
cheapest first, so that as many levels as the budget allows measure their figures."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Need:
    """What the points still to run at one level (model, interpreter, N) need."""

    key: Hashable
    points: int  # still to run, the next one included
    jobs: int  # the level's jobs still to measure, over those points
    throughput: float  # jobs per second, as measured so far (or a prior)
    warmup_s: float  # each point's expected warm-up

    def window_s(self, shortest_s: float) -> float:
        """The window each point needs for the level to reach its jobs."""
        if self.jobs <= 0:
            return shortest_s
        return max(shortest_s, self.jobs / self.points / max(self.throughput, 1e-9))


@dataclass(frozen=True)
class Plan:
    """Each level's window per point, and whether it buys the level's jobs."""

    windows_s: dict[Hashable, float]
    funded: frozenset[Hashable]


def plan_windows(
    needs: Sequence[Need],
    left_s: float,
    overhead_s: float,
    shortest_s: float,
    first: Collection[Hashable] = (),
) -> Plan:
    """Windows for the points still to run within `left_s` seconds, each point also taking
    `overhead_s` to start and stop and its level's warm-up.

    Levels are funded whole, those in `first` (funded by earlier plans, whose points have
    spent on them already) and then the cheapest: a level's tail figure rests on the jobs of
    all its repeats, so part of the time for every level would measure none of them. What no level
    can use is spread over every point alike: a funded point closes at its goal, and the time
    it leaves goes to the points after it when they are planned. When even the shortest
    windows do not fit, every window shrinks alike (to nothing at worst: the budget then says
    what it would take).
    """
    fixed_s = sum(n.points * (overhead_s + n.warmup_s) for n in needs)
    points = sum(n.points for n in needs)
    surplus_s = left_s - fixed_s - points * shortest_s
    if surplus_s < 0:
        shrunk_s = max(0.0, shortest_s + surplus_s / max(points, 1))
        return Plan({n.key: shrunk_s for n in needs}, frozenset())
    windows, funded = {}, set()
    for need in sorted(
        needs, key=lambda n: (n.key not in first, n.points * n.window_s(shortest_s))
    ):
        extra_s = need.points * (need.window_s(shortest_s) - shortest_s)
        if extra_s <= surplus_s:
            windows[need.key] = need.window_s(shortest_s)
            funded.add(need.key)
            surplus_s -= extra_s
        else:
            windows[need.key] = shortest_s
    share_s = surplus_s / max(points, 1)
    return Plan({key: window_s + share_s for key, window_s in windows.items()}, frozenset(funded))


def budget_for(needs: Sequence[Need], overhead_s: float, shortest_s: float) -> float:
    """The time that would fund every level."""
    return sum(n.points * (overhead_s + n.warmup_s + n.window_s(shortest_s)) for n in needs)
