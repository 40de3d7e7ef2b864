"""Model YAML files into `ModelSpec`s, validated up front: each error names the file, the field and what is expected."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from ratchet.exceptions import SpecError
from ratchet.specs.model import (
    CLASSIFICATION_BASELINES,
    COMPUTATIONAL_METRICS,
    DEFAULT_NOTIFIERS,
    DEFAULT_OWNER,
    DISTILL_WHEN,
    DISTRIBUTIONS,
    EVENT,
    EVENT_BASELINES,
    FREQUENCIES,
    LAG_POLICIES,
    LOWER_IS_BETTER,
    MISSING_TARGET_POLICIES,
    PROBABILITY_METRICS,
    REGRESSION_BASELINES,
    SCOPES,
    SEASONAL_NAIVE,
    SERIES_METRICS,
    SERVING_METRICS,
    SPLIT_TRIAL,
    TASKS,
    THRESHOLD_OBJECTIVES,
    TRIAL_DAY_SOURCES,
    TRUSTED_ESTIMATOR_MODULES,
    AlertsSpec,
    BacktestSpec,
    DistillSpec,
    EstimatorSpec,
    EvaluationSpec,
    ModelSpec,
    NotifierSpec,
    NowtestSpec,
    PromotionSpec,
    RatchetSpec,
    RequirementSpec,
    RetrainSpec,
    SearchSpec,
    ServingSpec,
    Source,
    SplitSpec,
    StatedBaseline,
    ThresholdSpec,
    UserMetric,
    channel_name,
    lower_is_better,
    seasonal_period,
    task_metrics,
    window_capacity,
)
from ratchet.specs.schedule import SCHEDULE_PRESETS, schedule_problem

NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_\-]{0,99}$")
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


class _Fields:
    """Reads one mapping of a spec, so every error carries the file and the dotted field name."""

    def __init__(self, path: Path, data: Any, prefix: str = ""):
        self.path, self.prefix = path, prefix
        if not isinstance(data, dict):
            raise SpecError(path, prefix.rstrip(".") or "(document)", "a mapping of fields", data)
        self.data = data

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, expected: str, got: Any = ...) -> SpecError:
        return SpecError(self.path, self.name(key), expected, got)

    def reject_unknown(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            raise self.fail(unknown[0], f"one of the known fields {sorted(allowed)}", unknown[0])

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *,
            check: Callable[[Any], Any] | None = None, expected: str = "") -> Any:
        """The field's value, checked for its type and by `check`; `default` when absent (required if none)."""
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise self.fail(key, f"a value ({expected or _kind_name(kind)}); the field is required")
            return default
        value = self.data[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool and bool not in _as_tuple(kind):
            raise self.fail(key, expected or _kind_name(kind), value)
        if not isinstance(value, kind) or (check is not None and not check(value)):
            raise self.fail(key, expected or _kind_name(kind), value)
        return value

    def sub(self, key: str) -> _Fields:
        return _Fields(self.path, self.data.get(key) or {}, f"{self.name(key)}.")

    def string_list(self, key: str, default: Any = ...) -> tuple[str, ...] | Any:
        value = self.get(key, (list, str), default, expected="a list of strings")
        if value is default and default is not ...:
            return default
        items = [value] if isinstance(value, str) else value
        if not all(isinstance(item, str) and item for item in items):
            raise self.fail(key, "a list of non-empty strings", value)
        return tuple(items)


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))


def _positive(value: float) -> bool:
    return value > 0


def _positive_finite(value: float) -> bool:
    return 0 < value < math.inf


def _time_budget(s: _Fields) -> float | None:
    """`search.time_budget_minutes`: positive, and shorter than the retrain task's `execution_timeout`
    (RATCHET_TASK_TIMEOUT_MINUTES), which also covers reading the data and refitting the best trials."""
    budget = s.get("time_budget_minutes", float, None, check=_positive_finite,
                   expected="a positive number of minutes (the whole search)")
    if budget is not None:
        from ratchet import settings

        limit = settings.task_timeout_minutes()
        if budget >= limit:
            raise s.fail("time_budget_minutes", f"fewer minutes than the task timeout {settings.TASK_TIMEOUT_ENV}="
                                                f"{limit:g} (the retrain task, which also reads the data and refits "
                                                "the best trials, is killed at it)", budget)
    return budget


