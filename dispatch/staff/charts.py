"""Charts drawn on the server as inline SVG: no script, no CDN, readable without internet.

Each function takes plain labels and numbers and returns an `<svg>` element as Markup. A
missing value (None: nothing to divide, no cases) leaves a gap rather than drawing a zero.
Counts (`integer=True`) get whole-number ticks only (0, 1, 2 — never 1.25); `unit` names what
the axis counts (件, 分钟, %) above it; no text is smaller than `FONT` pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

PALETTE = ("#8b1a1a", "#1f5f8b", "#d08c1a", "#3b7d3b", "#6b4c9a", "#7a7a7a")
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 40, 36
FONT = 12  # px: the smallest text a chart has

Series = tuple[str, Sequence[float | None]]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2 or 5 × a power of ten)."""
    if value <= 0:
        return 1.0
    power: float = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return value


def ticks(value: float, *, integer: bool = False, top: float | None = None) -> list[float]:
    """The axis ticks from 0 up to at least `value`: at most five, evenly spaced; whole
    numbers (1, 2, 5 × a power of ten apart) for counts."""
    if integer and top is None:
        power = 1
        while True:
            for step in (power, 2 * power, 5 * power):
                count = math.ceil(max(value, 1) / step)
                if count <= 4:
                    return [float(step * i) for i in range(count + 1)]
            power *= 10
    high = top or _nice_max(value)
    return [high * i / 4 for i in range(5)]


def _frame(title: str, scale: list[float], fmt: Callable[[float], str], body: list[str],
           legend: Sequence[str], unit: str) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    top = scale[-1]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
             f'aria-label="{escape(title)}"><title>{escape(title)}</title>']
    for tick in scale:
        y = TOP + plot_h - plot_h * tick / top
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#e4e4e4"/><text x="{LEFT - 4}" y="{y + 4:.1f}" '
                     f'font-size="{FONT}" text-anchor="end" fill="#444">'
                     f'{escape(fmt(tick))}</text>')
    if unit:
        parts.append(f'<text x="{LEFT - 4}" y="{TOP - 8}" font-size="{FONT}" text-anchor="end" '
                     f'fill="#444">（{escape(unit)}）</text>')
    parts.extend(body)
    x = LEFT
    for i, name in enumerate(legend):
        parts.append(f'<rect x="{x}" y="6" width="12" height="12" fill="{PALETTE[i % 6]}"/>'
                     f'<text x="{x + 16}" y="17" font-size="{FONT}">{escape(name)}</text>')
        x += 28 + FONT * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def _label(x: float, text: str) -> str:
    return (f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" font-size="{FONT}" '
            f'text-anchor="middle" fill="#333">{escape(text)}</text>')


def bars(labels: Sequence[str], series: Sequence[Series], *, title: str,
         fmt: Callable[[float], str] = lambda v: f"{v:g}", top: float | None = None,
         integer: bool = False, unit: str = "") -> Markup:
    """Vertical bars, one group per label and one bar per series."""
    values = [v for _, vs in series for v in vs if v is not None]
    scale = ticks(max(values, default=0), integer=integer, top=top)
    top = scale[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group = plot_w / max(len(labels), 1)
    bar = group * 0.8 / max(len(series), 1)
    body: list[str] = []
    for i, label in enumerate(labels):
        x0 = LEFT + i * group + group * 0.1
        for j, (name, vs) in enumerate(series):
            value = vs[i]
            if value is None:
                continue
            h = plot_h * min(value, top) / top
            body.append(f'<rect x="{x0 + j * bar:.1f}" y="{TOP + plot_h - h:.1f}" '
                        f'width="{max(bar - 1, 1):.1f}" height="{h:.1f}" fill="{PALETTE[j % 6]}">'
                        f'<title>{escape(label)} {escape(name)}: {escape(fmt(value))}</title>'
                        "</rect>")
        if len(labels) <= 24 or i % max(len(labels) // 12, 1) == 0:
            body.append(_label(x0 + group * 0.4, label))
    return _frame(title, scale, fmt, body, [name for name, _ in series], unit)


def lines(labels: Sequence[str], series: Sequence[Series], *, title: str,
          fmt: Callable[[float], str] = lambda v: f"{v:g}", top: float | None = None,
          integer: bool = False, unit: str = "") -> Markup:
    """Lines with a dot per value; a None breaks the line."""
    values = [v for _, vs in series for v in vs if v is not None]
    scale = ticks(max(values, default=0), integer=integer, top=top)
    top = scale[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(labels), 1)
    body: list[str] = []
    for j, (name, vs) in enumerate(series):
        colour = PALETTE[j % 6]
        runs: list[list[str]] = [[]]
        for i, value in enumerate(vs):
            if value is None:
                runs.append([])
                continue
            x = LEFT + step * (i + 0.5)
            y = TOP + plot_h - plot_h * min(value, top) / top
            runs[-1].append(f"{x:.1f},{y:.1f}")
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>'
                        f'{escape(labels[i])} {escape(name)}: {escape(fmt(value))}</title>'
                        "</circle>")
        body.extend(f'<polyline points="{" ".join(run)}" fill="none" stroke="{colour}" '
                    f'stroke-width="2"/>' for run in runs if len(run) > 1)
    every = max(len(labels) // 12, 1)
    body.extend(_label(LEFT + step * (i + 0.5), label)
                for i, label in enumerate(labels) if i % every == 0)
    return _frame(title, scale, fmt, body, [name for name, _ in series], unit)


def stacked(parts: Sequence[tuple[str, float | None]], *, title: str) -> Markup:
    """One horizontal bar split into shares (of 1), with each share's percentage."""
    width = WIDTH - LEFT - RIGHT
    body = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {WIDTH} 64" width="{WIDTH}" height="64" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title>"]
    x = float(LEFT)
    for i, (name, share) in enumerate(parts):
        if not share:
            continue
        w = width * share
        body.append(f'<rect x="{x:.1f}" y="8" width="{w:.1f}" height="24" '
                    f'fill="{PALETTE[i % 6]}"><title>{escape(name)} {share * 100:.1f}%</title>'
                    "</rect>")
        if w > 36:
            body.append(f'<text x="{x + w / 2:.1f}" y="25" font-size="{FONT}" fill="#fff" '
                        f'text-anchor="middle">{share * 100:.0f}%</text>')
        x += w
    x = float(LEFT)
    for i, (name, _) in enumerate(parts):
        body.append(f'<rect x="{x}" y="44" width="12" height="12" fill="{PALETTE[i % 6]}"/>'
                    f'<text x="{x + 16}" y="55" font-size="{FONT}">{escape(name)}</text>')
        x += 30 + FONT * len(name)
    body.append("</svg>")
    return Markup("".join(body))
