"""The figures and report.html: complete, self-contained, escaped, and rendered by a browser."""

from __future__ import annotations

import html
import json
import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.lines import Line2D
from playwright.sync_api import Browser, Page, sync_playwright

from bench import api
from bench.analysing.findings import KEY_FINDINGS
from bench.analysing.levels import per_level
from bench.files import results as results_module
from bench.files.results import Results, load_results
from bench.presenting import plots
from bench.presenting.page import number
from bench.presenting.report import build_report
from bench.presenting.svg import inline_svg, toggles
from models import MODELS
from tests.conftest import assert_offline

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1200,2400",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """A small real run of two rounds, with a skipped point (threads above a cap of 1)."""
    out = tmp_path_factory.mktemp("results")
    return api.run(
        "io-bound",
        ["sync", "threads", "asyncio"],
        [1, 2],
        warmup_s=0.0,
        duration_s=0.3,
        out=out,
        max_threads=1,
        repeat=2,
    )


def test_report_has_every_section_and_figure(run: Results) -> None:
    page = (run.run_dir / "report.html").read_text()
    sections = (
        "verdict",
        "findings",
        "scenario",
        "figures",
        "levels",
        "usl",
        "micro",
        "points",
        "environment",
    )
    for section in sections:
        assert f"<section id='{section}'>" in page
    for figure in ("throughput", "latency", "efficiency", "resources", "scalability"):
        assert re.search(f"<figure id='fig-{figure}'><svg", page), figure
    # The spectrum at every level with an ok point, the one most models reached shown first.
    assert re.findall(r"<div class='spectrum' data-level='(\d+)'( hidden)?><svg", page) == [
        ("1", ""),
        ("2", " hidden"),
    ]
    findings = page.split("<section id='findings'>")[1].split("</section>")[0]
    assert findings.count("<li>") >= 3
    assert "Best throughput at N=1" in findings
    assert "Not measured: threads N=2 (skipped)" in findings
    assert "Runtime costs measured on this machine: asyncio " in findings


def test_report_fetches_nothing(run: Results) -> None:
    assert_offline((run.run_dir / "report.html").read_text())


def test_user_text_is_escaped(run: Results, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run.run_dir, copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["scenario"]["name"] = "<script>alert(1)</script>"
    meta["scenario"]["description"] = 'a "quoted" <b>bold</b> & more'
    (copy / "meta.json").write_text(json.dumps(meta))
    page = build_report(copy).read_text()
    assert "<script>alert(1)" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page


def test_figures_draw_every_model_and_mark_skipped_points(run: Results) -> None:
    fig = plots.throughput(run)
    ax = fig.axes[0]
    labels = {line.get_label() for line in ax.get_lines()}
    assert {"sync", "threads", "asyncio", "bound", "skipped / failed"} <= labels
    crosses = [
        np.asarray(line.get_xdata()).tolist()
        for line in ax.get_lines()
        if isinstance(line, Line2D) and line.get_marker() == "x"
    ]
    assert [xs for xs in crosses if xs] == [[2]]
    assert "jobs/s" in ax.get_ylabel()
    plt.close(fig)
    for draw in (
        plots.latency,
        plots.efficiency,
        plots.resources,
        plots.scalability,
        plots.spectrum,
    ):
        figure = draw(run)
        assert all(a.get_xlabel() for a in figure.axes if a.get_label() != "<colorbar>")
        plt.close(figure)


def test_every_model_has_its_own_colour_from_the_registry() -> None:
    colours = {name: plots.model_colour(name) for name in MODELS}
    assert colours == {name: model.colour for name, model in MODELS.items()}
    assert len(set(colours.values())) == len(MODELS)
    assert plots.model_colour("threads @3.13.5t") == colours["threads"]  # on every interpreter
    assert plots.model_colour("gone-model") not in colours.values()


def console_errors(page: Path, screenshot: Path) -> list[str]:
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={screenshot.parent / 'profile'}",
            f"--screenshot={screenshot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_report_renders_in_chromium_without_console_errors(run: Results, tmp_path: Path) -> None:
    # The detector must see an error when there is one, or its silence means nothing.
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('boom')</script></body></html>")
    assert any("boom" in line for line in console_errors(broken, tmp_path / "broken.png"))

    shot = tmp_path / "report.png"
    assert console_errors(run.run_dir / "report.html", shot) == []
    pixels = plt.imread(shot)[..., :3]
    not_white = (pixels < 0.95).any(axis=-1).mean()
    assert not_white > 0.02  # text and figures, not a blank page
    assert float(np.std(pixels)) > 0.05


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (which downloads no browser here)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    flags = [f for f in CHROMIUM_FLAGS if f != "--headless" and not f.startswith("--window")]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        yield launched
        launched.close()


def open_page(browser: Browser, path: Path) -> tuple[Page, list[str]]:
    """`path` in a new page, with the list its console errors and uncaught exceptions go to."""
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    return page, errors


def test_the_reports_series_hide_show_their_values_and_its_tables_sort(
    run: Results, browser: Browser, tmp_path: Path
) -> None:
    # The detector must see an error when there is one, or its silence means nothing.
    broken = tmp_path / "broken.html"
    broken.write_text("<script>console.error('boom'); undefined_name()</script>")
    assert len(open_page(browser, broken)[1]) == 2

    page, errors = open_page(browser, run.run_dir / "report.html")
    # Every marker of a series has its values (the script checks the counts as it loads).
    counts = page.eval_on_selector_all(
        ".series[data-tips]",
        "groups => groups.map(g => [g.querySelectorAll('use').length,"
        " JSON.parse(g.dataset.tips).length])",
    )
    assert counts and all(markers == tips for markers, tips in counts)
    assert errors == []

    asyncio_lines = page.locator("#fig-throughput .series[data-series='asyncio']")
    threads_lines = page.locator("#fig-throughput .series[data-series='threads']")
    assert asyncio_lines.first.is_visible() and threads_lines.first.is_visible()
    page.click(".toggle[data-series='asyncio']")  # hidden in every figure, the rest kept
    assert page.locator(".series[data-series='asyncio']").evaluate_all(
        "all => all.every(g => getComputedStyle(g).display === 'none')"
    )
    assert threads_lines.first.is_visible()
    page.click(".toggle[data-series='asyncio']")
    assert asyncio_lines.first.is_visible()
    page.click("#fig-throughput .legend-entry[data-series='threads'] >> nth=-1")  # its label
    assert not threads_lines.first.is_visible()

    # A hover shows the marker's value: asyncio's throughput at N=1, as the table has it.
    page.click(".toggle[data-series='sync']")  # sync and threads coincide with it at N=1
    marker = asyncio_lines.first.locator("use").first
    marker.scroll_into_view_if_needed()
    box = marker.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    level = run.levels[(run.levels["model"] == "asyncio") & (run.levels["concurrency"] == 1)]
    value = number(float(level["throughput"].iloc[0]))
    assert page.locator("#tip").is_visible()
    assert page.locator("#tip").text_content() == (
        f"asyncio · N=1\nThroughput and the bound: {value} jobs/s"
    )

    page.select_option("#spectrum-level", "2")
    shown = page.locator(".spectrum").evaluate_all(
        "all => all.filter(d => !d.hidden).map(d => d.dataset.level)"
    )
    assert shown == ["2"]

    header = page.locator("#levels th", has_text="jobs/s (median)")
    column = page.locator("#levels th").all_text_contents().index("jobs/s (median)")
    cells = f"#levels tbody td:nth-child({column + 1})"
    for clicks, order in ((1, 1), (2, -1)):  # ascending, then descending
        header.click()
        values = [float(v) for v in page.locator(cells).all_text_contents() if v]
        assert len(values) >= 5 and values == sorted(values)[::order], clicks

    with page.expect_download() as download:
        page.click("#download-csv")
    saved = pd.read_csv(download.value.path())
    assert list(saved.columns) == list(pd.read_csv(run.run_dir / "points.csv").columns)
    assert list(saved["model"]) == list(run.points["model"])
    assert errors == []


def test_toggles_group_a_runs_clients_and_interpreters() -> None:
    bar = toggles(
        ["asyncio @3.11", "asyncio+httpx @3.11", "trio+httpx @3.13t"],
        {"asyncio @3.11": "3.11", "asyncio+httpx @3.11": "3.11", "trio+httpx @3.13t": "3.13t"},
    )
    members = {
        html.unescape(name): json.loads(html.unescape(group))
        for group, name in re.findall(r"data-members='([^']*)'>([^<]*)<", bar)
    }
    assert members == {
        "client httpx": ["asyncio+httpx @3.11", "trio+httpx @3.13t"],
        "interpreter 3.11": ["asyncio @3.11", "asyncio+httpx @3.11"],
        "interpreter 3.13t": ["trio+httpx @3.13t"],
    }
    one = toggles(["asyncio", "<b>"], {"asyncio": "3.11", "<b>": "3.11"})
    assert "data-members" not in one  # one interpreter, no client: nothing to group
    assert "<b>" not in one and "&lt;b&gt;" in one


def test_points_reload_with_their_types(run: Results) -> None:
    points = load_results(run.run_dir).points
    # Rounds interleave; the skipped point is recorded once, in round 1.
    assert list(zip(points["model"], points["concurrency"], points["repeat"], strict=True)) == [
        ("sync", 1, 1),
        ("sync", 2, 1),
        ("threads", 1, 1),
        ("threads", 2, 1),
        ("asyncio", 1, 1),
        ("asyncio", 2, 1),
        ("sync", 1, 2),
        ("sync", 2, 2),
        ("threads", 1, 2),
        ("asyncio", 1, 2),
        ("asyncio", 2, 2),
    ]
    assert list(points["status"]).count("skipped") == 1
    assert str(points["jobs"].dtype) == "Int64"
    assert points["jobs"].isna().sum() == 1


def test_summary_has_one_row_per_level_with_intervals(run: Results) -> None:
    import pandas as pd

    summary = pd.read_csv(run.run_dir / "summary.csv")
    assert len(summary) == 6
    ok = summary[summary["status"] == "ok"]
    assert set(ok["repeats"]) == {2}
    assert (ok["throughput_ci_low"] <= ok["throughput"]).all()
    assert (ok["throughput"] <= ok["throughput_ci_high"]).all()
    skipped = summary[summary["status"] == "skipped"]
    assert list(skipped["repeats"]) == [0]


def test_findings_compare_interpreters() -> None:
    import pandas as pd

    from bench.analysing.findings import _interpreters
    from bench.files.run_dir import POINT_COLUMNS

    base = dict.fromkeys(POINT_COLUMNS, 1.0) | {"status": "ok", "warning": "", "reason": ""}
    ok = pd.DataFrame(
        [
            base
            | {
                "model": "threads @3.13.5",
                "interpreter": "3.13.5",
                "concurrency": 2,
                "throughput": 100.0,
            },
            base
            | {
                "model": "processes @3.13.5",
                "interpreter": "3.13.5",
                "concurrency": 2,
                "throughput": 150.0,
            },
            base
            | {
                "model": "threads @3.13.5t",
                "interpreter": "3.13.5t",
                "concurrency": 2,
                "throughput": 170.0,
            },
            base
            | {
                "model": "processes @3.13.5t",
                "interpreter": "3.13.5t",
                "concurrency": 2,
                "throughput": 140.0,
            },
        ]
    )
    sentences = _interpreters(ok)
    assert "threads at N=2: 1.70x on 3.13.5t of its 3.13.5 throughput." in sentences
    assert "On 3.13.5, threads never beat processes." in sentences
    assert "On 3.13.5t, threads beat processes at N=2." in sentences


@pytest.mark.parametrize(
    ("intervals", "found"),
    [((95.0, 105.0, 70.0, 80.0), True), ((60.0, 140.0, 40.0, 110.0), False)],
    ids=["apart", "overlapping"],
)
def test_a_fall_in_throughput_is_a_finding_only_beyond_the_repeats_noise(
    intervals: tuple[float, float, float, float], found: bool
) -> None:
    from bench.analysing.findings import _degradation

    peak_low, peak_high, worst_low, worst_high = intervals
    rows = pd.DataFrame(
        [
            {"model": "trio", "concurrency": 32, "throughput": 100.0, "latency_p99_ms": 500.0,
             "throughput_ci_low": peak_low, "throughput_ci_high": peak_high},
            {"model": "trio", "concurrency": 128, "throughput": 75.0, "latency_p99_ms": math.nan,
             "throughput_ci_low": worst_low, "throughput_ci_high": worst_high},
        ]
    )  # fmt: skip
    sentences = _degradation(rows)
    assert sentences == (
        ["trio degrades under load: 100.0 jobs/s at N=32 falls to 75.0 at N=128 (25% less)."]
        if found
        else []
    )


@pytest.mark.parametrize(
    ("second", "leaders"),
    [
        ((90.0, 85.0, 95.0), "asyncio leads"),  # 10% behind, its interval below the best's
        ((90.0, 85.0, 102.0), "asyncio and trio lead"),  # 10% behind, within the repeats' noise
        ((98.0, math.nan, math.nan), "asyncio and trio lead"),  # within 3%, one repeat
    ],
)
def test_a_lead_is_a_finding_only_beyond_the_repeats_noise(
    second: tuple[float, float, float], leaders: str
) -> None:
    from bench.analysing.findings import _best_per_range

    throughput, low, high = second
    rows = pd.DataFrame(
        [
            {"model": "asyncio", "concurrency": 8, "throughput": 100.0,
             "throughput_ci_low": 98.0 if math.isfinite(low) else math.nan,
             "throughput_ci_high": 102.0 if math.isfinite(low) else math.nan},
            {"model": "trio", "concurrency": 8, "throughput": throughput,
             "throughput_ci_low": low, "throughput_ci_high": high},
        ]
    )  # fmt: skip
    assert _best_per_range(rows) == [f"Best throughput at N=8: {leaders} (up to 100.0 jobs/s)."]


def test_the_report_leads_with_a_few_findings_and_keeps_the_rest_a_click_away(
    run: Results,
) -> None:
    page = (run.run_dir / "report.html").read_text()
    section = page.split("<section id='findings'>")[1].split("</section>")[0]
    shown, _, more = section.partition("<details>")
    assert page.index("id='verdict'") < page.index("id='findings'")
    assert 3 <= shown.count("<li>") <= KEY_FINDINGS
    assert "Best throughput at N=1" in shown and "Largest gap to the bound" in shown
    assert re.search(r"<summary>\d+ more findings</summary>", more)
    assert "Not measured: threads N=2 (skipped)" in more


def test_an_open_load_report_draws_latency_against_the_offered_rate(tmp_path: Path) -> None:
    results = api.run(
        "io-bound",
        ["sync", "asyncio"],
        [4],
        warmup_s=0.0,
        duration_s=0.5,
        repeat=1,
        load="open",
        rate=[10.0, 30.0],
        transport="sleep",
        out=tmp_path,
    )
    assert list(results.points["rate"]) == [10.0, 30.0, 10.0, 30.0]
    assert set(results.points["load"]) == {"open"}
    page = (results.run_dir / "report.html").read_text()
    assert "id='fig-open-load'" in page
    assert "Knees (the highest offered rate with p99 within 500 ms" in page
    assert "id='fig-throughput'" not in page  # throughput against N says nothing here


def test_an_engine_that_fills_the_cores_is_named_as_the_limit() -> None:
    import pandas as pd

    from bench.analysing.findings import _largest_gap
    from bench.files.run_dir import POINT_COLUMNS

    base = dict.fromkeys(POINT_COLUMNS, 1.0) | {"status": "ok", "concurrency": 32}
    ok = pd.DataFrame(
        [
            base | {"model": "threads", "efficiency": 0.4, "cpu_util": 1.2},
            base | {"model": "dask", "efficiency": 0.2, "cpu_util": 1.9},
        ]
    )
    assert "mostly with the engine's own work" in _largest_gap(ok, cores=2)
    jobs = ok.assign(model=["threads", "processes"])  # the same figures, no engine
    assert "the CPU work of the jobs is the limit" in _largest_gap(jobs, cores=2)


def test_the_per_level_table_is_computed_once_per_report(
    run: Results, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    def counted(points: pd.DataFrame, histograms: Any = None) -> pd.DataFrame:
        calls.append(len(points))
        return per_level(points, histograms)

    monkeypatch.setattr(results_module, "per_level", counted)
    build_report(run.run_dir)
    assert len(calls) == 1  # the report, its findings, its figures and tables share it
    again = load_results(run.run_dir)
    assert again.levels is again.levels
    assert len(calls) == 2


def test_figure_text_is_text_and_long_labels_are_whole(run: Results) -> None:
    page = (run.run_dir / "report.html").read_text()
    start = page.index("id='fig-efficiency'")
    heat_map = page[start : page.index("</figure>", start)]
    # Text as text (svg.fonttype none), so a reader's search finds it, not glyph paths.
    assert "<text" in heat_map
    for model in ("sync", "threads", "asyncio"):
        assert f">{model}</text>" in heat_map
    long_label = "processes-asyncio+httpx"
    heat_map = inline_svg(plots.efficiency(run.points.assign(model=long_label)), "heat")
    assert f">{long_label}</text>" in heat_map