def _parse_source(f: _Fields) -> Source:
    f.reject_unknown({"table", "query", "conn_id", "time_column", "target", "features", "categorical",
                      "target_lags", "missing_target", "lags_by", "series", "frequency", "id", "label_delay_days"})
    table = f.get("table", str, None, check=lambda v: IDENTIFIER.match(v),
                  expected="a table name, optionally schema-qualified (schema.table)")
    query = f.get("query", str, None)
    if (table is None) == (query is None):
        raise f.fail("table", "exactly one of 'source.table' or 'source.query'",
                      {"table": table, "query": query})
    if query is not None and not re.match(r"^\s*(select|with)\b", query, re.IGNORECASE):
        raise f.fail("query", "a SELECT statement", query[:60])
    lags = f.get("target_lags", list, [], expected="a list of positive integers (days)")
    if not all(isinstance(lag, int) and not isinstance(lag, bool) and lag > 0 for lag in lags):
        raise f.fail("target_lags", "a list of positive integers (days)", lags)
    features = f.string_list("features", None)
    time_column, target = f.get("time_column", str), f.get("target", str)
    if features is not None and (target in features or time_column in features):
        leak = target if target in features else time_column
        raise f.fail("features", f"columns other than the target {target!r} and the time column {time_column!r} "
                                 "(the target among the features leaks the answer)", leak)
    categorical = f.string_list("categorical", ())
    outside = [c for c in categorical if features is not None and c not in features]
    if outside or target in categorical:
        raise f.fail("categorical", "columns among the features", (outside or [target])[0])
    series = f.string_list("series", ())
    clash = [c for c in series if c in (target, time_column) or series.count(c) > 1]
    if clash:
        raise f.fail("series", f"distinct key columns other than the target {target!r} and the time column "
                               f"{time_column!r}", clash[0])
    frequency = f.get("frequency", str, None, check=lambda v: v in FREQUENCIES or v == EVENT,
                      expected=f"one of {[*FREQUENCIES, EVENT]} (or no frequency: inferred from the rows)")
    row_id = _parse_row_id(f, frequency, target, time_column, series, features, lags)
    return Source(
        time_column=time_column,
        target=target,
        table=table,
        query=query,
        conn_id=f.get("conn_id", str, None),
        features=features,
        categorical=categorical,
        target_lags=tuple(sorted(set(lags))),
        missing_target=f.get("missing_target", str, Source.missing_target, check=lambda v: v in MISSING_TARGET_POLICIES,
                             expected=f"one of {list(MISSING_TARGET_POLICIES)}"),
        lags_by=f.get("lags_by", str, Source.lags_by, check=lambda v: v in LAG_POLICIES,
                      expected=f"one of {list(LAG_POLICIES)} (a lag of k: k periods of source.frequency, k calendar "
                               "days or k rows earlier in its series)"),
        series=series,
        frequency=frequency,
        id=row_id,
        label_delay_days=f.get("label_delay_days", int, Source.label_delay_days, check=lambda v: v >= 0,
                               expected="a whole number of days >= 0 (how long after a row's time its label arrives)"),
    )


def _parse_row_id(f: _Fields, frequency: str | None, target: str, time_column: str, series: tuple[str, ...],
                  features: tuple[str, ...] | None, lags: list[int]) -> str | None:
    """`source.id`: the row id an event source needs (and only an event source has)."""
    row_id = f.get("id", str, None, check=bool, expected="the column holding each event's unique id")
    if frequency != EVENT:
        if row_id is not None:
            raise f.fail("id", f"no row id unless source.frequency is '{EVENT}' (a series' row is its time"
                               f"{' and series' if series else ''})", row_id)
        return None
    if row_id is None:
        raise f.fail("id", f"the column holding each event's unique id (source.frequency: {EVENT} keys rows by "
                           "id: many events may share a time)")
    if row_id in (target, time_column, *series) or (features is not None and row_id in features):
        raise f.fail("id", "a column that is not the target, the time column, a series key or a feature", row_id)
    if lags:
        raise f.fail("target_lags", f"no target lags for source.frequency: {EVENT} (events have no previous row of "
                                    "their own; compute an entity's history as a feature in the source's SQL)", lags)
    return row_id

def _parse_distribution(f: _Fields, param: str, raw: Any) -> dict[str, Any]:
    field_name = f"search_space.{param}"
    expected = "a mapping with one of " + ", ".join(DISTRIBUTIONS)
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in DISTRIBUTIONS:
        raise f.fail(field_name, expected, raw)
    kind, args = next(iter(raw.items()))
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise f.fail(f"{field_name}.choice", "a non-empty list of values", args)
        return {"choice": list(args)}
    if (not isinstance(args, list) or len(args) != 2
            or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
            or not args[0] < args[1]):
        raise f.fail(f"{field_name}.{kind}", "[low, high] with low < high", args)
    if kind == "randint" and not all(isinstance(a, int) for a in args):
        raise f.fail(f"{field_name}.randint", "two integers [low, high]", args)
    if kind == "loguniform" and args[0] <= 0:
        raise f.fail(f"{field_name}.loguniform", "positive bounds [low, high]", args)
    return {kind: list(args)}


