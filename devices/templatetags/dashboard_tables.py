"""``{% load dashboard_tables %}`` ... ``{% chart_rows chart %}``, ``{% stuck_rows stuck project %}``: the rows of
the dashboards' tables.

What the template loops wrote, cell for cell, but in Python: a dashboard's tables hold hundreds of cells, and the
template engine (a node, a lookup and a localized number per cell) cost more than the page's queries.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.conf import settings
from django.template.base import render_value_in_context
from django.template.defaultfilters import timesince_filter
from django.urls import reverse
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

from devices.dashboards.charts import Chart
from devices.dashboards.pages import StuckDevice

register = template.Library()


def _cell(value: Any, context) -> str:
    """``{% if v is None %}—{% else %}{{ v }}{% endif %}``."""
    if value is None:
        return "—"
    if type(value) is int and not settings.USE_THOUSAND_SEPARATOR:
        return str(value)  # what localize gives an int without grouping, at a fraction of its cost
    if type(value) is str:
        return conditional_escape(value) if context.autoescape else value
    return render_value_in_context(value, context)


@register.simple_tag(takes_context=True)
def chart_rows(context, chart: Chart) -> SafeString:
    """``<tr>`` per row, marked ``class="fail"`` and with a "failing" cell where the chart highlights it."""
    out = []
    for index, row in enumerate(chart.rows):
        failing = index in chart.highlight
        out.append('<tr class="fail">' if failing else "<tr>")
        out.extend(f"<td>{_cell(value, context)}</td>" for value in row)
        if chart.highlight:
            out.append("<td><strong>failing</strong></td>" if failing else "<td></td>")
        out.append("</tr>")
    return mark_safe("".join(out))  # every cell is escaped above


@register.simple_tag(takes_context=True)
def stuck_rows(context, stuck: list[StuckDevice], project) -> SafeString:
    """The rows of the download-status page's stuck devices, each linking to its device's page."""
    out = []
    for row in stuck:
        url = reverse("device", args=[project.slug, row.device_id])
        installed = "none" if row.installed is None else f"v{_cell(row.installed, context)}"
        if row.installed_state == "failed":
            installed += ' <span class="state failed">failed</span>'
        out.append(
            f'<tr><td><a href="{conditional_escape(url)}">{_cell(row.device_id, context)}</a></td>'
            f"<td>{_cell(row.model, context)}</td>\n"
            f"    <td>v{_cell(row.offered, context)}</td><td>{installed}</td>\n"
            f"    <td>{_cell(timesince_filter(row.since), context)}</td>"
            f'<td class="muted">{_cell(row.reason, context)}</td></tr>\n  '
        )
    return mark_safe("".join(out))  # every value is escaped above
