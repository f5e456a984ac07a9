"""Every threshold the suite judges its numbers by, in one place: a figure is trusted, flagged,
failed, tied or called significant against these and nothing else."""

from __future__ import annotations

# A point: more errors than this share of its jobs fail it (and miss an open load's target).
ERROR_SHARE = 0.01
# The tail a point's window measures for: with the repeats' jobs pooled, enough of them that
# this percentile has a distribution-free 95% interval (368 jobs for a p99).
GOAL_PERCENT = 99.0
# ... and throughput known to within this (relative half-width of its 95% interval, across
# the repeats: each point reaches this times the square root of the repeats).
GOAL_THROUGHPUT_CI = 0.05
# Steady state (closed load): over the last span holding this many jobs, Little's law holds
# within this share of N.
STEADY_JOBS = 10
STEADY_TOLERANCE = 0.05
# A window's throughput interval: batch means over at most this many batches, and Student's
# t (97.5% quantile) by degrees of freedom, 1 to 9.
BATCHES = 10
T_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
# A job that starts later than this after it was both due and in a user's hands started late
# (its runtime's timer or loop kept it waiting); epoll waits in whole milliseconds, so a timer
# may fire up to 1 ms late with nothing wrong.
LATE_START_S = 0.002
# More late starts than this share of an open point's jobs means the load fell behind.
LATE_SHARE = 0.01
# A closed point whose throughput x mean latency strays further than this from N is flagged.
LITTLE_TOLERANCE = 0.10
# A latency service busier than this (share of one core) may be the limit, not the model.
SERVICE_BUSY = 0.8

# Repeats: throughput varying this much between them means the machine, not the model, moved it.
CV_WARNING = 0.10
# Two runs: a change is real when its p-value, adjusted over the whole table, is below this...
SIGNIFICANCE = 0.05
# ... and it is at least this large, above each metric's run-to-run noise on this machine: over
# 21 runs of one configuration (io-bound, asyncio and threads at N=8 and 64, 3 repeats) the
# median throughput varied by 0.3% (CV) and the pooled p99 by 0.6-1.3% (4.7% from the lowest run
# to the highest). The p99's sampling noise is the permutation test's to judge.
MIN_EFFECT = {"throughput": 0.05, "latency_p99_ms": 0.05}

# Findings: within this share of the best throughput, two models count as tied.
TIE = 0.03
# A model has saturated once a higher level adds less than this share of throughput.
SATURATION_GAIN = 0.10
# A model degrades when throughput falls this far below its own peak at a higher level.
DEGRADATION = 0.10
# A CPU utilisation this close to a whole core means one thread is the limit.
ONE_CORE = 0.9

# The Universal Scalability Law: levels needed before three parameters are more than a curve
# through the points.
USL_MIN_LEVELS = 4

# Memory over a window: shorter windows say nothing of a slope (allocators and caches fill
# first). A point's RSS grew when its window's last quarter holds this share and this many MB
# more than its first quarter, while its jobs in flight moved less than the flat share.
LONG_WINDOW_S = 20.0
GROWTH_SHARE = 0.10
GROWTH_MB = 4.0
FLAT_IN_FLIGHT = 0.10
# The default p99 target, in critical paths of the job: a closed run's verdict, an open run's
# `--rate auto` knee.
DEFAULT_SLO_PATHS = 10.0