def _parse_estimator(path: Path, raw: Any, prefix: str, task: str, *, student: bool = False) -> EstimatorSpec:
    """One `{class, params, search_space}` entry of `estimators` (or, `student`, of `distill.students`) at the
    dotted field `prefix`."""
    f = _Fields(path, raw, prefix)
    f.reject_unknown({"class", "params", "search_space"})
    class_path = f.get("class", str, expected="an import path such as sklearn.linear_model.Ridge")
    spec = EstimatorSpec(class_path=class_path, params=dict(f.get("params", dict, {})))
    try:
        cls = spec.load_class()
    except (ImportError, AttributeError, ValueError) as exc:
        raise f.fail("class", "an importable estimator class", f"{class_path} ({exc})") from None
    if not (hasattr(cls, "fit") and hasattr(cls, "predict")):
        raise f.fail("class", "a class with fit and predict (a scikit-learn estimator)", class_path)
    if not cls.__module__.startswith(TRUSTED_ESTIMATOR_MODULES):
        raise f.fail("class", f"an estimator from {list(TRUSTED_ESTIMATOR_MODULES)}: the artifact format stores "
                              "and loads only those types, so any other version could not be loaded", class_path)
    instance = _estimator(f, cls, class_path, spec.params, "params")
    _check_kind(f, instance, class_path, task, student=student)
    space = f.get("search_space", dict, {})
    valid_params = set(instance.get_params())
    parsed = {}
    for param, dist in space.items():
        if param not in valid_params:
            raise f.fail(f"search_space.{param}", f"a parameter of {class_path}", param)
        parsed[param] = _parse_distribution(f, param, dist)
        (kind, values), = parsed[param].items()
        for value in values:  # the range's ends, or every choice
            _estimator(f, cls, class_path, {**spec.params, param: value}, f"search_space.{param}.{kind}")
    return EstimatorSpec(class_path=class_path, params=spec.params, search_space=parsed)


def _estimator(f: _Fields, cls: type, class_path: str, params: dict[str, Any], field_name: str) -> Any:
    """An instance with `params`, checked against the estimator's own parameter constraints."""
    try:
        instance = cls(**params)
        validate = getattr(instance, "_validate_params", None)
        if validate is not None:
            validate()
    except (TypeError, ValueError) as exc:
        message = str(exc).splitlines()[0]
        raise f.fail(field_name, f"values {class_path} accepts", f"{params} ({message})") from None
    return instance


def _check_kind(f: _Fields, instance: Any, class_path: str, task: str, *, student: bool = False) -> None:
    """A regressor for a regression model, a classifier for a classification model; a classification model's student
    may also be a regressor (it fits the teacher's probability of the positive class), and a classifier student
    must give probabilities (it is scored and decides like the teacher it replaces)."""
    from sklearn.base import is_classifier, is_regressor

    fits = is_regressor(instance) if task == "regression" else is_classifier(instance)
    if not fits and student and task == "classification" and is_regressor(instance):
        return
    if not fits:
        kind = "regressor" if task == "regression" else "classifier"
        either = " (or a regressor of a binary label's P(positive))" if student and task == "classification" else ""
        raise f.fail("class", f"a {kind}{either} for a {task} model", class_path)
    if student and task == "classification" and not hasattr(instance, "predict_proba"):
        raise f.fail("class", "a classifier with predict_proba (a student is scored on its probabilities like the "
                              "teacher it stands in for)", class_path)


def _parse_notifiers(f: _Fields, raw_notifiers: list[Any]) -> tuple[NotifierSpec, ...]:
    """Each `alerts.notifiers` entry, checked as far as it can be without sending: one channel name per entry."""
    notifiers = tuple(_parse_notifier(_Fields(f.path, raw, f"{f.name('notifiers')}[{i}]."))
                      for i, raw in enumerate(raw_notifiers))
    first: dict[str, int] = {}
    for i, notifier in enumerate(notifiers):
        if notifier.name in first:
            raise f.fail(f"notifiers[{i}].name", f"a channel name not used by notifiers[{first[notifier.name]}] "
                                                 "(deliveries are recorded per channel: give each its own name)",
                         notifier.name)
        first[notifier.name] = i
    return notifiers


def _parse_notifier(f: _Fields) -> NotifierSpec:
    """One notifier: an importable `BaseNotifier` subclass that accepts the entry's other fields as keyword
    arguments, and whose templated arguments are valid Jinja (rendered with `notification` at each send)."""
    from airflow.sdk import BaseNotifier
    from jinja2 import TemplateSyntaxError

    class_path = f.get("class", str, expected="an import path such as ratchet.alerting.notifiers.WebhookNotifier")
    name = f.get("name", str, channel_name(class_path), check=NAME_PATTERN.match,
                 expected="a channel name of letters, digits, '_' or '-', starting with a letter")
    spec = NotifierSpec(class_path, {k: v for k, v in f.data.items() if k not in ("class", "name")}, name)
    try:
        cls = spec.load_class()
    except (ImportError, AttributeError, ValueError) as exc:
        raise f.fail("class", "an importable notifier class", f"{class_path} ({exc})") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseNotifier)):
        raise f.fail("class", "a subclass of Airflow's BaseNotifier (airflow.sdk.BaseNotifier)", class_path)
    try:
        notifier = cls(**spec.kwargs)
    except (TypeError, ValueError) as exc:
        message = str(exc).splitlines()[0]
        argument = re.search(r"argument:? '(\w+)'", message)
        where = f.name(argument.group(1)) if argument else f.prefix.rstrip(".")
        raise SpecError(f.path, where, f"keyword arguments {class_path} accepts",
                        f"{spec.kwargs} ({message})") from None
    env = notifier.get_template_env()
    for key in cls.template_fields:
        if isinstance(spec.kwargs.get(key), str):
            try:
                env.parse(spec.kwargs[key])
            except TemplateSyntaxError as exc:
                raise f.fail(key, "a valid Jinja template such as '{{ notification.subject }}'",
                             f"{spec.kwargs[key]} ({exc.message})") from None
    return spec


