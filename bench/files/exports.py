"""A run's results in formats other tools read: its points' latency histograms as an
HdrHistogram log (`latency.hlog`, base64 blobs that HdrHistogram's readers decode) and as
percentile distributions (`hgrm/*.hgrm`), and its throughput as a pyperf suite
(`pyperf.json`, for `pyperf compare_to` and `pyperf hist`)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from bench.errors import UsageError
from bench.files.results import Results
from bench.files.run_dir import write_atomically
from models.recording import Histogram

FORMATS = ("hdrh", "pyperf")
# HdrHistogram counts integers: microseconds, from 1 us to an hour, to 3 significant digits
# (the suite's own histogram keeps 0.1%).
_HDR_RANGE_US = (1, 3_600_000_000)
_HDR_DIGITS = 3


def export(results: Results, form: str) -> list[Path]:
    """Write `results` in `form` ("hdrh" or "pyperf") into its run folder; the files written."""
    if form == "hdrh":
        return _hdrh(results)
    if form == "pyperf":
        path = results.run_dir / "pyperf.json"
        write_atomically(path, json.dumps(pyperf_suite(results), indent=1))
        return [path]
    raise UsageError(f"unknown export format {form!r}; choose from: {', '.join(FORMATS)}")


def to_hdr(histogram: Histogram) -> Any:
    """The histogram as an HdrHistogram of microseconds (`hdrh`)."""
    from hdrh.histogram import HdrHistogram

    converted = HdrHistogram(*_HDR_RANGE_US, _HDR_DIGITS)
    for value_ms, count in histogram.values():
        converted.record_value(min(max(round(value_ms * 1000.0), 1), _HDR_RANGE_US[1]), count)
    return converted


def tag(key: tuple[str, str, int, float | None, int]) -> str:
    """A point's name in an HdrHistogram log, which allows no comma or space in a tag."""
    model, interpreter, concurrency, rate, repeat = key
    name = f"{model}@{interpreter}/N={concurrency}" + ("" if rate is None else f"/rate={rate:g}")
    return re.sub(r"[\s,]+", "_", f"{name}/repeat={repeat}")


def _hdrh(results: Results) -> list[Path]:
    from hdrh.log import HistogramLogWriter

    histograms = results.histograms()
    log_path = results.run_dir / "latency.hlog"
    folder = results.run_dir / "hgrm"
    folder.mkdir(exist_ok=True)
    written = [log_path]
    with log_path.open("w") as log:
        writer = HistogramLogWriter(log)
        writer.output_comment("latency of each point's jobs in microseconds (pyconcurrency-bench)")
        writer.output_legend()
        for key, histogram in histograms.items():
            if not histogram.total:
                continue
            converted = to_hdr(histogram)
            # The tagged line of HdrHistogram's log format, which hdrh's writer does not write:
            # Tag=<point>,<start s>,<length s>,<max ms>,<base64 compressed histogram>.
            log.write(
                f"Tag={tag(key)},0.000,0.000,{converted.get_max_value() / 1000.0:.3f},"
                f"{converted.encode().decode()}\n"
            )
            path = folder / f"{tag(key).replace('/', '_')}.hgrm"
            with path.open("wb") as out:
                # In milliseconds, as the suite's own tables give them.
                converted.output_percentile_distribution(out, 1000.0)
            written.append(path)
    return written


def pyperf_suite(results: Results) -> dict[str, Any]:
    """pyperf's JSON (format 1.0): a benchmark per model and level, a run per ok repeat whose
    one value is seconds per job served (1 / throughput), so lower is better, as pyperf
    expects of a time."""
    benchmarks = []
    ok = results.points[results.points["status"] == "ok"]
    for (model, interpreter, concurrency, rate), rows in ok.groupby(
        ["model", "interpreter", "concurrency", "rate"], dropna=False, sort=False
    ):
        offered = float(rate)  # type: ignore[arg-type]  # a group key: the row's rate
        name = f"{model} N={concurrency}" + ("" if math.isnan(offered) else f" rate={offered:g}")
        if ok["interpreter"].nunique() > 1:
            name += f" @{interpreter}"
        runs = [
            {"metadata": {"repeat": int(r["repeat"])}, "values": [1.0 / float(r["throughput"])]}
            for r in rows.to_dict("records")
            if float(r["throughput"]) > 0
        ]
        if runs:
            benchmarks.append({"metadata": {"name": name, "unit": "second"}, "runs": runs})
    meta = results.meta
    return {
        "version": "1.0",
        "metadata": {
            "name": meta.scenario.name,
            "description": "seconds per job served (1 / throughput) of each model and level",
            "date": meta.created,
            "python_version": meta.python.version,
            "cpu_count": meta.cores,
        },
        "benchmarks": benchmarks,
    }
