"""Back-tests (`ratchet.evaluation.backtest`) after real searches: no leakage, month by month, fingerprint skipping."""
from __future__ import annotations

import numpy as np
import pytest
from backtest_helpers import END, SEARCH, SPEC, future_target, learnable, model_name, write_frame
from spec_factory import build_spec
from sqlalchemy import text

from ratchet.evaluation import backtest
from ratchet.lifecycle import retrain
from ratchet.modeling import sources


def _r2_by_contender(registry, spec):
    table = backtest.metric_table(registry, spec, "r2")
    return {name: float(np.mean(list(values.values()))) for name, values in table.items()}


def test_a_target_from_the_future_stays_at_chance_in_cv_and_backtest(registry):
    spec = build_spec(name=model_name(), table=write_frame(registry, future_target()), search=SEARCH, **SPEC)
    registry.sync_model(spec)
    versions = retrain.retrain_model(registry, spec, run_id="r", logical_date=END)
    trials = registry.trials(spec.name)
    assert max(t.mean_score for t in trials if t.mean_score is not None) < 0.05
    frame = sources.read_source(spec, end=END)
    for months in backtest.month_groups(spec, frame, end=END, groups=2):
        backtest.run_partition(registry, spec, months, run_id="b", end=END)
    r2 = _r2_by_contender(registry, spec)
    assert r2[f"v{versions[0]}"] < 0.05


def test_a_learnable_signal_beats_every_baseline_month_by_month(registry):
    spec = build_spec(name=model_name(), table=write_frame(registry, learnable()),
                      search={"n_trials": 3, "cv_folds": 3, "seed": 1, "candidates": 1}, **SPEC)
    registry.sync_model(spec)
    (version,) = retrain.retrain_model(registry, spec, run_id="r", logical_date=END)
    assert registry.trials(spec.name)[0].mean_score < 1.0  # rmse, far below the noise-free spread of 5
    frame = sources.read_source(spec, end=END)
    for months in backtest.month_groups(spec, frame, end=END, groups=2):
        backtest.run_partition(registry, spec, months, run_id="b", end=END)
    table = backtest.metric_table(registry, spec, "rmse")
    ours = table[f"v{version}"]
    assert len(ours) == 4
    for baseline in spec.baselines:
        assert all(ours[m] < table[baseline][m] for m in ours), baseline
    summary = backtest.backtest_summary(registry, spec)
    assert summary["contenders"][f"v{version}"]["months_won"] == 4


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_an_edited_row_recomputes_its_month_and_later_ones_only(registry):
    frame = learnable()
    table = write_frame(registry, frame)
    spec = build_spec(name=model_name(), table=table,
                      search={"n_trials": 2, "cv_folds": 3, "seed": 1, "candidates": 1}, **SPEC)
    registry.sync_model(spec)
    retrain.retrain_model(registry, spec, run_id="r", logical_date=END)
    months = ["2024-03", "2024-04", "2024-05", "2024-06"]
    contenders = len(backtest.contenders(registry, spec))
    assert backtest.run_partition(registry, spec, months, run_id="b1", end=END) == {
        "computed": 4 * contenders, "skipped": 0}
    assert backtest.run_partition(registry, spec, months, run_id="b2", end=END) == {
        "computed": 0, "skipped": 4 * contenders}
    with registry.engine.begin() as conn:
        conn.execute(text(f"UPDATE {table} SET y = y + 1 WHERE day = '2024-05-10'"))
    assert backtest.run_partition(registry, spec, months, run_id="b3", end=END) == {
        "computed": 2 * contenders, "skipped": 2 * contenders}


def test_a_month_without_history_is_a_clear_error(registry):
    spec = build_spec(name=model_name(), table=write_frame(registry, learnable(n=200)), search=SEARCH, **SPEC)
    registry.sync_model(spec)
    with pytest.raises(Exception, match="rows before it to train on"):
        backtest.run_partition(registry, spec, ["2022-06"], run_id="b", end=END)
    assert registry.evaluations(spec.name) == []


def test_forty_days_of_hourly_rows_are_no_back_test_and_say_how_much_history_is_needed():
    import pandas as pd

    from ratchet.exceptions import DataError

    hours = pd.date_range("2026-10-05", periods=24 * 40, freq="h")
    frame = pd.DataFrame({"day": hours, "x1": 1.0, "x2": 2.0, "y": np.arange(len(hours), dtype=float)})
    spec = build_spec(name="hourly", table="s.t", **SPEC)
    valid = sources.validate_frame(spec, frame)
    with pytest.raises(DataError, match=r"too little history for a back-test: the rows run from 2026-10-05 00:00:00 "
                                        r"to 2026-11-13 23:00:00.* the first one \(2026-11\) needs rows through "
                                        r"2026-11-30 \(17 more days\)"):
        backtest.month_groups(spec, valid, end=pd.Timestamp("2026-11-14"), groups=2)
