"""The report's plots: matplotlib figures rendered to static SVG, embedded as data URIs.

No pyplot (no global figure state, no GUI backend), text drawn as paths (no font needed where the page
is opened) and a fixed hash salt and no date, so the same statistics give the same bytes.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from got_data.distributions import Histogram, Tally

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

SIZE = (5.2, 3.0)
BAR = "#4363d8"
REFERENCE_COLOURS = ("#e6194b", "#f58231", "#3cb44b")
_RC: dict[RcKeyType, Any] = {"svg.fonttype": "path", "svg.hashsalt": "got-data-report", "font.size": 8.5, "axes.spines.top": False,
       "axes.spines.right": False}


def svg_data_uri(figure: Figure) -> str:
    """The figure as an SVG data URI (what an <img> on a page with a data:-only policy can show)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(_RC):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(title: str, xlabel: str, ylabel: str = "count") -> tuple[Figure, Axes]:
    with matplotlib.rc_context(_RC):
        figure = Figure(figsize=SIZE)
        axes = figure.add_subplot()
    axes.set_title(title, loc="left", fontsize=9.5)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    return figure, axes


def _references(axes: Axes, references: dict[str, float], ours: float | None) -> None:
    """Vertical lines at reference values (the GoT paper's means) and at ours, labelled in a legend."""
    for colour, (label, value) in zip(REFERENCE_COLOURS, references.items()):
        axes.axvline(value, color=colour, linestyle="--", linewidth=1.2, label=f"{label}: {value:g}")
    if ours is not None:
        axes.axvline(ours, color="#222", linewidth=1.2, label=f"this run: {ours:.4g}")
    if references or ours is not None:
        axes.legend(frameon=False, fontsize=7.5)


def tally_figure(title: str, tally: Tally, xlabel: str, references: dict[str, float] | None = None) -> str:
    """Bars of exact counts; numeric values on a numeric axis (so reference means line up), names as labels."""
    figure, axes = _figure(title, xlabel)
    items = tally.items()
    numeric = all(value.lstrip("-").isdigit() for value, _ in items)
    if numeric:
        axes.bar([int(v) for v, _ in items], [n for _, n in items], width=0.8, color=BAR)
        _references(axes, references or {}, tally.mean())
    else:
        positions = range(len(items))
        axes.bar(list(positions), [n for _, n in items], width=0.8, color=BAR)
        axes.set_xticks(list(positions), [v for v, _ in items], rotation=30, ha="right")
    return svg_data_uri(figure)


def histogram_figure(title: str, histogram: Histogram, xlabel: str, references: dict[str, float] | None = None,
                     log_x: bool = False) -> str:
    """Bars over the histogram's geometric buckets; the mean and reference values as lines."""
    figure, axes = _figure(title, xlabel)
    bars = [(low, high, n) for low, high, n in histogram.bars() if high > 0]
    if bars:
        axes.bar([low for low, _, _ in bars], [n for _, _, n in bars], width=[high - low for low, high, _ in bars],
                 align="edge", color=BAR)
    if log_x:
        axes.set_xscale("log")
    _references(axes, references or {}, histogram.mean if histogram.count else None)
    return svg_data_uri(figure)


def sizes_figure(title: str, sizes: Tally) -> str:
    """Image sizes as points (width, height), area by how many images have that size."""
    figure, axes = _figure(title, "width (px, rounded to 32)", "height (px)")
    points = [(tuple(int(side) for side in value.split("x")), n) for value, n in sizes.items()]
    if points:
        largest = max(n for _, n in points)
        axes.scatter([w for (w, _), _ in points], [h for (_, h), _ in points],
                     s=[20 + 180 * n / largest for _, n in points], color=BAR, alpha=0.6)
    return svg_data_uri(figure)


def latency_figure(title: str, stages: Sequence[str], percentiles: Mapping[str, Sequence[float]]) -> str:
    """Per stage, grouped bars of latency percentiles (seconds, log scale)."""
    figure, axes = _figure(title, "stage", "seconds per input")
    width = 0.8 / max(len(percentiles), 1)
    for n, (colour, (label, values)) in enumerate(zip(REFERENCE_COLOURS, percentiles.items())):
        axes.bar([i + n * width for i in range(len(stages))], [max(v, 1e-6) for v in values], width=width,
                 color=colour, label=label)
    axes.set_xticks([i + 0.4 - width / 2 for i in range(len(stages))], list(stages), rotation=20, ha="right")
    axes.set_yscale("log")
    axes.legend(frameon=False, fontsize=7.5)
    return svg_data_uri(figure)
