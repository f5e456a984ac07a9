"""The point's own checks: what counts in the window, and what fails a point however fast it was."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from bench.measuring.child import summarize
from bench.measuring.monitor import TreeUsage
from models.load import GRACE_S, STOCK_START, Ledger, Record, Tally, Window
from models.recording import Histogram
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
    background,
    draw_job,
)
from tests.conftest import TINY, TINY_CALIBRATION

WINDOW = Window(TINY, TINY_CALIBRATION, 3, 2, warmup_s=1.0, duration_s=10.0)
USAGE = TreeUsage(started_s=100.0)  # the window is 101 s to 111 s


def record(index: int, ended_s: float, outcome: int = OK) -> Record:
    job = draw_job(TINY, TINY_CALIBRATION, 3, index)
    checksum = Verifier().expected(job) if outcome == OK else 0
    return (job, ended_s - 0.01, ended_s - 0.01, ended_s, checksum, outcome)


def test_only_jobs_ending_in_the_window_count() -> None:
    tally = Tally(records=[record(0, 100.5), record(1, 102.0), record(2, 112.0)])
    summary = summarize(WINDOW, tally, USAGE, returned_s=113.0)
    assert (summary.submitted, summary.jobs, summary.ok) == (3, 1, 1)
    assert summary.problems == ()


def test_the_edges_say_how_far_they_move_littles_estimate() -> None:
    def spanning(index: int, submitted_s: float, ended_s: float) -> Record:
        job, *_, checksum, _ = record(index, ended_s)
        return (job, submitted_s, submitted_s, ended_s, checksum, OK)

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
    (email,) = [a for stage in window.job_at(0).stages for a in background(stage)]
    tally.background.append((email, 101.5, 101.5, 112.5, 10, OK))
    summary = summarize(window, tally, USAGE, returned_s=113.0)
    assert summary.problems == ("1 of 2 background steps never finished",)
    assert summary.background_drain_s == 112.5 - 111.0
    tally.background.append((email, 101.5, 101.5, 102.5, 11, OK))  # a wrong response size
    summary = summarize(window, tally, USAGE, returned_s=113.0)
    assert summary.problems == ("1 background steps ended with a wrong result",)


def test_folding_as_jobs_end_equals_folding_the_whole_list() -> None:
    # 400 seeded jobs ending over 0-20 s, some of them wrong, with retries; the window is
    # 101-111 s in the tally's clock, shifted here to 1-11 s.
    window = dataclasses.replace(WINDOW, warmup_s=1.0, duration_s=10.0).start(at_s=0.0)
    rng = random.Random(7)
    records, retried = [], []
    for index in range(400):
        job, submitted_s, started_s, ended_s, checksum, outcome = record(index, 0.05 * index)
        latency_s = rng.expovariate(10.0)
        if rng.random() < 0.05:
            checksum += 1  # a wrong result
        retried += [index] * rng.choice((0, 0, 1, 2))
        records.append((job, ended_s - latency_s, started_s, ended_s, checksum, outcome))

    def fold_in(batches: int) -> Tally:
        tally = Tally()
        for k in range(batches):
            part = slice(k * 400 // batches, (k + 1) * 400 // batches)
            tally.retried += [i for i in retried if part.start <= i < part.stop]
            tally.records += records[part]
            tally.next_fold_s = 0.0  # a fold at every batch
            tally.fold(window, 0.0)
        tally.fold(window, 0.0, edges=(1.0, 11.0))
        return tally

    whole, bit_by_bit = fold_in(1), fold_in(37)
    assert whole.recording == bit_by_bit.recording
    counted = [r for r in records if 1.0 <= r[3] < 11.0]
    wrong = {r[0].index for r in counted if r[4] != Verifier().expected(r[0])}
    expected = Histogram()
    for job, submitted_s, _, ended_s, _, _ in counted:
        if job.index not in wrong:
            expected.record((ended_s - submitted_s) * 1000.0)
    rec = whole.recording
    assert rec.latency == expected
    assert (rec.jobs, rec.errors, rec.ok) == (len(counted), len(wrong), len(counted) - len(wrong))
    assert rec.retries == sum(1 for i in retried if any(r[0].index == i for r in counted))
    assert rec.served == len(counted) - len(wrong)
    assert not (whole.records or whole.retried or whole.unsettled or whole.retries_of)


def test_jobs_wait_for_an_edge_the_conductor_has_not_picked(tmp_path: Path) -> None:
    path = str(tmp_path / "ledger")
    shared = Ledger.create(path, 2)
    window = dataclasses.replace(WINDOW, ledger=path, conducted=True).start(at_s=0.0)
    tally = Tally(records=[record(0, 1.0), record(1, 9.9)])
    tally.fold(window, 10.0)  # neither edge picked: job 0 is warm-up, job 1 too recent to say
    assert (tally.recording.submitted, tally.recording.jobs, len(tally.unsettled)) == (2, 0, 1)
    shared.write(0, 9.8)  # the conductor opens the window
    tally.next_fold_s = 0.0
    tally.fold(window, 10.0)
    assert tally.recording.jobs == 0  # the window may still close before job 1's end
    tally.fold(window, 10.0, edges=(9.8, 11.0))
    assert (tally.recording.jobs, tally.unsettled) == (1, [])
    assert tally.blind_s == (10.0 - GRACE_S, 10.0 - GRACE_S)
