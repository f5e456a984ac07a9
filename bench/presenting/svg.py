"""Figures as inline SVG for a page that the page's script makes interactive.

Every artist a figure draws for a model carries `plots.series_gid(model)`; here it becomes
`class="series" data-series=MODEL` in the SVG (a toggle hides it in every figure at once), and a
line with markers also gets `data-tips`: the values of its markers, one text each, in the order
they are drawn, read from the very data the line was given. Legend entries naming a model become
`class="legend-entry"`, so a click on them toggles it too.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.presenting.page import escape, number
from bench.presenting.plots import SERIES_GID, model_colour
from models import split_label
from models.db import DRIVERS

TOGGLE_CSS = """
.toggles { position: sticky; top: 0; z-index: 1; background: #fff; padding: .4em 0;
           display: flex; flex-wrap: wrap; gap: .3em; align-items: center; font-size: 13px; }
.toggle { font: inherit; border: 1px solid #ccc; background: #fafafa; border-radius: 3px;
          padding: 1px 7px; cursor: pointer; }
.toggle.off { opacity: .45; text-decoration: line-through; }
.swatch { display: inline-block; width: .8em; height: .8em; margin-right: .3em; }
.series.off { display: none; } .legend-entry { cursor: pointer; } .legend-entry.off { opacity: .3; }
#tip { position: absolute; background: #222; color: #fff; font-size: 12px; padding: 3px 6px;
       border-radius: 3px; pointer-events: none; white-space: pre; }
"""


def inline_svg(fig: Figure, name: str) -> str:
    """`fig` as an <svg> element to sit inside HTML, its series marked (`name` keeps the ids
    it gives unique on the page)."""
    marks = _mark(fig, name)
    buffer = io.StringIO()
    # Text as text (searchable, and the page's own font), not glyph paths; a tight box, so a
    # long label ("processes-asyncio+httpx") is not cut at the figure's edge.
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog
    return re.sub(r'<g id="([^"]+)">', lambda m: marks.get(m.group(1), m.group(0)), text)


def _mark(fig: Figure, name: str) -> dict[str, str]:
    """Give each model's artists (and the legend entries naming a model) an id of their own,
    and return the opening tag each id's group gets in the SVG."""
    marks: dict[str, str] = {}

    def tag(artist: matplotlib.artist.Artist, model: str, kind: str, tips: str = "") -> None:
        gid = f"{name}-{len(marks)}"
        artist.set_gid(gid)
        marks[gid] = (
            f'<g id="{gid}" class="{kind}" data-series="{escape(model)}"'
            + (f' data-tips="{escape(tips)}"' if tips else "")
            + ">"
        )

    for ax in fig.axes:
        labels: dict[str, str] = {}
        for artist in ax.get_children():
            gid = artist.get_gid()
            if not (gid and gid.startswith(SERIES_GID)):
                continue
            model = gid[len(SERIES_GID) :]
            tips = _tips(ax, artist, model) if isinstance(artist, Line2D) else ""
            tag(artist, model, "series", tips)
            if isinstance(artist, Line2D):
                labels[str(artist.get_label())] = model
        legend = ax.get_legend()
        if legend is not None:
            for handle, text in zip(legend.legend_handles, legend.get_texts(), strict=True):
                named = labels.get(text.get_text())
                if named is not None and handle is not None:
                    tag(handle, named, "legend-entry")
                    tag(text, named, "legend-entry")
    return marks


def _tips(ax: Axes, line: Line2D, model: str) -> str:
    """Each marker's values as text, as JSON; none for a line without markers or a cross on
    the axis (a point not measured, drawn outside the data's coordinates)."""
    if line.get_marker() in (None, "None", "", " ", "x"):
        return ""
    xs = np.asarray(line.get_xdata(), dtype=float)
    ys = np.asarray(line.get_ydata(), dtype=float)
    # The SVG writer leaves out a marker it cannot place: not finite, or not positive on a log
    # axis; the values must skip the same ones to stay in step with the markers.
    drawn = np.isfinite(xs) & np.isfinite(ys)
    if ax.get_xscale() == "log":
        drawn &= xs > 0
    if ax.get_yscale() == "log":
        drawn &= ys > 0
    title, unit = ax.get_title(), _unit(ax)
    return json.dumps(
        [
            f"{model} · {_x_text(ax, x)}\n{title}: {number(y)}{unit}"
            for x, y in zip(xs[drawn], ys[drawn], strict=True)
        ]
    )


def _x_text(ax: Axes, x: float) -> str:
    label = ax.get_xlabel()
    if label == "percentile":  # drawn at 1/(1-p)
        return f"p{100 * (1 - 1 / x):.4g}"
    if label.startswith("concurrency"):
        return f"N={x:g}"
    return f"{label}: {number(x)}"


def _unit(ax: Axes) -> str:
    """The unit in the y label's last parentheses ("throughput (jobs/s)"), or in a sibling's
    when the axes share a y label."""
    for sibling in (ax, *ax.get_shared_y_axes().get_siblings(ax)):
        found = re.search(r"\(([^()]*)\)\s*$", sibling.get_ylabel())
        if found:
            return f" {found.group(1)}"
    return ""


def toggles(labels: Sequence[str], interpreters: dict[str, str]) -> str:
    """A bar of buttons: one per model label, in its colour, and one per HTTP client, database
    driver and interpreter (given as label -> interpreter) when the run has several, hiding all
    theirs."""
    buttons = [
        f"<button class='toggle' data-series='{escape(label)}'>"
        f"<span class='swatch' style='background:{model_colour(label)}'></span>"
        f"{escape(label)}</button>"
        for label in labels
    ]
    groups: dict[str, list[str]] = {}
    for label in labels:
        stack = split_label(label.split(" @")[0])[1]
        if stack is not None:
            kind = "driver" if stack in DRIVERS else "client"
            groups.setdefault(f"{kind} {stack}", []).append(label)
    if len(set(interpreters.values())) > 1:
        for label, tag in interpreters.items():
            groups.setdefault(f"interpreter {tag}", []).append(label)
    buttons.extend(
        f"<button class='toggle' data-members='{escape(json.dumps(members))}'>"
        f"{escape(group)}</button>"
        for group, members in groups.items()
    )
    return (
        "<div class='toggles'>Show or hide (or click a legend entry):"
        + "".join(buttons)
        + "</div><div id='tip' hidden></div>"
    )
