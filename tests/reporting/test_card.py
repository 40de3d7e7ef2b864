"""Model cards (`ratchet.reporting.card`): every figure a card prints is the stored one, against real PostgreSQL."""
from __future__ import annotations

import datetime as dt
from statistics import fmean

import pytest
from promote_helpers import BASELINES, MONTHS, SPEC, register_fitted, store_backtest
from spec_factory import write_spec

from ratchet.exceptions import NotFoundError
from ratchet.lifecycle.promotion import promote
from ratchet.registry import EvaluationRow
from ratchet.reporting.card import build_card

DESCRIPTION = "Next-day demand per store, for ordering stock."
LIMITS = ["Not for stores opened in the last 90 days", "Holidays are under-predicted"]
V1_RMSE = [9.0, 11.0, 8.0, 9.5]  # per month of MONTHS: 2024-02 is its worst
TRAINED = dict(train_start=dt.datetime(2023, 1, 1), train_end=dt.datetime(2023, 12, 31))


@pytest.fixture
def demand(registry, tmp_path):
    """demand (SPEC with a description and limits), v1 back-tested on MONTHS and promoted as first champion."""
    spec = write_spec(tmp_path, **SPEC, description=DESCRIPTION, limits=LIMITS)
    registry.sync_model(spec)
    register_fitted(registry, "demand", "r1", **TRAINED)
    store_backtest(registry, "demand", {"v1": V1_RMSE, **BASELINES}, extra_metrics={"mae": 0.8})
    promote(registry, spec, version=1, reason="first champion", triggered_by="alice", run_id="run-1")
    return spec


def test_the_champions_card_prints_the_stored_means_worst_month_verdicts_and_the_owners_words(registry, demand):
    card = build_card(registry, demand)
    assert (card.version.version, card.role, card.months) == (1, "champion", tuple(MONTHS))
    rmse, mae = fmean(V1_RMSE), fmean(0.8 * v for v in V1_RMSE)
    assert card.means == pytest.approx({"rmse": rmse, "mae": mae})
    assert card.baselines["last_value"]["rmse"] == 12.0 and card.baselines["mean"]["rmse"] == 15.0
    assert card.worst_months[0] == ("2024-02", 11.0) and [m for m, _ in card.worst_months] == ["2024-02", "2024-04",
                                                                                               "2024-01"]
    text = card.markdown()
    assert text.startswith("# Model card: demand v1\n")
    assert f"| rmse | {rmse:.4g} | 12 | 15 |" in text and f"| mae | {mae:.4g} | 9.6 | 12 |" in text
    assert "| 2024-02 | 11 |" in text
    assert DESCRIPTION in text and "Owner: tests." in text and all(f"- {limit}" in text for limit in LIMITS)
    assert "Trained on 2023-01-01 .. 2023-12-31 (frequency day)" in text
    assert "keys time `ts`" in text and "Features: `x1`, `x2`" in text
    assert f"| rmse {rmse:.4g} <= max 10 (back-test) | met |" in text
    relative = next(r.bound for r in registry.requirements("demand", "backtest") if r.relative_to)  # ratcheted
    assert f"| rmse {rmse:.4g} <= {relative:.4g} × last_value 12 = {12 * relative:.4g} (back-test) | met |" in text
    assert f"| model_size_bytes {card.version.size_bytes} <= max 10000000 (gate) | met |" in text
    assert f"size: {card.version.size_bytes} bytes" in text and "latency p95: 0.5 ms" in text
    assert "No now-test of this version yet." in text and "Decision threshold" not in text
    html = card.html()
    assert "<h1>Model card: demand v1</h1>" in html and f"<li>{LIMITS[0]}</li>" in html and DESCRIPTION in html


def test_a_candidates_card_names_its_worst_series_and_slices_and_the_drift_of_its_latest_nowtest(registry, demand):
    register_fitted(registry, "demand", "r2", alpha=2.0)
    by_month = {"2024-01": {"store=1": 3.0, "store=2": 9.0, "store=3": 5.0},
                "2024-02": {"store=1": 4.0, "store=2": 7.0, "store=3": 8.0}}
    registry.record_evaluations("demand", [
        EvaluationRow(kind="backtest", contender="v2", partition=month, metric="rmse", value=8.0, n_rows=30,
                      run_id="bt2", version=2, details={"series": series, "slices": {"channel=web": 6.0}})
        for month, series in by_month.items()])
    drift = {"x1": {"test": "ks", "p_value": 1e-6, "effect": 0.41, "effect_name": "D", "warning": True},
             "x2": {"test": "ks", "p_value": 0.5, "effect": 0.02, "effect_name": "D", "warning": False}}
    registry.record_evaluations("demand", [
        EvaluationRow(kind="nowtest", contender="v2", partition=day, metric="mae", value=1.0, n_rows=7,
                      run_id=f"nt-{day}", version=2, passed=True,
                      details={"drift": drift if day == "2024-05-02" else {}, "drift_warnings": warnings,
                               "requirements": [{"text": "mae 1 <= max 8 (now-test)", "passed": True}]})
        for day, warnings in (("2024-05-01", []), ("2024-05-02", ["x1"]))])
    card = build_card(registry, demand, 2)
    assert card.role == "in trial" and card.months == ("2024-01", "2024-02")
    assert card.worst_series == (("store=2", 8.0), ("store=3", 6.5), ("store=1", 3.5))
    assert card.worst_slices == (("channel=web", 6.0),)
    text = card.markdown()
    assert "## Worst series (rmse, back-test mean)" in text and text.index("store=2") < text.index("store=1")
    assert "Latest now-test (2024-05-02)" in text and "| x1 | ks | D 0.41 | 1e-06 |" in text and "| x2 |" not in text
    assert "| mae 1 <= max 8 (now-test) (latest, 2024-05-02) | met |" in text


