"""Small formatting filters for the pages."""

from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def shape(dims) -> str:
    """[None, 64] -> "[N, 64]": unknown or symbolic dims shown as their name or N."""
    if dims is None:
        return "unknown rank"
    return "[" + ", ".join("N" if d is None else str(d) for d in dims) + "]"


@register.filter
def si(value) -> str:
    """1234567 -> "1.23 M" for counts such as parameters and MACs."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(number) >= scale:
            return f"{number / scale:.3g} {unit}"
    return f"{number:.0f}"
