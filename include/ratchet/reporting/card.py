"""A version's model card: what it is for, what it learnt from, how well it does and where worst, what it costs,
and the limits its owner states; as Markdown (`ratchet card`) and HTML (the Ratchet page).

The card only reads what is stored: the version's own record (training window, feature contract, latency, size,
threshold, teacher, the simplicity choice of its search), its back-test months against the baselines on the same
months, the requirements with their current bounds, its latest now-test, how it ages (measured while it was
champion) beside today's `retrain.schedule`. What the owner states (owner, `description`, `limits`) is today's YAML:
a statement may be sharpened after a version was trained, and every version's card should say it.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from statistics import fmean
from typing import TYPE_CHECKING, Any

from ratchet.evaluation.backtest import baseline_means, means_on, metric_tables, months_of
from ratchet.evaluation.requirements import RequirementResult, check_requirements
from ratchet.exceptions import NotFoundError
from ratchet.modeling.distill import shown
from ratchet.registry.entities import BACKTEST, NOWTEST, in_trial
from ratchet.reporting.retrain_plan import AgingView, aging_view
from ratchet.specs.model import COMPUTATIONAL_METRICS, SERIES_METRICS, lower_is_better

if TYPE_CHECKING:
    from ratchet.registry import Registry
    from ratchet.registry.entities import Version
    from ratchet.specs.model import ModelSpec

WORST_MONTHS = 3  # back-test months a card names where the version did worst
WORST_GROUPS = 5  # series (or slices) a card names where it did worst


@dataclass(frozen=True)
class Card:
    """The facts of one version's card, read from the registry (`build_card`); `markdown()` and `html()` word them."""

    spec: ModelSpec
    version: Version
    role: str  # 'champion', 'in trial' or 'retired'
    months: tuple[str, ...]  # its back-test months (those the spec back-tests)
    means: dict[str, float]  # metric -> its back-test mean over `months`
    baselines: dict[str, dict[str, float]]  # baseline -> metric -> mean over the same months
    verdicts: tuple[RequirementResult, ...]  # back-test, gate and computational requirements on its own figures
    worst_months: tuple[tuple[str, float], ...]  # (month, ranking metric), worst first
    group_metric: str  # the metric series and slices are ranked by (kept per group: `SERIES_METRICS`)
    worst_series: tuple[tuple[str, float], ...]  # (series, mean over `months`), worst first
    worst_slices: tuple[tuple[str, float], ...]
    nowtest: dict[str, Any] | None  # its latest now-test day's details (verdicts, drift), with `day`
    teacher: Version | None = None  # a student's teacher (`lifecycle.students`)
    teacher_means: dict[str, float] | None = None  # metric -> the teacher's back-test mean over `months`
    aging: AgingView | None = None  # how it ages, when it was measured (as a champion)

    @property
    def title(self) -> str:
        """How the card names its version: "demand v3"."""
        return f"{self.spec.name} v{self.version.version}"

    def sections(self) -> list[Section]:
        """The card's sections in reading order, each worded once for both renderings."""
        v, spec = self.version, self.spec
        contract = v.contract
        estimator, params = shown(v.estimator_class, v.hyperparameters)
        keys = [f"time `{contract['time_column']}`"] + ([f"series {_codes(contract['series'])}"]
                                                       if contract.get("series") else [])
        keys += [f"id `{contract['id']}`"] if contract.get("id") else []
        out = [
            Section("Intended use", (spec.description or "Not stated: add `description:` to the model's YAML.",
                                     f"Owner: {spec.owner}. {self.role.capitalize()}; {estimator} "
                                     f"{_params(params)}, registered {v.created_at:%Y-%m-%d}.")),
            Section("Data and contract", (
                f"Trained on {_day(v.train_start)} .. {_day(v.train_end)} (frequency "
                f"{contract.get('frequency') or 'inferred'}); target `{contract['target']}`; keys {', '.join(keys)}.",
                f"Features: {_codes(contract['features'])}; categorical: {_codes(contract['categorical'])}; target "
                f"lags: {contract['target_lags'] or 'none'} ({contract['lags_by']}).")),
        ]
        metrics = [m for m in spec.metrics if m in self.means]
        baselines = [b for b in self.baselines if self.baselines[b]]
        out.append(Section(f"Back-test over {len(self.months)} month(s)"
                           + (f" ({self.months[0]}..{self.months[-1]})" if self.months else ""),
                           () if self.months else ("No back-test of this version yet.",),
                           ("metric", f"v{v.version}", *baselines),
                           tuple((m, self.means[m], *(self.baselines[b].get(m) for b in baselines)) for m in metrics)))
        out.append(Section("Requirements", () if self.verdicts or self.nowtest else ("No requirement.",),
                           ("requirement", "verdict"),
                           tuple((r.describe(), "met" if r.passed else "NOT MET") for r in self.verdicts)
                           + tuple((f"{r['text']} (latest, {self.nowtest['day']})", "met" if r["passed"] else "NOT MET")
                                   for r in (self.nowtest or {}).get("requirements", []))))
        if self.worst_months:
            out.append(Section(f"Worst months ({spec.metric})", (), ("month", spec.metric),
                               tuple(self.worst_months)))
        for noun, worst in (("series", self.worst_series), ("slices", self.worst_slices)):
            if worst:
                out.append(Section(f"Worst {noun} ({self.group_metric}, back-test mean)", (),
                                   ("series" if noun == "series" else "slice", self.group_metric), tuple(worst)))
        out.append(self._drift())
        out.append(self._aging())
        threshold = (v.details or {}).get("threshold") or {}
        cost = [f"Prediction latency p95: {_fmt(v.predict_latency_p95_ms)} ms; size: {v.size_bytes} bytes."]
        if v.threshold is not None:
            how = (f", chosen to maximise {threshold['optimize']} ({_fmt(threshold.get('score'))} out of fold on "
                   f"{threshold.get('rows')} training rows)" if threshold.get("optimize") else "")
            cost.append(f"Decision threshold: P(positive) >= {_fmt(v.threshold)}{how}.")
        out.append(Section("Latency, size and decision", tuple(cost)))
        if self.teacher is not None:
            out.append(self._teacher())
        if v.simplicity:
            out.append(self._simplicity())
        out.append(Section("Limits stated by the owner", spec.limits or ("None stated: add `limits:` to the YAML.",),
                           bullets=bool(spec.limits)))
        return out

    def _teacher(self) -> Section:
        """A student beside its teacher: what it learnt from and why it was trained, then both side by side."""
        v, t, how = self.version, self.teacher, self.version.teacher
        metric, means = self.spec.metric, self.teacher_means or {}
        return Section(
            f"Teacher: v{t.version}", (f"A student of v{t.version}: it learnt from {how['learns_from']}, on the same "
                                       f"training rows; trained because {how['why']}.",),
            ("", f"teacher v{t.version}", f"student v{v.version}"),
            (("estimator", _short(shown(t.estimator_class, t.hyperparameters)[0]),
              _short(shown(v.estimator_class, v.hyperparameters)[0])),
             (f"back-test {metric}, mean over the student's {len(self.months)} month(s)", means.get(metric),
              self.means.get(metric)),
             (f"CV {metric}", t.cv_score, v.cv_score),
             ("size (bytes)", t.size_bytes, v.size_bytes),
             ("prediction latency p95 (ms)", t.predict_latency_p95_ms, v.predict_latency_p95_ms),
             ("fit seconds", t.fit_seconds, v.fit_seconds)))

    def _simplicity(self) -> Section:
        """The simplicity choice of the version's search (`modeling.simplicity`): what this version is in it, the
        best trial and the simplest not significantly worse, with their scores, complexities and the test."""
        chosen = self.version.simplicity
        what = {"best": "the best trial of its search by CV score",
                "simplest": "the simplest trial of its search not significantly worse than the best",
                "best and simplest": "the best trial of its search by CV score, and the simplest",
                "ranked": "registered for its CV score"}[chosen["role"]]
        own = chosen["complexity"]
        trials = [("best and simplest", chosen["best"])] if chosen["test"] is None else [
            ("best", chosen["best"]), ("simplest", chosen["simplest"])]
        return Section("Simplicity", (f"This version is {what}; fitted on its search's last fold it had "
                                      f"{own['parameters']:,} fitted parameters ({own['counted']}).",
                                      chosen["text"] + "."),
                       ("trial", "role", "estimator", f"CV {self.spec.metric}", "fitted parameters", "counted",
                        "prediction µs/row", "p-value against the best"),
                       tuple((f"#{t['trial']}", role, t["estimator"].rsplit(".", 1)[-1], t["score"], t["parameters"],
                              t["counted"], t["predict_us"], None if role != "simplest" else chosen["test"]["p_value"])
                             for role, t in trials))

    def _drift(self) -> Section:
        if self.nowtest is None:
            return Section("Drift seen", ("No now-test of this version yet.",))
        warnings = {name: self.nowtest["drift"][name] for name in self.nowtest.get("drift_warnings", [])}
        if not warnings:
            return Section("Drift seen", (f"No drift warning in its latest now-test ({self.nowtest['day']}).",))
        return Section("Drift seen", (f"Latest now-test ({self.nowtest['day']}): inputs that moved from the training "
                                      "data (significant and material).",),
                       ("feature", "test", "effect", "p-value"),
                       tuple((name, w["test"], f"{w['effect_name']} {w['effect']:.2f}", w["p_value"])
                             for name, w in warnings.items()))

    def _aging(self) -> Section:
        schedule = f"Configured retrain.schedule: {self.spec.retrain.schedule}."
        if self.aging is None:
            return Section("Aging and retrain plan", (schedule, "Not measured: the nightly back-test measures how the "
                                                      "champion ages (it needs at least 4 back-test months)."))
        view = self.aging
        headers = ("months since training", f"{view.metric} mean", "95% interval", "origins")
        rows = tuple((r.age, r.mean, "-" if r.low is None else f"{_fmt(r.low)} .. {_fmt(r.high)}", r.origins)
                     + ((r.bound, r.breaking) if view.crossing else ()) for r in view.rows)
        if view.crossing:
            headers += (f"bound ({view.crossing.requirement})", "origins breaking it")
        return Section("Aging and retrain plan", (schedule, view.summary()), headers, rows)

    def markdown(self) -> str:
        """The card as Markdown: what `ratchet card` prints."""
        lines = [f"# Model card: {self.title}"]
        for s in self.sections():
            lines += ["", f"## {s.title}"]
            lines += ([""] + [f"- {t}" for t in s.text]) if s.bullets else [line for t in s.text for line in ("", t)]
            if s.rows:
                lines += ["", "| " + " | ".join(s.headers) + " |", "|" + " --- |" * len(s.headers)]
                lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in s.rows]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """The card as an HTML fragment: what the card page shows."""
        parts = [f"<h1>Model card: {html.escape(self.title)}</h1>"]
        for s in self.sections():
            parts.append(f"<h2>{html.escape(s.title)}</h2>")
            texts = [f"<li>{html.escape(t)}</li>" if s.bullets else f"<p>{html.escape(t)}</p>" for t in s.text]
            parts.append(f"<ul>{''.join(texts)}</ul>" if s.bullets else "".join(texts))
            if s.rows:
                head = "".join(f"<th>{html.escape(h)}</th>" for h in s.headers)
                body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>"
                               for row in s.rows)
                parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return "\n".join(parts)


