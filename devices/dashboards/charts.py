"""A dashboard chart: a plotly figure built on the server, plus the table and CSV of exactly its numbers.

Figures are plotly's JSON shape written as plain dicts (``{"data": [...], "layout": {...}}``): building them
through ``plotly.graph_objects`` validated every property and cost more than the page's queries (bench/dashboards.py).
Readable without colour: each trace differs by marker symbol or line dash as well, bars carry their numbers as
text, and every chart has its table.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

Figure = dict[str, Any]

SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star", "cross", "triangle-down")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot", "solid", "dash")
PATTERNS = ("", "/", "\\", "x", ".", "+", "-", "|")
COLOURS = ("#3b6ea5", "#1f7a4d", "#e0a040", "#b3261e", "#6b2f8a", "#4a4a4a", "#9fb7d3", "#8a5a00")


@dataclass
class Chart:
    """``rows`` are what the figure plots, one list per table row in the order of ``columns``."""

    id: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    figure: Figure | None = None
    empty: str = ""  # what to do when there is nothing to show
    note: str = ""
    highlight: set[int] = field(default_factory=set)  # row indexes to mark (with a word, not colour alone)

    @property
    def figure_data(self) -> Figure | None:
        return self.figure

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.columns)
        writer.writerows(self.rows)
        return out.getvalue()


def layout(**extra: Any) -> dict[str, Any]:
    return {
        "height": 320,
        "margin": {"l": 60, "r": 20, "t": 10, "b": 60},
        "legend": {"orientation": "h", "y": -0.25},
        "plot_bgcolor": "#fff",
        "paper_bgcolor": "#fff",
        **extra,
    }


def lines(x: list, series: dict[str, list], y_title: str) -> Figure:
    return {
        "data": [
            {
                "type": "scatter",
                "x": x,
                "y": values,
                "name": name,
                "mode": "lines+markers",
                "line": {"dash": DASHES[index % len(DASHES)], "color": COLOURS[index % len(COLOURS)]},
                "marker": {"symbol": SYMBOLS[index % len(SYMBOLS)], "size": 7},
            }
            for index, (name, values) in enumerate(series.items())
        ],
        "layout": layout(yaxis={"title": {"text": y_title}, "rangemode": "tozero"}),
    }


def bars(x: list, series: dict[str, list], y_title: str, *, horizontal: bool = False) -> Figure:
    return {
        "data": [
            {
                "type": "bar",
                "x": values if horizontal else x,
                "y": x if horizontal else values,
                "orientation": "h" if horizontal else "v",
                "name": name,
                "text": values,
                "textposition": "auto",
                "marker": {
                    "color": COLOURS[index % len(COLOURS)],
                    "pattern": {"shape": PATTERNS[index % len(PATTERNS)]},
                },
            }
            for index, (name, values) in enumerate(series.items())
        ],
        "layout": layout(barmode="group", yaxis={"title": {"text": y_title}}),
    }
