"""The review list of the Ratchet page, served by the app without Airflow (a `reviewer` dependency names the person,
as Airflow's `get_user` does when mounted): oldest first, a label stored with who, a refused label changing nothing.

The same list driven by a person signed in to a real Airflow api-server: tests/conformance/test_review_round_trip.py.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from promote_helpers import snapshot
from spec_factory import write_spec

from ratchet.registry.entities import ReviewItem
from ratchet.ui.app import create_app

CLASSIFIER = {"task": "classification", "estimators": [{"class": "sklearn.linear_model.LogisticRegression"}],
              "baselines": ["majority"], "review": {"max_confidence": 0.6, "per_day": 10}}


def _item(day: int, **fields) -> ReviewItem:
    time = dt.datetime(2024, 3, day)
    return ReviewItem(**{"item_key": time.isoformat(), "feature_id": time, "series": None, "origin": "served",
                         "version": 1, "answer": "1", "confidence": 0.55,
                         "probabilities": {"0": 0.45, "1": 0.55}, **fields})


@pytest.fixture
def queued(registry, tmp_path, monkeypatch):
    """churn (classes 0 and 1) and load (a regressor), each with review items queued on two days."""
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    registry.sync_model(write_spec(tmp_path, name="churn", **CLASSIFIER))
    registry.sync_model(write_spec(tmp_path, name="load", review={"max_interval_width": 5.0}))
    registry.queue_review_items("churn", [_item(3), _item(4, origin="nowtest", actual="0")], day=dt.date(2024, 3, 5),
                                per_day=10, run_id="r1")
    registry.queue_review_items("churn", [_item(1, confidence=0.51)], day=dt.date(2024, 3, 6), per_day=10,
                                run_id="r2")
    registry.queue_review_items("load", [_item(2, answer="40.0", confidence=None, probabilities=None,
                                               interval=(31.0, 49.0))], day=dt.date(2024, 3, 5), per_day=10,
                                run_id="r1")
    return {"churn": registry.review_items("churn"), "load": registry.review_items("load")}


def test_the_list_shows_what_waits_oldest_first_with_the_classes_to_choose_from(registry, queued):
    client = TestClient(create_app(reviewer=lambda: "carol"))
    page = client.get("/models/churn/review").text
    waiting = [int(i) for i in re.findall(r'<tr data-item="(\d+)"', page)]
    assert waiting == [i.id for i in queued["churn"]]  # queued first, listed first (day 3 and 4, then day 1)
    assert '<option value="0">' in page and '<option value="1">' in page and "Confirm 1" in page
    assert "top probability is below 0.6" in page and "trains the next search with weight 2.0" in page
    model_page = client.get("/models/churn").text
    assert 'id="review-status"' in model_page and "3 waiting for a label" in model_page
    assert 'href="/ratchet/models/churn/review"' in model_page


def test_a_label_is_stored_with_the_person_and_the_list_says_so(registry, queued):
    client = TestClient(create_app(reviewer=lambda: "carol"))
    first = queued["churn"][0]
    answered = client.post(f"/models/churn/review/{first.id}", data={"label": "0"}, follow_redirects=False)
    assert answered.status_code == 303 and answered.headers["location"] == f"/models/churn/review?labelled={first.id}"
    (labelled,) = registry.review_items("churn", pending=False)
    assert (labelled.id, labelled.label, labelled.labelled_by) == (first.id, "0", "carol")
    page = client.get(answered.headers["location"]).text
    assert f"Item {first.id} labelled." in page and '<td class="by">carol</td>' in page
    assert page.count('<form class="label-form"') == 2


@pytest.mark.parametrize(("model", "label", "message"), [
    ("churn", "maybe", "&#39;maybe&#39; is not a class v1 knows; the label must be one of [&#39;0&#39;, &#39;1&#39;]"),
    ("load", "forty", "&#39;forty&#39; is not a number; a regression label is a finite number (v1 answered 40.0)"),
])
def test_a_label_of_the_wrong_type_is_refused_on_the_list_and_nothing_changes(registry, queued, model, label, message):
    client = TestClient(create_app(reviewer=lambda: "carol"))
    before = snapshot(registry)
    refused = client.post(f"/models/{model}/review/{queued[model][0].id}", data={"label": label})
    assert refused.status_code == 422
    assert 'id="refused"' in refused.text and message in refused.text and "nothing was stored" in refused.text
    assert snapshot(registry) == before


def test_without_a_person_to_name_or_for_another_models_item_nothing_is_stored(registry, queued):
    before = snapshot(registry)
    anonymous = TestClient(create_app()).post(f"/models/churn/review/{queued['churn'][0].id}", data={"label": "0"})
    assert anonymous.status_code == 403 and "records who gave it" in anonymous.json()["detail"]
    elsewhere = TestClient(create_app(reviewer=lambda: "carol")).post(
        f"/models/churn/review/{queued['load'][0].id}", data={"label": "0"})
    assert elsewhere.status_code == 404 and "model 'churn' has no review item" in elsewhere.json()["detail"]
    assert snapshot(registry) == before
