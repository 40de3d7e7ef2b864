"""Alert mails: what a failed now-test or regression test says, as plain text and as HTML.

Each mail is written once as sections (paragraphs, tables, links) and rendered both ways, so the
two parts never disagree. Requirement verdicts are worded by `RequirementResult.describe`.
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any, NamedTuple

from ratchet.modeling.metrics import best_baseline

if TYPE_CHECKING:
    from ratchet.evaluation.golden import GoldenResult
    from ratchet.evaluation.nowtest import NowtestOutcome
    from ratchet.evaluation.requirements import RequirementResult

SUBJECT_PREFIX = "[Ratchet]"


class Guidance(NamedTuple):
    """What a now-test mail says beyond the verdicts: the model's Ratchet page, how each bound was set (one line
    per requirement, `evaluation.requirements.bound_origin`) and the next step with its link."""

    page_url: str
    bounds: tuple[str, ...] = ()
    next_step: str | None = None
    next_label: str | None = None
    next_url: str | None = None


class Mail(NamedTuple):
    """A built alert: its subject, plain-text body, HTML body and the link to the Airflow run that raised it."""

    subject: str
    text: str
    html: str
    link: str


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table_text(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [headers] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells)


def _table_html(headers: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(_fmt(c))}</td>" for c in row)
                   + "</tr>" for row in rows)
    return f"<table style='border-collapse:collapse'><tr>{head}</tr>{body}</table>"


class _MailBuilder:
    """Sections written once, rendered as plain text and as HTML."""

    def __init__(self, title: str):
        self.title, self.parts = title, []

    def para(self, text: str) -> None:
        self.parts.append(("p", text))

    def table(self, heading: str, headers: list[str], rows: list[list[Any]]) -> None:
        if rows:
            self.parts.append(("t", (heading, headers, rows)))

    def link(self, label: str, url: str) -> None:
        self.parts.append(("a", (label, url)))

    def render(self) -> tuple[str, str]:
        text, body = [self.title, ""], [f"<h2>{html.escape(self.title)}</h2>"]
        for kind, part in self.parts:
            if kind == "p":
                text += [part, ""]
                body.append(f"<p>{html.escape(part)}</p>")
            elif kind == "t":
                heading, headers, rows = part
                text += [heading, _table_text(headers, rows), ""]
                body.append(f"<h3>{html.escape(heading)}</h3>{_table_html(headers, rows)}")
            else:
                label, url = part
                text += [f"{label}: {url}", ""]
                body.append(f"<p><a href='{html.escape(url, quote=True)}'>{html.escape(label)}</a>: "
                            f"{html.escape(url)}</p>")
        return "\n".join(text), "<html><body>" + "".join(body) + "</body></html>"


def _awaiting(outcome: NowtestOutcome) -> str:
    """The window's rows still without a label (not scored), when there are any."""
    return f"; {outcome.awaiting_labels} more still await their labels" if outcome.awaiting_labels else ""


