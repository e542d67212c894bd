"""The dashboard's plotly figures, built on the server from the results' daily series (drawn by plotly.js).

Figures are written as plotly's JSON figure spec (``{"data": [...], "layout": {...}}``) directly: building them
through ``plotly.graph_objects`` validates every property in Python and cost more than all the statistics of a
page (about 60 ms a figure); the spec is the same, and the browser test reads it back from the drawn chart.
"""

from __future__ import annotations

from html import escape
from typing import Any

from django.utils.safestring import SafeString, mark_safe

from devices.experiments.metrics import MEAN, METRICS
from devices.experiments.results import Results

COLORS = ["#3b6ea5", "#e07b39", "#1f7a4d", "#6b2f8a", "#b3261e", "#8c6d1f", "#2f8a86", "#555555", "#c2185b", "#0097a7"]


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def metric_figure(results: Results, name: str) -> dict[str, Any]:
    """Each arm's cumulated value per day with its confidence band (rates in percent)."""
    metric = METRICS[name]
    factor = 1.0 if metric.kind == MEAN else 100.0
    rows = results.series.get(name, [])
    data: list[dict[str, Any]] = []
    for index, arm in enumerate(result.arm for result in results.arms):
        color = COLORS[index % len(COLORS)]
        mine = [row for row in rows if row["arm"] == arm.name]
        days = [row["day"] for row in mine]
        low = [_scaled(row["low"], factor) for row in mine]
        high = [_scaled(row["high"], factor) for row in mine]
        data.append(
            {
                "type": "scatter",
                "x": days + days[::-1],
                "y": high + low[::-1],
                "fill": "toself",
                "fillcolor": color,
                "opacity": 0.15,
                "line": {"width": 0},
                "hoverinfo": "skip",
                "name": f"{arm.name} 95% band",
                "showlegend": False,
            }
        )
        data.append(
            {
                "type": "scatter",
                "x": days,
                "y": [_scaled(row["value"], factor) for row in mine],
                "mode": "lines+markers",
                "line": {"color": color},
                "name": arm.name + (" (control)" if arm.is_control else ""),
            }
        )
    layout = {
        "height": 300,
        "margin": {"l": 60, "r": 10, "t": 30, "b": 40},
        "title": {"text": metric.label, "font": {"size": 14}},
        "yaxis": {"title": {"text": "ms" if metric.kind == MEAN else "%"}},
        "xaxis": {"title": {"text": "day (cumulative)"}},
        "legend": {"orientation": "h"},
    }
    return {"data": data, "layout": layout}


def figures_json(results: Results) -> list[dict[str, Any]]:
    """One chart per metric (primary first): its title, figure spec, and the rows its table shows."""
    return [
        {
            "metric": name,
            "label": METRICS[name].label,
            "script_id": f"figure-{name}",
            "figure": metric_figure(results, name),
            "table": table_rows(results.series.get(name, [])),
        }
        for name in results.metrics()
    ]


TABLE_COLUMNS = ["day", "arm", "value", "low", "high", "units", "diff", "diff_low", "diff_high"]


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table_rows(rows: list[dict[str, Any]]) -> SafeString:
    """The table view of a chart: one escaped <tr> per day and arm (built here with one escape per cell: a
    template loop, or ``format_html`` per row, cost more than the statistics)."""
    return mark_safe(  # every cell is escaped just below
        "\n".join(
            "<tr>" + "".join(f"<td>{escape(_cell(row[column]))}</td>" for column in TABLE_COLUMNS) + "</tr>"
            for row in rows
        )
    )
