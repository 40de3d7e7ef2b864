"""The back-test report of a run: a chart per month for every contender, the requirement line, wins."""
from __future__ import annotations

import os
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ratchet.evaluation.backtest import backtest_summary, metric_table
from ratchet.reporting import charts
from ratchet.specs.model import lower_is_better

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.specs.model import ModelSpec

DEFAULT_REPORTS_DIR = Path(__file__).resolve().parents[3] / "reports"


def reports_dir() -> Path:
    """Where report files are written: `RATCHET_REPORTS_DIR`, else `reports/` in the repository."""
    return Path(os.environ.get("RATCHET_REPORTS_DIR") or DEFAULT_REPORTS_DIR)


def requirement_line(spec: ModelSpec, table: dict[str, dict[str, float]],
                     months: list[str]) -> list[float | None] | None:
    """Per-month bound of the first back-test requirement on the ranking metric (relative ones follow the baseline)."""
    for req in spec.requirements:
        if req.scope != "backtest" or req.metric != spec.metric:
            continue
        if not req.relative_to:
            return [req.bound] * len(months)
        names = spec.baselines if req.relative_to == "baseline" else (req.relative_to,)
        pick = min if lower_is_better(spec.metric) else max
        line = []
        for month in months:
            values = [table[b][month] for b in names if month in table.get(b, {})]
            line.append(req.bound * pick(values) if values else None)
        return line
    return None


REPORT_SECTION = '<section class="report">'
MONTHS_PER_TABLE = 12
REPORT_STYLE = """<style>.report table{border-collapse:collapse;font-size:11px;margin:.4rem 0}
.report td,.report th{border:1px solid #ddd;padding:2px 5px;text-align:right}
.report td.won{background:#e3f4e3}</style>"""


def render(spec: ModelSpec, summary: dict[str, Any], table: dict[str, dict[str, float]], run_id: str) -> str:
    """The report page: what became of the source's rows, the chart of the ranking metric per month, and the
    table of every contender. Its body is one section (`fragment`) that the Ratchet page shows inline."""
    months = summary["months"]
    series = {name: [table[name].get(m) for m in months] for name in table}
    chart = charts.line_chart(months, series, title=f"{spec.name}: back-test {spec.metric} per month",
                              y_label=spec.metric, requirement=requirement_line(spec, table, months))
    reference = summary["reference"]
    role = "the best baseline: no champion at this run" if reference in spec.baselines else "the champion at this run"
    against = f"{reference} ({role})" if reference else "nobody (no results yet)"
    rows = []
    for name, info in summary["contenders"].items():
        won = "reference" if name == reference else f"{info['months_won']}/{info['months']}"
        rows.append(f"<tr><th>{escape(name)}</th><td>{info['mean']:.4g}</td><td>{info['months']}</td>"
                    f"<td>{won}</td></tr>")
    per_month = []
    for first in range(0, len(months), MONTHS_PER_TABLE):  # a year per table: readable in a narrow frame
        shown = months[first:first + MONTHS_PER_TABLE]
        cells = ["".join(f'<td class="{"won" if m in info["won"] else ""}">{table[name][m]:.4g}</td>'
                         if m in table[name] else "<td>–</td>" for m in shown)
                 for name, info in summary["contenders"].items()]
        per_month.append("<table class=\"months\"><thead><tr><th>contender</th>"
                         + "".join(f"<th>{escape(m)}</th>" for m in shown) + "</tr></thead><tbody>"
                         + "".join(f"<tr><th>{escape(name)}</th>{row}</tr>"
                                   for name, row in zip(summary["contenders"], cells, strict=True))
                         + "</tbody></table>")
    body = f"""{REPORT_SECTION}{REPORT_STYLE}
<h1>Back-test of {escape(spec.name)}</h1>
<p>Run <code>{escape(run_id)}</code>. Metric <b>{escape(spec.metric)}</b>; wins are months where a contender beats
<b>{escape(against)}</b> (green cells). Each mean is over the contender's own months (column "months").</p>
<p id="data">{escape(describe_data(summary.get("data")))}</p>
{chart}
<table class="summary"><thead><tr><th>contender</th><th>mean</th><th>months</th>
<th>months won vs {escape(str(reference))}</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<h2>{escape(spec.metric)} per month</h2>
{''.join(per_month)}</section>"""
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>Back-test {escape(spec.name)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}}</style></head><body>
{body}</body></html>"""


def fragment(html: str) -> str | None:
    """The report's section out of its stored page, to show inline; None for a report written before it had one."""
    start, end = html.find(REPORT_SECTION), html.rfind("</section>")
    return html[start:end + len("</section>")] if start >= 0 and end > start else None


def describe_data(data: dict[str, Any] | None) -> str:
    """'2905 usable rows; 37 rows without a target left out; 12 rows without their lags (by days) left out'."""
    if not data:
        return "No data summary."
    parts = [f"{data['rows']} usable rows"]
    if data["dropped_missing_target"]:
        parts.append(f"{data['dropped_missing_target']} rows without a target left out (source.missing_target)")
    if data["rows_without_lags"]:
        parts.append(f"{data['rows_without_lags']} rows without their target lags left out "
                     f"(lags by {data['lags_by']})")
    return "; ".join(parts) + "."


def write_report(registry: Registry, spec: ModelSpec, run_id: str, data: dict[str, Any] | None = None) -> Path:
    """Render the report, store it in PostgreSQL and as a file; returns the file's path.

    `data` is `features.data_summary` of the rows the back-test read, shown on the report and in the status.
    """
    table = metric_table(registry, spec)
    summary = {**backtest_summary(registry, spec, table), "data": data}
    html = render(spec, summary, table, run_id)
    registry.save_report(spec.name, run_id, summary, html)
    path = reports_dir() / spec.name / f"{_safe(run_id)}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html)
    return path


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
