"""Conformance on real events: 100,000 car-loan applications through real DAG runs, labels that arrive late.

`car_loans_events.csv` (NannyML's synthetic car-loan book; SOURCES.md) is loaded as a live table: its dates moved
forward by whole weeks so the last application is two days old. The model is an event model (`frequency: event`,
`source.id: application_id`: many applications share a second, none is keyed by time), classification of
`repaid`, with what a lender needs:
- labels arrive `label_delay_days: 14` after the application: the last 14 days' labels are empty (not yet known),
  and one application in 50 of the now-test's window is still unlabelled (overdue), counted and never scored;
- a cost metric (`tests/loan_costs.py`: approving a defaulter costs five times a refused payer) that ranks the
  search, and a decision threshold tuned to it on the training folds (`classification.threshold: {optimize:
  cost}`): the cost-minimising rule approves only above P(repaid) = 5/6, far from the default 0.5;
- slices by `salary_range`, with a per-slice accuracy requirement;
- a stated baseline (the underwriters' cost and accuracy, with its source) the champion's cost must not exceed at
  the promotion gate.

The book's second year drifts: from 2019-04 the car values are about 60% higher (Kolmogorov-Smirnov D 0.43 against
the first year) and loans about two months longer (D 0.18, under the drift test's material-effect floor of 0.3).
One night runs (retrain on the applications before the drift, back-test, first promotion, now-test), then the
now-test on the days around the drift: the car value's drift is flagged once the window holds enough drifted
applications, never before the drift, and the longer loans are never flagged (significant, not material).
"""
from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import emptied_registry
from dag_helpers import first_night, task_states, timed_run
from real_data import real_data_dir
from spec_factory import write_spec
from sqlalchemy import text

from ratchet.evaluation.backtest import metric_tables
from ratchet.modeling.threshold import ThresholdClassifier

REAL = real_data_dir()
TODAY = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
LABEL_DELAY = 14
WINDOW_DAYS = 14
SALARY_BANDS = ["salary_range=0 - 20K €", "salary_range=20K - 40K €", "salary_range=40K - 60K €",
                "salary_range=60K+ €"]


def _book() -> tuple[pd.DataFrame, pd.Timestamp]:
    """The applications moved forward by whole weeks (weekdays kept), the last one two days ago, with the labels a
    lender has today; and the first day of the drift (2019-04-01, moved)."""
    frame = pd.read_csv(REAL / "car_loans_events.csv", parse_dates=["applied_at"])
    weeks = (pd.Timestamp(TODAY.date()) - pd.Timedelta(days=2) - frame["applied_at"].max()).days // 7
    frame["applied_at"] += pd.Timedelta(weeks=weeks)
    frame["repaid"] = frame["repaid"].astype("Int64")
    labelled_end = pd.Timestamp(TODAY.date()) - pd.Timedelta(days=LABEL_DELAY)
    frame.loc[frame["applied_at"] >= labelled_end, "repaid"] = pd.NA  # not yet known
    window = frame["applied_at"] >= labelled_end - pd.Timedelta(days=WINDOW_DAYS)
    frame.loc[window & (frame["application_id"] % 50 == 0), "repaid"] = pd.NA  # overdue
    return frame, pd.Timestamp("2019-04-01") + pd.Timedelta(weeks=weeks)


FRAME, DRIFT = _book()
TRAINED_UNTIL = (DRIFT - pd.Timedelta(days=30)).to_pydatetime().replace(tzinfo=dt.UTC)
LOANS = {
    "name": "car_loans", "task": "classification", "owner": "conformance", "alert_emails": ["owner@example.com"],
    "source": {"table": "real_events.car_loans", "time_column": "applied_at", "target": "repaid",
               "frequency": "event", "id": "application_id", "label_delay_days": LABEL_DELAY,
               "categorical": ["salary_range", "size_of_downpayment"]},
    "metrics": {"cost": "loan_costs:expected_loss"},
    "classification": {"threshold": {"optimize": "cost"}},
    "evaluation": {"slices": ["salary_range"]},
    "estimators": [
        {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500},
         "search_space": {"C": {"loguniform": [0.01, 10.0]}}},
        {"class": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 60, "random_state": 0},
         "search_space": {"learning_rate": {"uniform": [0.05, 0.2]}}}],
    "search": {"n_trials": 3, "cv_folds": 2, "seed": 3, "candidates": 2, "metric": "cost"},
    "baselines": ["majority", {"name": "underwriters", "metrics": {"accuracy": 0.85, "cost": 0.3},
                               "source": "the underwriting team's decisions on 2,000 applications of 2019-01"}],
    "backtest": {"months": 4},
    "nowtest": {"window_days": WINDOW_DAYS, "min_rows": 200},
    "requirements": [{"metric": "cost", "max": 0.9, "relative_to": "majority", "scope": "backtest"},
                     {"metric": "cost", "max": 1.0, "relative_to": "underwriters", "scope": "gate"},
                     {"metric": "roc_auc", "min": 0.75, "scope": "nowtest"},
                     {"metric": "accuracy", "min": 0.6, "scope": "nowtest", "per_slice": True, "min_rows": 100}],
}


