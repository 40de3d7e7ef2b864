"""Self-contained SVG line charts (no JavaScript, no CDN): used by the back-test report and the UI page."""
from __future__ import annotations

import math
from html import escape

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
REQUIREMENT_COLOR = "#d62728"


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    step = 10 ** math.floor(math.log10((high - low) / count))
    for factor in (1, 2, 5, 10):
        if (high - low) / (step * factor) <= count:
            step *= factor
            break
    start = math.ceil(low / step) * step
    return [start + i * step for i in range(int((high - start) / step) + 1)]


def line_chart(x_labels: list[str], series: dict[str, list[float | None]], *, title: str = "",
               y_label: str = "", requirement: list[float | None] | None = None,
               marks: list[bool] | None = None, width: int = 760, height: int = 300) -> str:
    """An SVG chart of one line per series over `x_labels`.

    `requirement` draws the bound as a dashed red line (it may vary per x, e.g. a multiple of a
    baseline; over a single x it spans the plot); `marks` flags x positions (breaches) with red dots on the
    first series. The y range holds every value and the bound, so the bound line is always inside the axes.
    """
    left, right, top, bottom = 60, 150, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    values += [v for v in (requirement or []) if v is not None and math.isfinite(v)]
    if not x_labels or not values:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" height="60" role="img">'
                f'<text x="10" y="35" fill="#666">{escape(title)}: no data yet</text></svg>')
    low, high = min(values), max(values)
    pad = (high - low) * 0.08 or abs(high) * 0.1 or 1.0
    low, high = low - pad, high + pad
    n = len(x_labels)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
             f'<rect class="plot" x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>']
    for tick in _ticks(low, high):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" stroke="#eee"/>'
                     f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" font-size="10" text-anchor="end">{tick:g}</text>')
    label_every = max(1, math.ceil(n / 12))
    for i, label in enumerate(x_labels):
        if (n - 1 - i) % label_every == 0:  # counted from the newest, which is always labelled, evenly spaced
            parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" font-size="10" '
                         f'text-anchor="middle">{escape(label)}</text>')
    if y_label:
        parts.append(f'<text x="14" y="{top + plot_h / 2}" font-size="11" transform="rotate(-90 14 '
                     f'{top + plot_h / 2})" text-anchor="middle">{escape(y_label)}</text>')

    def path(points: list[float | None]) -> str:
        commands, pen_down = [], False
        for i, v in enumerate(points):
            if v is None or not math.isfinite(v):
                pen_down = False
                continue
            commands.append(f"{'L' if pen_down else 'M'}{x(i):.1f},{y(v):.1f}")
            pen_down = True
        return " ".join(commands)

    legend = list(series.items())
    for k, (name, points) in enumerate(legend):
        color = PALETTE[k % len(PALETTE)]
        parts.append(f'<path d="{path(points)}" fill="none" stroke="{color}" stroke-width="2" '
                     f'data-series="{escape(name)}"/>')
        for i, v in enumerate(points):
            if v is not None and math.isfinite(v):
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                             f'<title>{escape(name)} {escape(x_labels[i])}: {v:.4g}</title></circle>')
    if requirement:
        line = path(requirement)
        if n == 1 and line:  # one x: a level across the plot, not a dot
            line = f"M{left},{y(requirement[0]):.1f} L{left + plot_w},{y(requirement[0]):.1f}"
        parts.append(f'<path d="{line}" fill="none" stroke="{REQUIREMENT_COLOR}" stroke-width="1.5" '
                     f'stroke-dasharray="6 4" data-series="requirement"/>')
    if marks and legend:
        first = legend[0][1]
        for i, flagged in enumerate(marks):
            if flagged and i < len(first) and first[i] is not None:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(first[i]):.1f}" r="6" fill="none" '
                             f'stroke="{REQUIREMENT_COLOR}" stroke-width="2" class="breach"/>')
    entries = [(name, PALETTE[k % len(PALETTE)], "") for k, (name, _) in enumerate(legend)]
    if requirement:
        entries.append(("requirement", REQUIREMENT_COLOR, ' stroke-dasharray="6 4"'))
    for k, (name, color, dash) in enumerate(entries):
        ly = top + 10 + k * 16
        parts.append(f'<line x1="{left + plot_w + 10}" x2="{left + plot_w + 30}" y1="{ly}" y2="{ly}" '
                     f'stroke="{color}" stroke-width="2"{dash}/>'
                     f'<text x="{left + plot_w + 35}" y="{ly + 4}" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)
