"""Simplicity (`ratchet.modeling.complexity`, `ratchet.modeling.simplicity`): fitted parameters counted per estimator
family, and the simplest trial not significantly worse than the best winning a candidate slot."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from spec_factory import build_spec

from ratchet.modeling import search, simplicity
from ratchet.modeling.complexity import measure, parameter_count

RNG = np.random.default_rng(0)
X = RNG.normal(size=(300, 4))
Y = X @ np.array([1.0, 0.0, -2.0, 0.5]) + RNG.normal(size=300)
LABELS = (Y > 0).astype(int)
FOREST = "sklearn.ensemble.RandomForestRegressor"
RIDGE = "sklearn.linear_model.Ridge"


def _nodes(trees) -> int:
    return sum(tree.tree_.node_count for tree in trees)


def test_linear_models_count_their_nonzero_coefficients_and_intercepts():
    from sklearn.linear_model import Lasso, LogisticRegression, Ridge

    assert parameter_count(Ridge().fit(X, Y)) == (5, "nonzero coefficients")
    lasso = Lasso(alpha=0.5).fit(X, Y)
    assert 0 in lasso.coef_  # the L1 penalty zeroed a coefficient: it is no parameter any more
    assert parameter_count(lasso)[0] == np.count_nonzero(lasso.coef_) + 1 < 5
    assert parameter_count(LogisticRegression().fit(X, LABELS)) == (5, "nonzero coefficients")


def test_trees_count_their_nodes_summed_over_every_tree_of_an_ensemble():
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor

    tree = DecisionTreeRegressor(max_depth=3).fit(X, Y)
    assert parameter_count(tree) == (15, "tree nodes")  # a full binary tree of depth 3
    forest = RandomForestRegressor(n_estimators=30, random_state=0).fit(X, Y)
    assert parameter_count(forest) == (_nodes(forest.estimators_), "tree nodes over 30 members")
    boosted = GradientBoostingRegressor(n_estimators=20, max_depth=2).fit(X, Y)  # its trees: a 20 x 1 array
    assert parameter_count(boosted) == (20 * 7, "tree nodes over 20 members")
    histogram = HistGradientBoostingRegressor(max_iter=10, max_leaf_nodes=4).fit(X, Y)
    assert parameter_count(histogram) == (10 * 7, "tree nodes")  # 4 leaves, 3 splits per tree


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # five epochs: enough to count
def test_other_families_count_what_they_keep_and_an_unknown_one_its_artifact():
    from sklearn.dummy import DummyRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.neural_network import MLPRegressor
    from sklearn.svm import SVR

    from ratchet.modeling import artifacts

    svr = SVR().fit(X, Y)
    assert parameter_count(svr) == (svr.support_vectors_.size + svr.dual_coef_.size + 1,
                                    "support vectors' values and dual coefficients")
    assert parameter_count(KNeighborsRegressor().fit(X, Y)) == (300 * 5, "kept training values")
    mlp = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5).fit(X, Y)
    assert parameter_count(mlp) == (4 * 8 + 8 + 8 * 1 + 1, "weights and biases")
    assert parameter_count(DummyRegressor().fit(X, Y)) == (1, "constants")
    process = GaussianProcessRegressor().fit(X[:50], Y[:50])
    assert parameter_count(process) == (artifacts.dump(process).size_bytes // 8, "artifact bytes / 8")


def test_ratchets_wrappers_are_not_counted_only_the_estimator_in_them():
    from ratchet.modeling.features import make_estimator

    spec = build_spec(name="m", task="classification", classification={"threshold": 0.3},
                      estimators=[{"class": "sklearn.linear_model.LogisticRegression"}])
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = make_estimator(spec, spec.estimators[0], {}).fit(frame, LABELS)  # a threshold around a pipeline
    assert type(model).__name__ == "ThresholdClassifier"
    counted = measure(model, frame)
    assert (counted.parameters, counted.counted) == (5, "nonzero coefficients") and counted.predict_us > 0


DAYS = pd.Series(pd.date_range("2024-01-01", periods=300))
VALIDATED = np.arange(300) >= 75  # the rows the folds validate (the first block only trains)


def _trial(index: int, estimator: str, rms: float, parameters: int, predict_us: float = 5.0) -> search.Trial:
    """A scored trial, as `run_search` leaves it: out-of-fold errors drawn independently of every other trial's
    (seeded by `index`) and scaled so that their root mean square, its CV rmse, is `rms` exactly."""
    errors = np.random.default_rng(index).normal(size=300)
    losses = np.where(VALIDATED, (errors * rms / np.sqrt(np.mean(errors[VALIDATED] ** 2))) ** 2, np.nan)
    trial = search.Trial(index, estimator, {}, "explore", "rmse", [], rms)
    trial.row_losses = losses
    trial.details = {"complexity": {"parameters": parameters, "counted": "...", "predict_us": predict_us}}
    return trial


def _forests_and_ridges(best_rms: float) -> list[search.Trial]:
    """A 500-tree forest scoring `best_rms`, a smaller one at 0.98, and two ridges at 1.0 and 1.3."""
    return [_trial(0, RIDGE, 1.3, 5), _trial(1, FOREST, best_rms, 120_000, predict_us=80.0),
            _trial(2, RIDGE, 1.0, 5), _trial(3, FOREST, 0.98, 110_000)]


def _spec(**search_fields):
    return build_spec(name="m", search={"n_trials": 4, "candidates": 1, **search_fields})


def test_a_big_ensemble_not_significantly_better_than_a_linear_model_leaves_it_a_slot():
    spec = _spec(candidates=2)
    trials = _forests_and_ridges(best_rms=0.97)
    simplicity.compare_with_best(spec, trials, DAYS)
    forest, ridge = trials[1], trials[2]
    assert search.best_trials(spec, trials) == [forest, trials[3]]  # by score: the two forests
    test = ridge.details["versus_best"]
    assert test["best_trial"] == 1 and test["n_days"] == 225 and test["metric"] == "rmse"
    assert test["relative_difference"] < 0 and test["p_value"] >= 0.05  # better, but not significantly
    assert trials[0].details["versus_best"]["p_value"] < 0.05  # the worse ridge is significantly worse

    slots, choice = simplicity.candidates(spec, trials)
    assert slots == [forest, ridge] and choice.won_slot  # the ridge took the second forest's slot
    assert (choice.best, choice.simplest, choice.not_worse, choice.scored) == (forest, ridge, 3, 4)
    assert [choice.record(t)["role"] for t in slots] == ["best", "simplest"]
    assert choice.record(ridge)["complexity"]["parameters"] == 5
    assert choice.text().startswith("trial #2 (Ridge, rmse 1, 5 ...") and "wins a candidate slot" in choice.text()
    assert f"p = {test['p_value']:.3g}" in choice.text() and "120,000 ..." in choice.text()

    alone, _ = simplicity.candidates(_spec(candidates=1), trials)
    assert alone == [ridge]  # one slot: the simplest takes it
    anyway, choice = simplicity.candidates(_spec(candidates=3), trials)
    assert anyway == [forest, trials[3], ridge] and not choice.won_slot  # its score ranks it among three anyway


def test_a_big_ensemble_significantly_better_changes_nothing():
    spec = _spec(candidates=2)
    trials = _forests_and_ridges(best_rms=0.7)
    simplicity.compare_with_best(spec, trials, DAYS)
    assert all(t.details["versus_best"]["p_value"] < 0.001 for t in (trials[0], trials[2], trials[3]))
    slots, choice = simplicity.candidates(spec, trials)
    assert slots == search.best_trials(spec, trials) == [trials[1], trials[3]]
    assert choice.simplest is choice.best is trials[1] and not choice.won_slot and choice.not_worse == 1
    assert choice.record(trials[1])["role"] == "best and simplest" and choice.evidence()["test"] is None
    assert choice.text().startswith("the best trial #1 (RandomForestRegressor") and "also the simplest" in choice.text()


def test_the_level_and_margin_are_the_settings_and_prefer_simpler_false_ranks_by_score_alone():
    trials = _forests_and_ridges(best_rms=0.97)
    simplicity.compare_with_best(_spec(), trials, DAYS)
    p = trials[2].details["versus_best"]["p_value"]
    assert simplicity.choose(_spec(), trials).simplest is trials[2]
    assert simplicity.choose(_spec(simpler_significance=min(p + 0.01, 0.49)), trials).simplest is not trials[2]

    wide = build_spec(name="m", search={"candidates": 1}, promotion={"min_improvement": 0.5})
    clear = _forests_and_ridges(best_rms=0.7)
    simplicity.compare_with_best(wide, clear, DAYS)  # H0: the forest is not 50% better: it cannot show that
    assert simplicity.choose(wide, clear).simplest is clear[2]

    off = _spec(prefer_simpler=False)
    fresh = _forests_and_ridges(best_rms=0.97)
    simplicity.compare_with_best(off, fresh, DAYS)
    assert all("versus_best" not in t.details for t in fresh)
    assert simplicity.candidates(off, fresh) == ([fresh[1]], None)


@pytest.mark.parametrize(("predict_us", "simplest"), [(3.0, 1), (2.0, 2)])
def test_equal_counts_go_to_the_better_score_unless_another_predicts_twice_as_fast(predict_us, simplest):
    trials = [_trial(0, FOREST, 0.99, 1000), _trial(1, RIDGE, 1.0, 5, predict_us=5.0),
              _trial(2, RIDGE, 1.001, 5, predict_us=predict_us)]
    simplicity.compare_with_best(_spec(), trials, DAYS)
    assert simplicity.choose(_spec(), trials).simplest is trials[simplest]
    same = [_trial(0, RIDGE, 1.0, 5, predict_us=9.0), _trial(1, RIDGE, 1.001, 5, predict_us=1.0)]
    simplicity.compare_with_best(_spec(), same, DAYS)
    assert simplicity.choose(_spec(), same).simplest is same[0]  # the best keeps it: no fewer parameters


def test_a_real_search_where_trees_win_clearly_keeps_its_slots_and_records_each_trials_evidence():
    spec = build_spec(name="m", search={"n_trials": 4, "cv_folds": 3, "seed": 2, "candidates": 1},
                      estimators=[{"class": RIDGE},
                                  {"class": FOREST, "params": {"n_estimators": 40, "random_state": 0},
                                   "search_space": {"min_samples_leaf": {"randint": [1, 5]}}}])
    rng = np.random.default_rng(3)
    x = rng.uniform(-3, 3, 300)
    frame, y = pd.DataFrame({"x": x}), pd.Series(5 * np.sin(2 * x) + rng.normal(0, 0.3, 300))
    trials = search.run_search(spec, frame, y, DAYS, seed_salt="2024-01-01")
    simplicity.compare_with_best(spec, trials, DAYS)
    best = search.ranked(spec, trials)[0]
    assert best.estimator_class == FOREST and best.details["complexity"]["parameters"] > 1000
    ridges = [t for t in trials if t.estimator_class == RIDGE]
    assert ridges and all(t.details["complexity"]["parameters"] == 2 for t in ridges)
    assert all(t.details["versus_best"]["p_value"] < 1e-6 for t in ridges)  # a sine is no line
    assert all(np.isnan(t.row_losses[:75]).all() and np.isfinite(t.row_losses[75:]).all() for t in trials)
    slots, choice = simplicity.candidates(spec, trials)
    assert slots == [best] and choice.simplest is best and not choice.won_slot
    assert {k for t in trials for k in t.record()["details"]} <= {"complexity", "versus_best"}