@dataclass(frozen=True)
class Section:
    """One heading of a card: paragraphs (or bullets), then a table."""

    title: str
    text: tuple[str, ...] = ()
    headers: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()
    bullets: bool = False


def build_card(registry: Registry, spec: ModelSpec, version: int | None = None) -> Card:
    """The card of `version` of `spec`'s model, by default its champion.

    Raises:
        UnknownModelError: the model has nothing stored yet.
        NotFoundError: no such version (the message lists them), or no champion when no version is named.
    """
    champion = registry.champion(spec.name)
    if version is None and champion is None:
        numbers = [v.version for v in registry.versions(spec.name)]
        raise NotFoundError(f"model {spec.name!r} has no champion yet; name a version: its versions: {numbers}")
    v = registry.version(spec.name, champion.version if version is None else version)
    number = champion.version if champion else None
    role = "champion" if v.version == number else "in trial" if in_trial(v.version, number) else "retired"
    table = metric_tables(registry, spec)
    months = months_of(table, v.contender)
    means = means_on(table, v.contender, months)
    baselines = baseline_means(spec, table, months)
    stored = registry.requirements(spec.name)
    verdicts = (check_requirements([r for r in stored if r.scope in ("backtest", "gate")
                                    and r.metric not in COMPUTATIONAL_METRICS], means, baselines)
                + check_requirements([r for r in stored if r.metric in COMPUTATIONAL_METRICS],
                                     {"predict_latency_p95_ms": v.predict_latency_p95_ms,
                                      "model_size_bytes": v.size_bytes, "fit_seconds": v.fit_seconds}, {}))
    ranking = table.get(v.contender, {}).get(spec.metric, {})
    worst = sorted(ranking.items(), key=lambda item: item[1], reverse=lower_is_better(spec.metric))
    group_metric = spec.metric if spec.metric in SERIES_METRICS[spec.task] else SERIES_METRICS[spec.task][0]
    details = [row.details for row in registry.evaluations(spec.name, BACKTEST, contender=v.contender,
                                                           metric=group_metric)
               if row.partition in months and row.details]
    nowtests = [row for row in registry.evaluations(spec.name, NOWTEST, contender=v.contender) if row.details]
    latest = nowtests[-1] if nowtests else None  # ordered by day: the latest
    teacher = registry.version(spec.name, v.teacher["version"]) if v.teacher else None
    return Card(spec=spec, version=v, role=role, months=tuple(months), means=means, baselines=baselines,
                aging=aging_view(spec, registry.aging(spec.name, v.version)),
                verdicts=tuple(verdicts), worst_months=tuple(worst[:WORST_MONTHS]), group_metric=group_metric,
                worst_series=_worst_groups(details, "series", group_metric),
                worst_slices=_worst_groups(details, "slices", group_metric),
                nowtest=None if latest is None else {**latest.details, "day": latest.partition},
                teacher=teacher, teacher_means=means_on(table, teacher.contender, months) if teacher else None)


def _worst_groups(details: list[dict[str, Any]], kind: str, metric: str) -> tuple[tuple[str, float], ...]:
    """The groups (`details[kind]`: series or slices) with the worst mean of `metric` over the months, worst first."""
    values: dict[str, list[float]] = {}
    for month in details:
        for group, value in (month.get(kind) or {}).items():
            if value is not None:
                values.setdefault(group, []).append(value)
    means = sorted(((g, fmean(vs)) for g, vs in values.items()), key=lambda item: item[1],
                   reverse=lower_is_better(metric))
    return tuple(means[:WORST_GROUPS])


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _cell(value: Any) -> str:
    """`value` inside a Markdown table cell: pipes escaped, on one line."""
    return " ".join(_fmt(value).split()).replace("|", "\\|")


def _short(class_path: str) -> str:
    return class_path.rpartition(".")[2]


def _codes(names: Any) -> str:
    return ", ".join(f"`{n}`" for n in names) or "none"


def _params(hyperparameters: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={_fmt(v)}" for k, v in hyperparameters.items()) + ")"


def _day(value: Any) -> str:
    return "?" if value is None else f"{value:%Y-%m-%d}"
