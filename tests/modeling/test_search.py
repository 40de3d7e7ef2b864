"""Hyperparameter search (`ratchet.modeling.search`): time-ordered folds, explore and exploit, seeded trials."""
from __future__ import annotations

import numpy as np
from backtest_helpers import SEARCH, SPEC, model_name
from spec_factory import build_spec

from ratchet.modeling import search


def test_time_folds_never_train_on_rows_after_validation():
    import pandas as pd

    days = pd.Series(pd.date_range("2024-01-01", periods=200))
    single = search.time_folds(days, 4)
    for train, test in single:
        assert train.max() < test.min()
    from sklearn.model_selection import TimeSeriesSplit  # one series: the same folds as over its rows

    assert all((a == c).all() and (b == d).all()
               for (a, b), (c, d) in zip(single, TimeSeriesSplit(4).split(range(200)), strict=True))


def test_a_panels_folds_cut_between_periods_never_through_one():
    import pandas as pd

    days = pd.date_range("2024-01-01", periods=50)
    panel = pd.Series(np.repeat(days, 3)).iloc[1:-1].reset_index(drop=True)  # 3 series; the first and last short
    for train, test in search.time_folds(panel, 4):
        assert panel[train].max() < panel[test].min()
        assert set(panel[train]).isdisjoint(panel[test]) and len(train) + len(test) <= len(panel)
        assert all((panel == day).sum() == (panel[test] == day).sum() for day in set(panel[test]))


def test_exploit_trials_sample_near_the_champion_within_bounds():
    spec = build_spec(name=model_name(), table="s.t", **SPEC,
                      search={"n_trials": 10, "cv_folds": 3, "seed": 0, "candidates": 1, "explore_fraction": 0.4})

    class Champion:
        estimator_class = "sklearn.linear_model.Ridge"
        hyperparameters = {"alpha": 1.0}

    plans = search.plan_trials(spec, np.random.default_rng(0), Champion())
    exploit = [params for _, params, sampling in plans if sampling == "exploit"]
    assert len(exploit) == 6
    width = np.log(10 / 0.01) * search.NARROW_FRACTION / 2
    for params in exploit:
        assert abs(np.log(params["alpha"])) <= width + 1e-9
        assert 0.01 <= params["alpha"] <= 10
    assert all(sampling == "explore" for _, _, sampling in search.plan_trials(spec, np.random.default_rng(0)))


def test_same_logical_date_samples_the_same_trials():
    spec = build_spec(name=model_name(), table="s.t", search=SEARCH, **SPEC)
    first = search.plan_trials(spec, np.random.default_rng(search.run_seed(3, "2024-07-01")))
    again = search.plan_trials(spec, np.random.default_rng(search.run_seed(3, "2024-07-01")))
    other = search.plan_trials(spec, np.random.default_rng(search.run_seed(3, "2024-07-02")))
    assert [p for _, p, _ in first] == [p for _, p, _ in again] != [p for _, p, _ in other]