def build_nowtest_alert(outcome: NowtestOutcome, airflow_run_url: str, guidance: Guidance | None = None) -> Mail:
    """The mail for a failed now-test: window, each contender's re-predicted verdicts, what was served and the
    service level, worst misses, drift, how the bounds were set, the next step and links. The subject prefixes a
    breach of served answers with 'served'."""
    window = f"{outcome.window_start:%Y-%m-%d %H:%M} .. {outcome.window_end:%Y-%m-%d %H:%M} (end excluded)"
    champion = outcome.champion
    reasons = []
    if outcome.stale:
        reasons.append(f"stale data: {outcome.n_rows} rows < min_rows {outcome.min_rows} in the last "
                       f"{outcome.window_days} days")
    elif champion:
        reasons += [r.describe(scope=False) for r in champion.failed]
    reasons += [f"served {r.describe(scope=False)}" for r in outcome.served_failed]
    reasons += [r.describe(scope=False) for r in outcome.service_failed]
    still = f" (still failing since {outcome.since})" if outcome.mailed == "reminder" else ""
    subject = f"{SUBJECT_PREFIX} {outcome.model} now-test failed{still}: {'; '.join(reasons)}"
    mail = _MailBuilder(f"{outcome.model} now-test failed ({champion.contender if champion else 'no champion'})")
    mail.para(f"Window: {window}. Rows: {outcome.n_rows} (min_rows {outcome.min_rows}){_awaiting(outcome)}.")
    if outcome.stale:
        mail.para(f"Stale data: the source has {outcome.n_rows} usable rows in the window, fewer than the "
                  f"{outcome.min_rows} the now-test needs. "
                  + ("Their labels are overdue: check that the labels are still being loaded."
                     if outcome.awaiting_labels else "Check that the source table is still being loaded."))
    for result in outcome.results:
        if result.requirements:
            mail.table(f"Requirements of {result.contender} ({result.role}), re-predicted on the window",
                       ["metric", "value", "bound", "best baseline value", "passed"],
                       [[r.metric, r.value, r.bound_text(), _baseline_text(r, outcome.baselines), r.passed]
                        for r in result.requirements])
    _served_sections(mail, outcome)
    if champion and champion.worst_misses:
        mail.table(f"Worst misses of {champion.contender}, re-predicted", ["time", "actual", "predicted", "abs error"],
                   [[m["time"], m["actual"], m["predicted"], m["abs_error"]] for m in champion.worst_misses])
    if champion and champion.drift_warnings:
        mail.table("Drift warnings (a significant and material shift from the training data)",
                   ["feature", "test", "effect", "p-value", "reference"],
                   [[name, v["test"], f"{v['effect_name']} {v['effect']:.2f}", v["p_value"], v["reference"]]
                    for name, v in champion.drift_warnings.items()])
    if outcome.harvested:
        mail.para(f"{outcome.harvested} worst miss(es) were added to the model's golden regression cases.")
    _guidance(mail, guidance)
    mail.link("Airflow run", airflow_run_url)
    return Mail(subject, *mail.render(), airflow_run_url)


def build_recovery_alert(outcome: NowtestOutcome, airflow_run_url: str, guidance: Guidance | None = None) -> Mail:
    """The mail that ends a mailed breach: the champion meets its requirements again, with the numbers."""
    champion = outcome.champion
    subject = f"{SUBJECT_PREFIX} {outcome.model} now-test passes again (failing since {outcome.since})"
    mail = _MailBuilder(f"{outcome.model} recovered: {champion.contender} meets its now-test requirements again")
    mail.para(f"Window: {outcome.window_start:%Y-%m-%d %H:%M} .. {outcome.window_end:%Y-%m-%d %H:%M} (end "
              f"excluded). Rows: {outcome.n_rows}{_awaiting(outcome)}. The breach began on {outcome.since}.")
    mail.table(f"Requirements of {champion.contender}, re-predicted on the window", ["metric", "value", "bound",
                                                                                      "passed"],
               [[r.metric, r.value, r.bound_text(), r.passed] for r in champion.requirements])
    _served_sections(mail, outcome)
    _guidance(mail, guidance)
    mail.link("Airflow run", airflow_run_url)
    return Mail(subject, *mail.render(), airflow_run_url)


def _guidance(mail: _MailBuilder, guidance: Guidance | None) -> None:
    """How the bounds were set, the next step, and the Ratchet page."""
    if guidance is None:
        return
    if guidance.bounds:
        mail.para("How each now-test bound was set (a ratchet may have made it tighter than the YAML's):")
        for line in guidance.bounds:
            mail.para(f"- {line}")
    if guidance.next_step:
        mail.para(f"Next step: {guidance.next_step}")
        if guidance.next_url and guidance.next_url != guidance.page_url:
            mail.link(guidance.next_label or "Next step", guidance.next_url)
    mail.link("Ratchet page of the model", guidance.page_url)


