"""Alert mails (`ratchet.alerting.mails`): every mail has a plain-text part that says what the HTML says."""
from __future__ import annotations

import datetime as dt

from ratchet.alerting.mails import build_recovery_alert
from ratchet.evaluation.nowtest import ContenderResult, NowtestOutcome
from ratchet.evaluation.requirements import check_requirements
from ratchet.specs.model import RequirementSpec


def test_a_recovery_mail_names_the_breach_and_shows_the_numbers_in_text_and_html():
    requirement = RequirementSpec(metric="mape", direction="max", bound=0.08, scope="nowtest")
    checked = check_requirements([requirement], {"mape": 0.031}, {})
    champion = ContenderResult("v3", 3, "champion", {"mape": 0.031}, checked)
    outcome = NowtestOutcome("demand", "2025-08-20", dt.datetime(2025, 8, 7), dt.datetime(2025, 8, 21), 14, 14, 7,
                             [champion], {}, mailed="recovery", since="2025-08-01")
    mail = build_recovery_alert(outcome, "http://airflow/run")
    assert mail.subject == "[Ratchet] demand now-test passes again (failing since 2025-08-01)"
    for part in (mail.text, mail.html):
        assert "0.031" in part and "max 0.08" in part and "2025-08-01" in part and "http://airflow/run" in part


def test_a_promotions_mail_and_the_approval_it_answers_link_the_promoted_versions_card(registry, tmp_path,
                                                                                       monkeypatch):
    from promote_helpers import after_regime_change

    from ratchet import pipeline
    from ratchet.lifecycle.promotion import promote

    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example:8080")
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    spec = after_regime_change(registry, tmp_path)  # v2 passes every gate but a ratcheted bound
    card = "http://airflow.example:8080/ratchet/models/demand/versions/2/card"
    assert f"[model card]({card})" in pipeline.review("demand", 2, "Promote and re-baseline")
    promote(registry, spec, version=2, reason="proposed", triggered_by="carol", run_id="approve", rebaseline=True)
    [mail] = registry.alerts("demand")
    assert f"Model card of the promoted version: {card}" in mail.body_text and f"href='{card}'" in mail.body_html