def _parse_requirement(path: Path, raw: Any, index: int, task: str, baselines: tuple[str, ...],
                       quality: tuple[str, ...]) -> RequirementSpec:
    """One requirement; `quality` is the model's prediction-quality metrics (the task's and the user's)."""
    f = _Fields(path, raw, f"requirements[{index}].")
    f.reject_unknown({"metric", "max", "min", "calibrate", "relative_to", "scope", "per_series", "per_slice",
                      "min_rows"})
    allowed = quality + COMPUTATIONAL_METRICS + SERVING_METRICS
    metric = f.get("metric", str, check=lambda m: m in allowed, expected=f"one of {list(allowed)}")
    measured = metric in COMPUTATIONAL_METRICS + SERVING_METRICS  # not by predictions against actuals
    given = [k for k in ("max", "min", "calibrate") if k in f.data]
    if len(given) != 1:
        raise f.fail("max", "exactly one of 'max', 'min' or 'calibrate' (a false-alarm rate)",
                     {k: f.data.get(k) for k in ("max", "min", "calibrate")})
    right = "max" if lower_is_better(metric) else "min"
    calibrate = f.get("calibrate", float, None, check=lambda a: 0 < a < 0.5,
                      expected="a false-alarm rate between 0 and 0.5 (0.05: one false alarm in 20 windows)")
    if calibrate is not None and measured:
        raise f.fail("calibrate", "a prediction-quality metric (latency, size and serving have no back-test)",
                     metric)
    direction = given[0] if calibrate is None else right
    if direction != right:
        better = "lower" if right == "max" else "higher"
        raise f.fail(direction, f"'{right}' for {metric} ({better} is better)", {direction: f.data[direction]})
    bound = (f.get(direction, float, expected="a number") if calibrate is None
             else (math.inf if direction == "max" else -math.inf))
    relative_to = f.get("relative_to", str, None, check=lambda b: b in baselines or b == "baseline",
                        expected=f"'baseline' (the best baseline) or one of {list(baselines)}")
    if relative_to and measured:
        raise f.fail("relative_to", "no baseline for computational or serving metrics", relative_to)
    if metric in SERVING_METRICS:
        scope = f.get("scope", str, "serving", check=lambda s: s == "serving",
                      expected=f"'serving' ({metric} is measured on the REST service)")
    else:
        default_scope = "gate" if metric in COMPUTATIONAL_METRICS else "backtest"
        quality_scopes = [s for s in SCOPES if s != "serving"]
        scope = f.get("scope", str, default_scope, check=lambda s: s in quality_scopes,
                      expected=f"one of {quality_scopes} (scope 'serving' takes {list(SERVING_METRICS)})")
    if metric in ("serving_error_rate", "availability") and not 0 <= bound <= 1:
        raise f.fail(direction, f"a fraction in [0, 1] for {metric} (0.01 is 1%)", bound)
    if metric == "mape" and relative_to is None and calibrate is None and not 0 < bound <= 1:
        raise f.fail(direction, "a fraction in (0, 1] for mape (0.08 is 8%)", bound)
    per_series = f.get("per_series", bool, False)
    if per_series and (scope != "nowtest" or metric not in SERIES_METRICS[task]):
        raise f.fail("per_series", f"a now-test requirement on one of {list(SERIES_METRICS[task])} (a panel's "
                                   "metrics per series)", {"metric": metric, "scope": scope})
    per_slice = f.get("per_slice", bool, False)
    if per_slice and (scope != "nowtest" or metric not in SERIES_METRICS[task]):
        raise f.fail("per_slice", f"a now-test requirement on one of {list(SERIES_METRICS[task])} (the metrics "
                                  "kept per slice value)", {"metric": metric, "scope": scope})
    min_rows = f.get("min_rows", int, None, check=_positive, expected="a positive integer (a series' or slice's "
                                                                      "rows in the window it needs to be judged)")
    if min_rows is not None and not (per_series or per_slice):
        raise f.fail("min_rows", "per_series: true or per_slice: true beside it (the rows a series or slice needs "
                                 "to be judged)", min_rows)
    return RequirementSpec(metric=metric, direction=direction, bound=bound, scope=scope, relative_to=relative_to,
                           calibrate=calibrate, per_series=per_series, per_slice=per_slice, min_rows=min_rows)


