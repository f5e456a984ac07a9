"""The point's own checks: what counts in the window, and what fails a point however fast it was."""

from __future__ import annotations

import dataclasses

from bench.measuring.child import summarize
from bench.measuring.monitor import TreeUsage
from models.load import STOCK_START, Record, Tally, Window
from models.workload import (
    FAILED,
    LOST,
    OK,
    CpuStep,
    Dist,
    IoStep,
    Scenario,
    Stage,
    Verifier,
    draw_job,
)
from tests.conftest import TINY, TINY_CALIBRATION

WINDOW = Window(TINY, TINY_CALIBRATION, 3, 2, warmup_s=1.0, duration_s=10.0)
USAGE = TreeUsage(started_s=100.0)  # the window is 101 s to 111 s


def record(index: int, ended_s: float, outcome: int = OK) -> Record:
    job = draw_job(TINY, TINY_CALIBRATION, 3, index)
    checksum = Verifier().expected(job) if outcome == OK else 0
    return (index, ended_s - 0.01, ended_s - 0.01, ended_s, checksum, outcome)


def test_only_jobs_ending_in_the_window_count() -> None:
    tally = Tally(records=[record(0, 100.5), record(1, 102.0), record(2, 112.0)])
    summary = summarize(WINDOW, tally, USAGE, returned_s=113.0)
    assert (summary.submitted, summary.jobs, summary.ok) == (3, 1, 1)
    assert summary.problems == ()


def test_the_edges_say_how_far_they_move_littles_estimate() -> None:
    def spanning(index: int, submitted_s: float, ended_s: float) -> Record:
        return (index, submitted_s, submitted_s, ended_s, record(index, ended_s)[4], OK)

    # The window is 101-111 s: job 0 ran 2 s before it, job 2 ran 1 s in it and ended after.
    tally = Tally(records=[spanning(0, 99.0, 102.0), spanning(1, 104.0, 105.0),
                           spanning(2, 110.0, 113.0)])  # fmt: skip
    summary = summarize(WINDOW, tally, USAGE, returned_s=114.0)
    assert summary.edge_n == 0.3  # (2 s + 1 s) over 10 s


def test_errors_and_impossible_outcomes_are_errors() -> None:
    # Nothing in TINY can fail: a FAILED job is as wrong as a lost one or a bad checksum.
    bad_checksum = (*record(2, 103.0)[:4], 12345, OK)
    tally = Tally(
        records=[record(0, 102.0, LOST), record(1, 102.0, FAILED), bad_checksum, record(3, 103.0)],
        errors=["ConnectionRefusedError: [Errno 111] Connection refused"],
    )
    summary = summarize(WINDOW, tally, USAGE, returned_s=113.0)
    assert (summary.errors, summary.ok, summary.failed) == (3, 1, 0)
    assert summary.error_examples == ("ConnectionRefusedError: [Errno 111] Connection refused",)


def test_a_lost_stock_update_fails_the_point() -> None:
    tally = Tally(records=[record(0, 102.0)], sold=[0, 0, 1], stock=[STOCK_START - 1, STOCK_START])
    (problem,) = summarize(WINDOW, tally, USAGE, returned_s=113.0).problems
    assert problem.startswith("stock updates were lost on 2 products")


HANDED_OFF = Scenario(
    "handed off",
    "",
    (
        Stage(
            "s",
            (
                CpuStep("answer", Dist("constant", 0.1)),
                IoStep("e-mail", Dist("constant", 3.0), 0, 10, background=True),
            ),
        ),
    ),
)


def test_an_unfinished_or_wrong_background_step_fails_the_point() -> None:
    window = dataclasses.replace(WINDOW, scenario=HANDED_OFF)
    tally = Tally(handed_off=[0, 1])
    tally.background.append((0, 101.5, 101.5, 112.5, 10, OK))
    summary = summarize(window, tally, USAGE, returned_s=113.0)
    assert summary.problems == ("1 of 2 background steps never finished",)
    assert summary.background_drain_s == 112.5 - 111.0
    tally.background.append((1, 101.5, 101.5, 102.5, 11, OK))  # a wrong response size
    summary = summarize(window, tally, USAGE, returned_s=113.0)
    assert summary.problems == ("1 background steps ended with a wrong result",)
