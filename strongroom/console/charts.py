"""Server-rendered SVG charts: geometry computed here, drawn by the templates (no script, no chart CDN).

Colours are SVG presentation attributes and classes from console.css: the console's Content-Security-Policy
allows no inline style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

WIDTH = 880
HEIGHT = 240
LEFT = 64  # room for the value labels
BOTTOM = 28  # room for the time labels
TOP = 10
RIGHT = 10


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class LineChart:
    """A line of values over time: ``path`` is the polyline's points, ``area`` the filled shape under it."""

    width: int
    height: int
    path: str
    area: str
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    points: int
    summary: str  # for screen readers (the SVG's <title>)
    last: tuple[float, float] | None = None


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    outcome: str
    count: int
    label: str


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    outcomes: list[str]
    summary: str
    totals: dict[str, int] = field(default_factory=dict)


def money(value: Decimal | float | None) -> str:
    """``31,200.00`` (two decimals, thousands separated); an em dash for no value."""
    if value is None:
        return "—"
    return f"{Decimal(value):,.2f}"


def _nice_top(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^n at or above ``value`` (a round axis maximum)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1.0
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def _short(value: float) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.4g}"


def line_chart(series: Sequence[tuple[datetime, Decimal]], unit: str = "USD") -> LineChart:
    """A line chart of ``(time, value)`` pairs, oldest first."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    if not series:
        return LineChart(WIDTH, HEIGHT, "", "", [], [], 0, f"No {unit} values stored yet.")
    start, end = series[0][0].timestamp(), series[-1][0].timestamp()
    span = max(end - start, 1.0)
    top = _nice_top(max(float(v) for _, v in series))

    def xy(at: datetime, value: Decimal) -> tuple[float, float]:
        x = LEFT + (plot_w * (at.timestamp() - start) / span if len(series) > 1 else plot_w / 2)
        return round(x, 1), round(TOP + plot_h - plot_h * float(value) / top, 1)

    coords = [xy(at, v) for at, v in series]
    path = " ".join(f"{x},{y}" for x, y in coords)
    base = TOP + plot_h
    area = f"{coords[0][0]},{base} {path} {coords[-1][0]},{base}"
    y_ticks = [Tick(LEFT - 6, round(TOP + plot_h - plot_h * i / 4, 1), _short(top * i / 4)) for i in range(5)]
    stamps = [series[0][0], series[-1][0]] if len(series) > 1 else [series[0][0]]
    x_ticks = [Tick(xy(at, Decimal(0))[0], HEIGHT - 8, at.strftime("%d %b %H:%M")) for at in stamps]
    summary = (f"{unit} value over time: {len(series)} point{'s' if len(series) != 1 else ''} from {series[0][0]:%Y-%m-%d %H:%M} to "
               f"{series[-1][0]:%Y-%m-%d %H:%M} UTC; latest {money(series[-1][1])} {unit}.")
    return LineChart(WIDTH, HEIGHT, path, area, y_ticks, x_ticks, len(series), summary, coords[-1])


def bar_chart(rows: Sequence[tuple[datetime, str, int]], outcomes: Sequence[str]) -> BarChart:
    """Stacked bars of counts per hour and outcome (``(hour, outcome, count)`` rows, oldest first)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    hours: dict[datetime, dict[str, int]] = {}
    for hour, outcome, count in rows:
        hours.setdefault(hour, {})[outcome] = hours.get(hour, {}).get(outcome, 0) + count
    totals = {o: sum(h.get(o, 0) for h in hours.values()) for o in outcomes}
    if not hours:
        return BarChart(WIDTH, HEIGHT, [], [], [], list(outcomes), "No verifications recorded yet.", totals)
    top = max(_nice_top(max(sum(h.values()) for h in hours.values())), 4.0)  # whole-number ticks
    slot = plot_w / max(len(hours), 1)
    width = max(min(slot * 0.7, 40), 2)
    bars: list[Bar] = []
    x_ticks: list[Tick] = []
    every = max(1, len(hours) // 6)
    for i, (hour, counts) in enumerate(sorted(hours.items())):
        x = LEFT + slot * i + (slot - width) / 2
        y = float(TOP + plot_h)
        for outcome in outcomes:
            count = counts.get(outcome, 0)
            if count:
                h = plot_h * count / top
                y -= h
                bars.append(Bar(round(x, 1), round(y, 1), round(width, 1), round(h, 1), outcome, count,
                                f"{hour:%Y-%m-%d %H}:00 UTC: {count} {outcome}"))
        if i % every == 0:
            x_ticks.append(Tick(round(x + width / 2, 1), HEIGHT - 8, f"{hour:%d %b %H}h"))
    y_ticks = [Tick(LEFT - 6, round(TOP + plot_h - plot_h * i / 4, 1), _short(top * i / 4)) for i in range(5)]
    summary = (f"Verifications per hour over {len(hours)} hour{'s' if len(hours) != 1 else ''}: "
               + ", ".join(f"{totals[o]} {o}" for o in outcomes if totals[o]) + ".")
    return BarChart(WIDTH, HEIGHT, bars, y_ticks, x_ticks, list(outcomes), summary, totals)
