"""The dashboard's plotly figures, built on the server from the results' daily series (drawn by plotly.js)."""

from __future__ import annotations

import json
from typing import Any

import plotly.graph_objects as go

from devices.experiments.metrics import MEAN, METRICS
from devices.experiments.results import Results

COLORS = ["#3b6ea5", "#e07b39", "#1f7a4d", "#6b2f8a", "#b3261e", "#8c6d1f", "#2f8a86", "#555555", "#c2185b", "#0097a7"]


def _scaled(value: float | None, factor: float) -> float | None:
    return None if value is None else value * factor


def metric_figure(results: Results, name: str) -> go.Figure:
    """Each arm's cumulated value per day with its confidence band (rates in percent)."""
    metric = METRICS[name]
    factor = 1.0 if metric.kind == MEAN else 100.0
    figure = go.Figure()
    rows = results.series.get(name, [])
    for index, arm in enumerate(result.arm for result in results.arms):
        color = COLORS[index % len(COLORS)]
        mine = [row for row in rows if row["arm"] == arm.name]
        days = [row["day"] for row in mine]
        low = [_scaled(row["low"], factor) for row in mine]
        high = [_scaled(row["high"], factor) for row in mine]
        figure.add_trace(
            go.Scatter(
                x=days + days[::-1],
                y=high + low[::-1],
                fill="toself",
                fillcolor=color,
                opacity=0.15,
                line={"width": 0},
                hoverinfo="skip",
                name=f"{arm.name} 95% band",
                showlegend=False,
            )
        )
        figure.add_trace(
            go.Scatter(
                x=days,
                y=[_scaled(row["value"], factor) for row in mine],
                mode="lines+markers",
                line={"color": color},
                name=arm.name + (" (control)" if arm.is_control else ""),
                meta={"arm": arm.name},
            )
        )
    unit = "ms" if metric.kind == MEAN else "%"
    figure.update_layout(
        height=300,
        margin={"l": 60, "r": 10, "t": 30, "b": 40},
        title={"text": metric.label, "font": {"size": 14}},
        yaxis={"title": {"text": unit}},
        xaxis={"title": {"text": "day (cumulative)"}},
        legend={"orientation": "h"},
    )
    return figure


def figures_json(results: Results) -> list[dict[str, Any]]:
    """One chart per metric (primary first): its title, figure as plotly JSON, and the rows its table shows."""
    return [
        {
            "metric": name,
            "label": METRICS[name].label,
            "script_id": f"figure-{name}",
            "figure": json.loads(metric_figure(results, name).to_json()),
            "rows": results.series.get(name, []),
        }
        for name in results.metrics()
    ]