def test_a_classifiers_card_shows_its_threshold(registry, tmp_path):
    spec = write_spec(tmp_path, name="churn", task="classification", owner="crm",
                      estimators=[{"class": "sklearn.linear_model.LogisticRegression"}], baselines=["majority"])
    registry.sync_model(spec)
    threshold = {"value": 0.35, "optimize": "f1", "score": 0.71, "rows": 400, "folds": 3}
    register_fitted(registry, "churn", "r1", spec=spec, details={"threshold": threshold})
    text = build_card(registry, spec, 1).markdown()
    assert "Decision threshold: P(positive) >= 0.35, chosen to maximise f1 (0.71 out of fold on 400 training rows)" \
        in text
    assert "## Teacher" not in text
    assert "No back-test of this version yet." in text and "None stated: add `limits:`" in text
    assert "Not stated: add `description:`" in text


def test_a_students_card_shows_it_beside_its_teacher(registry, tmp_path):
    spec = write_spec(tmp_path, name="churn", task="classification",
                      estimators=[{"class": "sklearn.ensemble.RandomForestClassifier"}], baselines=["majority"])
    registry.sync_model(spec)
    forest = "sklearn.ensemble.RandomForestClassifier"
    register_fitted(registry, "churn", "r1", spec=spec, estimator_class=forest, hyperparameters={"n_estimators": 300},
                    size_bytes=5_000_000, predict_latency_p95_ms=12.0, cv_score=0.41)
    teacher = {"version": 1, "estimator_class": forest, "why": "v1 fails a computational requirement: "
               "model_size_bytes 5e+06 > max 1e+06 (gate)", "student": "sklearn.tree.DecisionTreeClassifier",
               "targets": "soft", "learns_from": "the teacher's class probabilities as soft targets", "trials": 6}
    register_fitted(registry, "churn", "r2", spec=spec, estimator_class="ratchet.modeling.distill.StudentClassifier",
                    hyperparameters={"teacher": forest, "teacher_params": {"n_estimators": 300},
                                     "student": teacher["student"], "student_params": {"max_depth": 4}},
                    size_bytes=9_000, predict_latency_p95_ms=0.4, cv_score=0.44, details={"teacher": teacher})
    store_backtest(registry, "churn", {"v1": [0.40, 0.42, 0.38, 0.40], "v2": [0.44, 0.46, 0.42, 0.44],
                                       "majority": [0.69] * 4}, metric="log_loss")
    card = build_card(registry, spec, 2)
    assert card.teacher.version == 1 and card.teacher_means["log_loss"] == pytest.approx(0.40)
    text = card.markdown()
    assert "; sklearn.tree.DecisionTreeClassifier (max_depth=4), registered" in text  # the student, not its wrapper
    assert ("## Teacher: v1\n\nA student of v1: it learnt from the teacher's class probabilities as soft targets, on "
            "the same training rows; trained because v1 fails a computational requirement: model_size_bytes 5e+06 > "
            "max 1e+06 (gate).") in text
    assert "|  | teacher v1 | student v2 |" in text
    assert "| estimator | RandomForestClassifier | DecisionTreeClassifier |" in text
    assert "| back-test log_loss, mean over the student's 4 month(s) | 0.4 | 0.44 |" in text
    assert "| size (bytes) | 5000000 | 9000 |" in text and "| prediction latency p95 (ms) | 12 | 0.4 |" in text
    assert "| CV log_loss | 0.41 | 0.44 |" in text
    assert "<th>teacher v1</th><th>student v2</th>" in card.html()
    assert "## Teacher" not in build_card(registry, spec, 1).markdown()  # the teacher's own card has no teacher


def test_an_unknown_version_or_a_model_without_champion_is_a_clear_error(registry, demand, tmp_path):
    with pytest.raises(NotFoundError, match=r"model 'demand' has no version 9; its versions: \[1\]"):
        build_card(registry, demand, 9)
    fresh = write_spec(tmp_path, name="fresh", **{k: v for k, v in SPEC.items() if k != "promotion"})
    registry.sync_model(fresh)
    register_fitted(registry, "fresh", "r1", spec=fresh)
    with pytest.raises(NotFoundError, match=r"model 'fresh' has no champion yet; name a version: its versions: \[1\]"):
        build_card(registry, fresh)
