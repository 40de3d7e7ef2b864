"""Charts (`ratchet.reporting.charts`): SVG line charts and their month labels."""
from __future__ import annotations


def test_month_labels_are_evenly_spaced_and_end_on_the_newest_month():
    from ratchet.reporting.charts import line_chart

    months = [f"{2024 + i // 12}-{i % 12 + 1:02d}" for i in range(24)]
    svg = line_chart(months, {"v1": [float(i) for i in range(24)]})
    shown = [m for m in months if f">{m}</text>" in svg]
    assert shown == months[1::2]  # never two neighbours overlapping at the end
