"""The review queue in the registry: a row queued once, at most `per_day` a day, a re-run of a day converging on a
clean run's queue, labels recorded with who and when, and a refused label changing nothing."""
from __future__ import annotations

import datetime as dt

import pytest
from promote_helpers import snapshot
from spec_factory import build_spec

from ratchet.exceptions import NotFoundError, ReviewLabelError
from ratchet.registry.entities import ReviewItem

DAY = dt.date(2024, 3, 2)
CLASSES = {"task": "classification", "estimators": [{"class": "sklearn.linear_model.LogisticRegression"}],
           "baselines": ["majority"], "review": {"max_confidence": 0.6, "per_day": 3}}


def _unsure(day: int, confidence: float, origin: str = "served") -> ReviewItem:
    time = dt.datetime(2024, 3, day)
    return ReviewItem(item_key=time.isoformat(), feature_id=time, series=None, origin=origin, version=1, answer="1",
                      confidence=confidence, probabilities={"0": 1 - confidence, "1": confidence})


@pytest.fixture
def model(registry):
    registry.sync_model(build_spec(name="churn", **CLASSES))
    return "churn"


def test_at_most_per_day_items_in_the_order_given_and_each_row_once(registry, model):
    given = [_unsure(d, 0.5 + d / 100) for d in (1, 2, 3, 1, 4, 5)]  # day 1 twice: one item
    queued = registry.queue_review_items(model, given, day=DAY, per_day=3, run_id="r")
    assert [i.feature_id.day for i in queued] == [1, 2, 3]
    next_day = registry.queue_review_items(model, given, day=DAY + dt.timedelta(days=1), per_day=3, run_id="r2")
    assert [i.feature_id.day for i in next_day] == [4, 5]  # rows queued before are never asked again
    waiting = registry.review_items(model, pending=True)
    assert [i.feature_id.day for i in waiting] == [1, 2, 3, 4, 5]  # oldest first
    assert registry.review_queue(model)[:2] == (5, 0)


def test_a_rerun_of_a_day_reaches_a_clean_runs_queue_and_keeps_what_was_labelled(registry, model):
    registry.queue_review_items(model, [_unsure(d, 0.51) for d in (1, 2, 3)], day=DAY, per_day=3, run_id="r")
    (first, *_) = registry.review_items(model)
    registry.label_review_item(model, first.id, "0", labelled_by="carol")
    again = registry.queue_review_items(model, [_unsure(d, 0.51) for d in (2, 7, 8, 9)], day=DAY, per_day=3,
                                        run_id="r")
    assert [i.feature_id.day for i in again] == [2, 7]  # one labelled item of the day already counts
    assert sorted(i.feature_id.day for i in registry.review_items(model)) == [1, 2, 7]
    assert registry.review_queue(model)[:2] == (2, 1)


def test_a_label_is_recorded_with_who_and_when_and_a_refused_one_changes_nothing(registry, model):
    (item,) = registry.queue_review_items(model, [_unsure(1, 0.55)], day=DAY, per_day=3, run_id="r")
    before = snapshot(registry)
    with pytest.raises(ReviewLabelError, match=r"'2' is not a class v1 knows; the label must be one of \['0', '1'\]"):
        registry.label_review_item(model, item.id, "2", labelled_by="carol")
    with pytest.raises(NotFoundError, match=f"model 'churn' has no review item {item.id + 1}"):
        registry.label_review_item(model, item.id + 1, "1", labelled_by="carol")
    assert snapshot(registry) == before
    started = dt.datetime.now(dt.UTC)
    labelled = registry.label_review_item(model, item.id, "0", labelled_by="carol")
    assert (labelled.label, labelled.labelled_by) == ("0", "carol")
    assert started <= labelled.labelled_at <= dt.datetime.now(dt.UTC)
    after = snapshot(registry)
    with pytest.raises(ReviewLabelError, match="already labelled '0' by carol"):
        registry.label_review_item(model, item.id, "1", labelled_by="dave")
    assert snapshot(registry) == after
    assert registry.review_items(model, pending=False) == [labelled]
    waiting, done, oldest = registry.review_queue(model)
    assert (waiting, done, oldest) == (0, 1, None)


def test_a_labelled_item_becomes_a_golden_case_once(registry, model):
    (item,) = registry.queue_review_items(model, [_unsure(1, 0.55)], day=DAY, per_day=3, run_id="r")
    registry.label_review_item(model, item.id, "1", labelled_by="carol")
    case = {"case_key": "k" * 64, "source": "reviewed", "name": "reviewed row", "inputs": {"x": 1.0},
            "expected": 1.0, "tolerance": 0.0}
    assert registry.add_reviewed_golden_cases(model, {item.id: case}) == 1
    assert registry.add_reviewed_golden_cases(model, {item.id: case}) == 0
    (stored,) = registry.golden_cases(model)
    assert (stored.source, stored.expected) == ("reviewed", 1.0)
    assert registry.review_items(model)[0].golden_case_key == "k" * 64
