"""A dashboard chart: a plotly figure built on the server, plus the table and CSV of exactly its numbers.

Readable without colour: each trace differs by marker symbol or line dash as well, bars carry their numbers as
text, and every chart has its table.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from plotly.io.json import to_json_plotly

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
    figure: go.Figure | None = None
    empty: str = ""  # what to do when there is nothing to show
    note: str = ""
    highlight: set[int] = field(default_factory=set)  # row indexes to mark (with a word, not colour alone)

    @property
    def figure_data(self) -> dict[str, Any] | None:
        """The figure as plain data for ``json_script`` (plotly's own encoder turns numpy values into lists)."""
        return json.loads(to_json_plotly(self.figure)) if self.figure is not None else None

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
        "template": "plotly_white",
        **extra,
    }


def lines(x: list, series: dict[str, list], y_title: str) -> go.Figure:
    figure = go.Figure(layout=layout(yaxis={"title": {"text": y_title}, "rangemode": "tozero"}))
    for index, (name, values) in enumerate(series.items()):
        figure.add_trace(
            go.Scatter(
                x=x,
                y=values,
                name=name,
                mode="lines+markers",
                line={"dash": DASHES[index % len(DASHES)], "color": COLOURS[index % len(COLOURS)]},
                marker={"symbol": SYMBOLS[index % len(SYMBOLS)], "size": 7},
            )
        )
    return figure


def bars(x: list, series: dict[str, list], y_title: str, *, horizontal: bool = False) -> go.Figure:
    figure = go.Figure(layout=layout(barmode="group", yaxis={"title": {"text": y_title}}))
    for index, (name, values) in enumerate(series.items()):
        figure.add_trace(
            go.Bar(
                x=values if horizontal else x,
                y=x if horizontal else values,
                orientation="h" if horizontal else "v",
                name=name,
                text=values,
                textposition="auto",
                marker={"color": COLOURS[index % len(COLOURS)], "pattern": {"shape": PATTERNS[index % len(PATTERNS)]}},
            )
        )
    return figure