def _served_sections(mail: _MailBuilder, outcome: NowtestOutcome) -> None:
    """What the REST service served for the window (scored against actuals), the A/B comparisons, and the
    serving requirements of the day: each table says which numbers are served ones."""
    served = outcome.served
    if served and served.results:
        names = sorted({m for r in served.results for m in r.scores})
        mail.para("Served: the answers the REST service logged for the window's feature ids, each id counted once "
                  "per arm and version (its latest answer), scored against the actuals that have arrived. "
                  f"Requirements are checked on an arm with at least {served.min_rows} scored ids.")
        mail.table("Served predictions (what clients were given)",
                   ["served", "role", "ids scored", "awaiting actuals", "answers logged", *names],
                   [[r.contender, r.role, r.scored, r.awaiting, r.answers, *[r.scores.get(m) for m in names]]
                    for r in served.results])
        for result in served.results:
            if result.requirements:
                mail.table(f"Requirements of {result.contender} ({result.role}) on what it served",
                           ["metric", "value", "bound", "passed"],
                           [[r.metric, r.value, r.bound_text(), r.passed] for r in result.requirements])
        for comparison in served.comparisons:
            mail.para(comparison["text"])
    level = outcome.service
    if level:
        mail.para(f"Service level, {level.period_text()}: {level.requests} request(s) to answer, {level.errors} "
                  f"answered with a 5xx, {level.refused} refused with a 4xx (the client's, not counted); "
                  f"{level.probes} health probe(s), {level.healthy_minutes} of {level.minutes} minute(s) healthy.")
        mail.table(f"Serving requirements, {level.period_text()}", ["metric", "value", "bound", "passed"],
                   [[r.metric, r.value, r.bound_text(), r.passed] for r in level.results]
                   + [[metric, None, "-", f"no verdict: {why}"] for metric, why in level.no_verdict.items()])


def _baseline_text(result: RequirementResult, baselines: dict[str, dict[str, float]]) -> str:
    name, value = ((result.baseline_name, result.baseline_value) if result.relative_to
                   else best_baseline(result.metric, baselines))
    return f"{name} {_fmt(value)}" if name else "-"


def build_regression_alert(model: str, version: int, result: GoldenResult, airflow_run_url: str) -> Mail:
    """The mail for golden cases the champion failed: each failed case with its numbers, and a link."""
    subject = (f"{SUBJECT_PREFIX} {model} regression tests failed: {len(result.failures)} of {result.n_cases} "
               f"golden cases (champion v{version})")
    mail = _MailBuilder(f"{model} regression tests failed for champion v{version}")
    mail.para(f"{len(result.failures)} of {result.n_cases} golden case(s) are outside their tolerance.")
    mail.table("Failed cases", ["case", "source", "expected", "predicted", "tolerance", "error"],
               [[f["name"], f["source"], f["expected"], f["predicted"], f["tolerance"], f["error"]]
                for f in result.failures[:20]])
    mail.link("Airflow run", airflow_run_url)
    return Mail(subject, *mail.render(), airflow_run_url)


def build_rebaseline_alert(model: str, changes: list[tuple[str, str, float, float, str, str]], changed_by: str,
                           reason: str, link: str, card_url: str | None = None) -> Mail:
    """The mail saying a person set requirement bounds again: who, why, and per requirement (label, direction,
    old bound, new bound, how the new one was derived, how the old one had been) the evidence, and a link; on a
    promotion (`card_url`), the link to the promoted version's model card too."""
    names = ", ".join(label for label, *_ in changes)
    subject = f"{SUBJECT_PREFIX} {model} requirement re-baselined by {changed_by}: {names}"
    mail = _MailBuilder(f"{model}: {changed_by} set {len(changes)} requirement bound(s) again")
    mail.para(f"Why: {reason}")
    mail.table("Bounds", ["requirement", "old bound", "new bound", "new bound derived as", "old bound derived as"],
               [[label, f"{direction} {_fmt(old)}", f"{direction} {_fmt(new)}", how, old_how or "-"]
                for label, direction, old, new, how, old_how in changes])
    mail.para("A re-baseline is a person's decision, the only way a bound loosens; the requirement's history on "
              "the Ratchet page keeps it with this evidence.")
    if card_url:
        mail.link("Model card of the promoted version", card_url)
    mail.link("Airflow run", link)
    return Mail(subject, *mail.render(), link)