def _drift_days() -> list[pd.Timestamp]:
    """Now-test days around the drift: the last whose window ends before it, then every third day on."""
    first_after = DRIFT + pd.Timedelta(days=LABEL_DELAY + 1)  # the first run whose window holds drifted applications
    return [first_after] + [first_after + pd.Timedelta(days=k) for k in range(3, WINDOW_DAYS + 4, 3)]


@pytest.fixture(scope="module")
def night(airflow_db, database_url, tmp_path_factory):
    """One night of the cycle, then the now-tests of the days around the drift."""
    folder = tmp_path_factory.mktemp("event_models")
    registry = emptied_registry(database_url)
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS real_events"))
        FRAME.to_sql("car_loans", conn, schema="real_events", index=False, if_exists="replace", chunksize=20_000)
    write_spec(folder, **LOANS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RATCHET_MODELS_DIR", str(folder))
        patch.setenv("RATCHET_REPORTS_DIR", str(folder / "reports"))
        ran = first_night(registry, TODAY, TRAINED_UNTIL)
        drift_runs = {day: timed_run("ratchet_nowtest", day.to_pydatetime().replace(tzinfo=dt.UTC)
                                     + dt.timedelta(hours=6)) for day in _drift_days()}
        yield {"registry": registry, "spec": ran["specs"]["car_loans"], "runs": ran["runs"],
               "seconds": ran["seconds"], "promoted": ran["promoted"]["car_loans"], "drift_runs": drift_runs}
    registry.dispose()


def _champion_verdict(registry, champion: str, day: pd.Timestamp):
    """The champion's stored now-test rows of the run on `day` (partition: its window's last day)."""
    last = (day - pd.Timedelta(days=LABEL_DELAY + 1)).strftime("%Y-%m-%d")
    return [r for r in registry.evaluations("car_loans", "nowtest", contender=champion) if r.partition == last]


def test_every_run_is_green_and_the_best_version_is_promoted(night):
    for dag_id, run in {**night["runs"], **{f"nowtest {d:%m-%d}": r for d, (r, _) in night["drift_runs"].items()}
                        }.items():
        states = task_states(run)
        assert run.state == "success", (dag_id, states)
        optional = {"open_proposal", "retrain_after_breach"}
        assert {s for (task, _), s in states.items() if task not in optional} == {"success"}, (dag_id, states)
    best, state = night["promoted"]
    assert state == "success" and night["registry"].champion("car_loans").version == best
    print("\nrun seconds:", {k: round(v, 1) for k, v in night["seconds"].items()},
          {f"nowtest {d:%Y-%m-%d}": round(s, 1) for d, (_, s) in night["drift_runs"].items()})


def test_the_champion_beats_the_training_prior_on_every_metric_with_a_threshold_tuned_to_the_cost(night):
    registry, spec = night["registry"], night["spec"]
    champion = registry.champion("car_loans")
    tables = metric_tables(registry, spec)  # contender -> metric -> month -> value
    means = {metric: {c: float(np.mean(list(tables[c][metric].values()))) for c in tables} for metric in spec.metrics}
    print("\nback-test means (champion", champion.contender, "vs majority):",
          {m: (round(v[champion.contender], 4), round(v["majority"], 4)) for m, v in means.items()})
    ours, prior = champion.contender, "majority"
    assert means["cost"][ours] < 0.9 * means["cost"][prior]
    assert means["roc_auc"][ours] > 0.8 > means["roc_auc"][prior] + 0.25
    assert means["log_loss"][ours] < means["log_loss"][prior] and means["brier"][ours] < means["brier"][prior]
    estimator = registry.load_estimator("car_loans", champion.version)
    assert isinstance(estimator, ThresholdClassifier) and estimator.optimize == "cost"
    assert 0.7 <= estimator.threshold_ <= 0.95  # the cost rule's 5/6, as the training folds found it
    print("threshold chosen on the training folds:", estimator.threshold_)


def test_back_test_months_are_whole_months_whose_labels_have_all_arrived(night):
    registry = night["registry"]
    rows = registry.evaluations("car_loans", "backtest", metric="cost")
    labelled_end = pd.Timestamp(TODAY.date()) - pd.Timedelta(days=LABEL_DELAY)
    months = sorted({r.partition for r in rows})
    assert len(months) == 4 and pd.Period(months[-1], "M").end_time < labelled_end
    for row in registry.evaluations("car_loans", "backtest", metric="accuracy"):  # kept per slice as per series
        assert set(row.details["slices"]) == set(row.details["slice_rows"]) == set(SALARY_BANDS), row.contender
        assert sum(row.details["slice_rows"].values()) == row.n_rows


def test_the_now_test_scores_matured_labels_counts_the_overdue_and_judges_every_salary_band(night):
    registry = night["registry"]
    champion = registry.champion("car_loans").contender
    (verdict, *_) = _champion_verdict(registry, champion, pd.Timestamp(TODAY.date()))
    window = verdict.details["window"]
    end = pd.Timestamp(TODAY.date()) - pd.Timedelta(days=LABEL_DELAY)
    assert (pd.Timestamp(window["start"]), pd.Timestamp(window["end"])) == (end - pd.Timedelta(days=WINDOW_DAYS), end)
    inside = FRAME[(FRAME["applied_at"] >= end - pd.Timedelta(days=WINDOW_DAYS)) & (FRAME["applied_at"] < end)]
    assert window["awaiting_labels"] == int(inside["repaid"].isna().sum()) > 0
    assert verdict.details["n_rows"] == int(inside["repaid"].notna().sum())
    slices = verdict.details["slices"]
    assert set(slices) == set(SALARY_BANDS)
    assert sum(s["rows"] for s in slices.values()) == verdict.details["rows_after_training"]
    assert all(0.5 < s["accuracy"] <= 1 for s in slices.values())


def test_the_car_value_drift_is_flagged_once_the_window_holds_it_and_longer_loans_stay_below_the_floor(night):
    registry = night["registry"]
    champion = registry.champion("car_loans").contender
    flagged = {}
    for day in _drift_days():
        (verdict, *_) = _champion_verdict(registry, champion, day)
        drift = verdict.details["drift"]
        flagged[day] = drift["car_value"]
        assert not drift["loan_length"]["warning"] or drift["loan_length"]["effect"] >= 0.3
        print(f"now-test {day:%Y-%m-%d} (window to {day - pd.Timedelta(days=LABEL_DELAY + 1):%Y-%m-%d}): car_value "
              f"D {drift['car_value'].get('effect')}, p {drift['car_value'].get('p_value')}, "
              f"warning {drift['car_value']['warning']}; loan_length D {drift['loan_length'].get('effect')}")
    days = sorted(flagged)
    assert not flagged[days[0]]["warning"]  # its window has one day of drifted applications
    assert flagged[days[-1]]["warning"] and flagged[days[-1]]["effect"] > 0.35  # its window is all drifted
    first = next(day for day in days if flagged[day]["warning"])
    assert all(flagged[day]["warning"] for day in days if day >= first)  # once flagged, it stays flagged


def test_the_model_page_lists_the_salary_bands_worst_first_and_opens_one_bands_charts(night):
    import re

    from fastapi.testclient import TestClient

    from ratchet.ui.app import create_app

    registry = night["registry"]
    champion = registry.champion("car_loans").contender
    rows = registry.evaluations("car_loans", "backtest", contender=champion, metric="accuracy")
    means = {band: float(np.mean([r.details["slices"][band] for r in rows])) for band in SALARY_BANDS}
    client = TestClient(create_app())
    page = client.get("/models/car_loans").text
    assert "Slices, worst first" in page and "champion's back-test accuracy" in page
    listed = re.findall(r"<tr(?: class=\"chosen\")?><td>(salary_range=[^<]+)</td>\s*<td>([\d.e+]+)</td>", page)
    assert [band for band, _ in listed] == sorted(means, key=means.get)  # accuracy: the lowest is the worst
    assert [float(value) for _, value in listed] == pytest.approx([means[b] for b, _ in listed], rel=1e-3)
    assert "Stated baselines" in page and "the underwriting team&#39;s decisions on 2,000 applications" in page
    worst = listed[0][0]
    chosen = client.get("/models/car_loans", params={"slice": worst}).text
    assert 'id="slices-chart"' in chosen and f"per month of slice {worst}" in chosen