def _parse_user_metrics(f: _Fields, task: str) -> tuple[UserMetric, ...]:
    """`metrics: {name: module:function}`: each importable and callable on (y_true, y_pred) or (y_true, y_pred,
    proba), named apart from Ratchet's own metrics."""
    import inspect

    metrics = []
    for name, target in f.data.items():
        if not (isinstance(name, str) and NAME_PATTERN.match(name)) or name in LOWER_IS_BETTER:
            raise f.fail(str(name), f"a new metric name of letters, digits, '_' or '-' (not one of Ratchet's own: "
                                    f"{list(task_metrics(task))})", name)
        if not (isinstance(target, str) and re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", target)):
            raise f.fail(name, "an import path 'module:function', e.g. my_pkg.costs:expected_loss", target)
        metric = UserMetric(name, target)
        try:
            function = metric.load()
        except (ImportError, AttributeError, ValueError) as exc:
            raise f.fail(name, "an importable function 'module:function'", f"{target} ({exc})") from None
        if not callable(function):
            raise f.fail(name, "a callable f(y_true, y_pred) or f(y_true, y_pred, proba)", target)
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            signature = None
        takes = [n for n in (3, 2) if signature is None or _binds(signature, n)]
        if not takes:
            raise f.fail(name, "a callable f(y_true, y_pred) or f(y_true, y_pred, proba)", f"{target}{signature}")
        metrics.append(UserMetric(name, target, takes_proba=takes[0] == 3 and task == "classification"))
    return tuple(metrics)


def _binds(signature: Any, positional: int) -> bool:
    try:
        signature.bind(*range(positional))
    except TypeError:
        return False
    return True


def _parse_stated_baseline(f: _Fields, index: int, raw: dict, quality: tuple[str, ...],
                           known: tuple[str, ...]) -> StatedBaseline:
    """`baselines[i]: {name, metrics: {metric: value}, source}`: a constant to beat, with where it comes from."""
    b = _Fields(f.path, raw, f"{f.name('baselines')}[{index}].")
    b.reject_unknown({"name", "metrics", "source"})
    name = b.get("name", str, check=lambda n: NAME_PATTERN.match(n) and n not in known and not seasonal_period(n)
                  and n != "baseline", expected="a name of letters, digits, '_' or '-' that is not a computed "
                                                "baseline's (or 'baseline')")
    values = b.get("metrics", dict, check=bool, expected=f"a mapping of metrics to numbers, e.g. {{accuracy: 0.7}}; "
                                                         f"metrics: {list(quality)}")
    for metric, value in values.items():
        if metric not in quality:
            raise b.fail(f"metrics.{metric}", f"one of {list(quality)}", metric)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise b.fail(f"metrics.{metric}", "a finite number", value)
    source = b.get("source", str, check=lambda v: bool(v.strip()),
                   expected="where the numbers come from (who measured what, when): a stated baseline is shown "
                            "with its source")
    return StatedBaseline(name, {m: float(v) for m, v in values.items()}, source)


def _parse_evaluation(f: _Fields, source: Source) -> EvaluationSpec:
    f.reject_unknown({"slices", "quantile"})
    slices = f.string_list("slices", ())
    clash = [c for c in slices if c in (source.target, source.time_column, source.id) or slices.count(c) > 1]
    if clash:
        raise f.fail("slices", "distinct columns (categorical) other than the target, the time column and the row id",
                     clash[0])
    quantile = f.get("quantile", float, EvaluationSpec.quantile, check=lambda q: 0 < q < 1,
                     expected="the quantile the pinball loss scores, between 0 and 1 (0.9)")
    return EvaluationSpec(slices=slices, quantile=quantile)


def _parse_classification(f: _Fields, task: str, user_metrics: tuple[UserMetric, ...]) -> ThresholdSpec:
    """`classification.threshold`: a probability, or `{optimize: f1 | accuracy | <a user metric>}`."""
    if f.data and task != "classification":
        raise f.fail("threshold", "no classification section for a regression model", f.data)
    f.reject_unknown({"threshold"})
    raw = f.data.get("threshold")
    if raw is None:
        return ThresholdSpec()
    objectives = [*THRESHOLD_OBJECTIVES, *(m.name for m in user_metrics)]
    expected = (f"a probability of the positive class between 0 and 1 (0.5), or {{optimize: one of {objectives}}} "
                "(chosen on the training folds)")
    if isinstance(raw, dict):
        t = f.sub("threshold")
        t.reject_unknown({"optimize"})
        return ThresholdSpec(value=None, optimize=t.get("optimize", str, check=lambda m: m in objectives,
                                                        expected=f"one of {objectives}"))
    return ThresholdSpec(value=f.get("threshold", float, check=lambda v: 0 < v < 1, expected=expected))


def _parse_serving(f: _Fields, source: Source) -> ServingSpec:
    f.reject_unknown({"cache_ttl_seconds", "split"})
    ttl = f.get("cache_ttl_seconds", float, ServingSpec.cache_ttl_seconds, check=lambda v: v >= 0,
                expected="a number of seconds >= 0 (0: never reuse an answer)")
    if "split" not in f.data:
        return ServingSpec(cache_ttl_seconds=ttl)
    s = f.sub("split")
    s.reject_unknown({"candidate", "fraction", "by"})
    by = s.string_list("by", ())
    if by and not source.events:
        raise s.fail("by", f"no split.by unless source.frequency is '{EVENT}' (a panel's split keeps each series in "
                           "one arm; a single series splits by time)", list(by))
    if any(c in (source.time_column, source.target, source.id) for c in by):
        raise s.fail("by", "entity columns other than the time column, the target and the event's id", list(by))
    candidate = s.get("candidate", (str, int), check=lambda c: c == SPLIT_TRIAL or (type(c) is int and c >= 1),
                      expected=f"'{SPLIT_TRIAL}' (the newest version in trial) or a version number")
    fraction = s.get("fraction", float, check=lambda v: 0 < v < 1,
                     expected="the share of feature ids the candidate answers, between 0 and 1 (0.1 = 10%)")
    return ServingSpec(cache_ttl_seconds=ttl, split=SplitSpec(candidate=candidate, fraction=fraction, by=by))


def parse_spec(path: Path, data: Any) -> ModelSpec:
    """The `ModelSpec` of one YAML document read from `path`.

    Raises:
        SpecError: naming the file, the dotted field and what is expected.
    """
    f = _Fields(path, data)
    f.reject_unknown({"name", "task", "owner", "alert_emails", "source", "estimators", "search",
                      "baselines", "requirements", "backtest", "nowtest", "promotion", "golden_cases",
                      "description", "limits", "alerts", "serving", "evaluation", "classification", "metrics",
                      "distill", "retrain"})
    name = f.get("name", str, check=NAME_PATTERN.match,
                 expected="a name of letters, digits, '_' or '-', starting with a letter")
    task = f.get("task", str, check=lambda t: t in TASKS, expected=f"one of {list(TASKS)}")
    emails = f.string_list("alert_emails", ())
    for email in emails:
        if "@" not in email:
            raise f.fail("alert_emails", "e-mail addresses", email)
    if "source" not in data:
        raise f.fail("source", "a mapping with table or query, time_column and target")
    source = _parse_source(f.sub("source"))
    raw_estimators = f.get("estimators", list, check=bool, expected="a non-empty list of estimators")
    estimators = tuple(_parse_estimator(path, raw, f"estimators[{i}].", task) for i, raw in enumerate(raw_estimators))

    user_metrics = _parse_user_metrics(f.sub("metrics"), task)
    quality = task_metrics(task) + tuple(m.name for m in user_metrics)
    evaluation = _parse_evaluation(f.sub("evaluation"), source)
    threshold = _parse_classification(f.sub("classification"), task, user_metrics)

    s = f.sub("search")
    s.reject_unknown({"n_trials", "cv_folds", "seed", "candidates", "metric", "explore_fraction",
                      "time_budget_minutes", "trial_timeout_seconds", "prefer_simpler", "simpler_significance"})
    allowed_metrics = quality
    search = SearchSpec(
        n_trials=s.get("n_trials", int, SearchSpec.n_trials, check=_positive, expected="a positive integer"),
        cv_folds=s.get("cv_folds", int, SearchSpec.cv_folds, check=lambda v: v >= 2, expected="an integer >= 2"),
        seed=s.get("seed", int, SearchSpec.seed),
        candidates=s.get("candidates", int, SearchSpec.candidates, check=_positive, expected="a positive integer"),
        metric=s.get("metric", str, SearchSpec.metric, check=lambda m: m in allowed_metrics,
                     expected=f"one of {list(allowed_metrics)}"),
        explore_fraction=s.get("explore_fraction", float, SearchSpec.explore_fraction, check=lambda v: 0 <= v <= 1,
                               expected="a number between 0 and 1"),
        time_budget_minutes=_time_budget(s),
        trial_timeout_seconds=s.get("trial_timeout_seconds", float, None, check=_positive_finite,
                                    expected="a positive number of seconds (one trial's cross-validation)"),
        prefer_simpler=s.get("prefer_simpler", bool, SearchSpec.prefer_simpler),
        simpler_significance=s.get("simpler_significance", float, SearchSpec.simpler_significance,
                                   check=lambda v: 0 < v < 0.5,
                                   expected="a test level between 0 and 0.5 (0.05; default promotion.significance)"),
    )

    search = _ranking(s, task, search, estimators)
    known_baselines = REGRESSION_BASELINES if task == "regression" else CLASSIFICATION_BASELINES
    default_baselines = REGRESSION_BASELINES if task == "regression" else ("majority",)
    if source.events:
        known_baselines = default_baselines = EVENT_BASELINES[task]
    raw_baselines = f.get("baselines", (list, str), list(default_baselines),
                          expected="a list of baseline names, or {name, metrics, source} for a stated baseline")
    raw_baselines = [raw_baselines] if isinstance(raw_baselines, str) else raw_baselines
    stated = tuple(_parse_stated_baseline(f, i, raw, quality, known_baselines)
                   for i, raw in enumerate(raw_baselines) if isinstance(raw, dict))
    baselines = tuple(raw for raw in raw_baselines if not isinstance(raw, dict))
    if not all(isinstance(b, str) and b for b in baselines):
        raise f.fail("baselines", "baseline names (text), or {name, metrics, source} for a stated baseline",
                     raw_baselines)
    clash = [b.name for i, b in enumerate(stated) if b.name in [*baselines, *(s.name for s in stated[:i])]]
    if clash:
        raise f.fail("baselines", "a stated baseline name used once, and by no other baseline", clash[0])
    for baseline in baselines:
        if source.events and baseline not in known_baselines:
            raise f.fail("baselines", f"baselines from {list(known_baselines)} for events (the others predict from "
                                      "an earlier row of the series, and events have none)", baseline)
        if baseline not in known_baselines and not (task == "regression" and seasonal_period(baseline)):
            seasonal = f" or {SEASONAL_NAIVE}<N> (N periods earlier: 24 hourly, 7 daily, 52 weekly)" \
                if task == "regression" else ""
            raise f.fail("baselines", f"baselines from {list(known_baselines)}{seasonal} for a {task} model",
                         baseline)

    raw_requirements = f.get("requirements", list, [])
    requirements = tuple(
        _parse_requirement(path, raw, i, task, baselines + tuple(b.name for b in stated), quality)
        for i, raw in enumerate(raw_requirements)
    )
    sliceless = next((i for i, req in enumerate(requirements) if req.per_slice and not evaluation.slices), None)
    if sliceless is not None:
        raise f.fail(f"requirements[{sliceless}].per_slice", "evaluation.slices naming the columns to slice by",
                     True)
    alone = next((i for i, req in enumerate(requirements) if req.per_series and not source.series), None)
    if alone is not None:
        raise f.fail(f"requirements[{alone}].per_series", "source.series naming the panel's key columns (a single "
                                                          "series has no per-series bound)", True)
    seen: dict[tuple[str, str, str | None], int] = {}
    for i, req in enumerate(requirements):
        key = (req.metric, req.scope, req.relative_to)
        if key in seen:
            raise f.fail(f"requirements[{i}]", f"one requirement per metric and scope: requirements[{seen[key]}] "
                                               f"already bounds {req.metric} ({req.scope}"
                                               f"{', relative to ' + req.relative_to if req.relative_to else ''})",
                         f.data["requirements"][i])
        seen[key] = i

    distill = _parse_distill(f.sub("distill"), task, requirements) if "distill" in f.data else None

    b = f.sub("backtest")
    b.reject_unknown({"months", "window"})
    window = b.get("window", (str, int), BacktestSpec.window,
                   check=lambda w: w == "expanding" or (isinstance(w, int) and w > 0),
                   expected="'expanding' or a positive number of months")
    backtest = BacktestSpec(months=b.get("months", int, BacktestSpec.months, check=_positive,
                                          expected="a positive integer"),
                            window=window)

    n = f.sub("nowtest")
    n.reject_unknown({"window_days", "min_rows"})
    window_days = n.get("window_days", int, NowtestSpec.window_days, check=_positive, expected="a positive integer")
    capacity = window_capacity(window_days, source.frequency) if not source.series else None
    nowtest = NowtestSpec(
        window_days=window_days,
        min_rows=n.get("min_rows", int, NowtestSpec.min_rows,
                       check=lambda v: 1 <= v <= (capacity or v),
                       expected=f"a positive integer no larger than {capacity}: a window of {window_days} days "
                                f"at source.frequency {source.frequency} can never hold more rows"
                       if capacity else "a positive integer"),
    )

    a = f.sub("alerts")
    a.reject_unknown({"repeat_after_days", "notifiers"})
    raw_notifiers = a.get("notifiers", list, None, check=bool,
                          expected="a non-empty list of notifiers, each {class: <import path>, ...its arguments}")
    alerts = AlertsSpec(repeat_after_days=a.get("repeat_after_days", int, AlertsSpec.repeat_after_days, check=_positive,
                                                 expected="a positive number of days"),
                        notifiers=DEFAULT_NOTIFIERS if raw_notifiers is None else _parse_notifiers(a, raw_notifiers))

    serving = _parse_serving(f.sub("serving"), source)

    p = f.sub("promotion")
    p.reject_unknown({"min_improvement", "min_months_won", "min_trial_days", "significance", "ratchet",
                      "trial_days_from"})
    trial_days_from = p.get("trial_days_from", str, PromotionSpec.trial_days_from,
                            check=lambda v: v in TRIAL_DAY_SOURCES,
                            expected=f"one of {list(TRIAL_DAY_SOURCES)} (the days gate 4 counts: now-test days in "
                                     "trial, or days the version answered as serving.split's candidate)")
    if trial_days_from == "served" and serving.split is None:
        raise p.fail("trial_days_from", "'nowtest' unless serving.split is set: without a split no candidate is "
                                        "ever served, so it could never count a served day", trial_days_from)
    r = p.sub("ratchet")
    r.reject_unknown({"enabled", "false_alarm_rate"})
    promotion = PromotionSpec(
        min_improvement=p.get("min_improvement", float, PromotionSpec.min_improvement, check=lambda v: v >= 0,
                              expected="a non-negative number (relative improvement, 0.02 = 2%)"),
        min_months_won=p.get("min_months_won", int, PromotionSpec.min_months_won, check=lambda v: v >= 0,
                             expected="an integer >= 0"),
        min_trial_days=p.get("min_trial_days", int, PromotionSpec.min_trial_days, check=lambda v: v >= 0,
                             expected="an integer >= 0"),
        ratchet=RatchetSpec(
            enabled=r.get("enabled", bool, RatchetSpec.enabled),
            false_alarm_rate=r.get("false_alarm_rate", float, RatchetSpec.false_alarm_rate, check=lambda v: 0 < v < 0.5,
                                   expected="a rate between 0 and 0.5 (0.05: one false alarm in 20 windows)"),
        ),
        significance=p.get("significance", float, PromotionSpec.significance, check=lambda v: 0 < v < 0.5,
                           expected="a test level between 0 and 0.5 (0.05)"),
        trial_days_from=trial_days_from,
    )

    retrain = _parse_retrain(f.sub("retrain"))

    golden = f.get("golden_cases", str, None, expected="a file name next to the YAML")
    golden_path = (path.parent / golden) if golden else path.with_suffix(".golden.yaml")
    if golden and not golden_path.exists():
        raise f.fail("golden_cases", "an existing file next to the YAML", str(golden_path))

    return ModelSpec(
        name=name, task=task, owner=f.get("owner", str, DEFAULT_OWNER), alert_emails=emails,
        source=source, estimators=estimators, search=search, baselines=baselines,
        requirements=requirements, backtest=backtest, nowtest=nowtest, promotion=promotion,
        description=f.get("description", str, None, expected="free text: the model's intended use"),
        limits=tuple(f.get("limits", list, [], check=lambda items: all(isinstance(i, str) and i.strip() for i in items),
                           expected="a list of non-empty strings, each a limit of the model its owner states")),
        path=path, golden_cases_file=golden_path if golden_path.exists() else None, raw=data, alerts=alerts,
        serving=serving, evaluation=evaluation, threshold=threshold, user_metrics=user_metrics,
        stated_baselines=stated, distill=distill, retrain=retrain,
    )


def _parse_distill(f: _Fields, task: str, requirements: tuple[RequirementSpec, ...]) -> DistillSpec:
    """`distill:`: its students (each read as an `estimators` entry is), when they are trained and how many trials
    tune each; `when: gate_fails` needs a computational requirement the teacher could fail."""
    f.reject_unknown({"students", "when", "n_trials"})
    raw = f.get("students", list, check=bool,
                expected="a non-empty list of students, each {class, params, search_space} like an estimators entry")
    students = tuple(_parse_estimator(f.path, entry, f"{f.name('students')}[{i}].", task, student=True)
                     for i, entry in enumerate(raw))
    when = f.get("when", str, DistillSpec.when, check=lambda w: w in DISTILL_WHEN,
                 expected=f"one of {list(DISTILL_WHEN)} (students when the best teacher fails a computational "
                          "requirement, or every night)")
    if when == "gate_fails" and not any(r.metric in COMPUTATIONAL_METRICS for r in requirements):
        raise f.fail("when", f"'always', or a requirement on one of {list(COMPUTATIONAL_METRICS)} beside "
                             "'gate_fails' (without one no teacher ever fails, so no student would be trained)", when)
    return DistillSpec(students=students, when=when,
                       n_trials=f.get("n_trials", int, DistillSpec.n_trials, check=_positive,
                                      expected="a positive integer (random trials per student)"))


def _parse_retrain(f: _Fields) -> RetrainSpec:
    """`retrain.schedule`: a cron expression or an Airflow preset that fires at most once a day (`specs.schedule`)."""
    f.reject_unknown({"schedule"})
    schedule = f.get("schedule", str, RetrainSpec.schedule,
                     expected=f"a cron expression or an Airflow preset ({', '.join(SCHEDULE_PRESETS)})")
    problem = schedule_problem(schedule)
    if problem:
        raise f.fail("schedule", problem, schedule)
    return RetrainSpec(schedule=schedule)


def _ranking(f: _Fields, task: str, search: SearchSpec, estimators: tuple[EstimatorSpec, ...]) -> SearchSpec:
    """The search's metric when an estimator gives no probabilities (an SGDClassifier with hinge loss): a
    probability metric named is an error naming the estimator; the default (log_loss) becomes f1, and says why."""
    if task != "classification" or (search.metric and search.metric not in PROBABILITY_METRICS):
        return search
    blind = next((e for e in estimators if not hasattr(e.load_class()(**e.params), "predict_proba")), None)
    if blind is None:
        return search
    why = f"{blind.class_path} with params {blind.params} gives no probabilities"
    if search.metric:
        raise f.fail("metric", f"a metric scored on decided classes (accuracy, f1, or a user metric): {why}",
                     search.metric)
    return replace(search, metric="f1", metric_reason=f"ranked by f1, not log_loss: {why}")


def load_spec(path: Path | str) -> ModelSpec:
    """Read and validate one model YAML file (raises SpecError, also for invalid YAML)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SpecError(path, "(document)", "valid YAML", str(exc).splitlines()[0]) from None
    return parse_spec(path, data)
