"""The Ratchet pages' content for edge cases: no models, no champion yet, very long histories.

Login is covered for real by ui/test_browser.py; here the app runs without Airflow's auth dependency.
"""
from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from spec_factory import write_spec
from ui_seed import REQUIREMENTS, seed_history

from ratchet.ui.app import create_app


@pytest.fixture
def client(tmp_path, monkeypatch, registry):
    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    return TestClient(create_app())


def test_no_models_configured(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "No models configured" in page.text


def test_a_configured_model_never_run(client, tmp_path):
    write_spec(tmp_path, name="fresh", table="ui_seed.fresh", requirements=REQUIREMENTS, backtest={"months": 12})
    assert "not run yet" in client.get("/").text
    assert "Nothing stored yet" in client.get("/models/fresh").text
    assert client.get("/models/fresh/report").status_code == 404


def test_a_model_without_champion(client, tmp_path, registry):
    seed_history(registry, tmp_path, "nochamp", versions=3, months=6, champion=False)
    overview = client.get("/").text
    assert "none yet" in overview
    page = client.get("/models/nochamp").text
    assert page.count('class="btn promote"') == 3  # every version can be promoted
    assert "no data yet" in page  # no now-test timeline without a champion
    assert 'data-series="v3"' in page


@pytest.mark.slow  # over 8 s in the measured full run (2 cores, load ~11)
def test_very_long_histories_render_every_month_and_version(client, tmp_path, registry):
    seed_history(registry, tmp_path, "long", versions=60, months=120, nowtest_days=200)
    page = client.get("/models/long")
    assert page.status_code == 200
    assert page.text.count("<tr><td>v") == 60
    assert 'data-series="v60"' in page.text and "2009-12" in page.text  # the 120th month
    assert page.text.count('class="breach"') == len([d for d in range(200) if d % 17 == 0])
    overview = client.get("/").text
    assert "passed</span> 2025-07-19" in overview  # the champion's last now-test day (day 199)


def test_an_open_proposal_links_to_its_required_action_and_an_answer_shows_the_comment(client, tmp_path, registry):
    seed_history(registry, tmp_path, "proposed", versions=3, months=6)
    registry.record_promotion("proposed", 3, kind="promotion", outcome="proposed", triggered_by="ratchet",
                              reason="proposed by ratchet: passed every gate on 2025-03-01", gates=[],
                              run_id="night", expected_previous_version=1)
    page = client.get("/models/proposed").text
    assert 'id="proposal"' in page and "Ratchet proposes <b>v3</b>" in page
    assert 'href="/dags/ratchet_promote/runs/proposal__proposed__v3/tasks/approve/required_actions"' in page

    registry.record_promotion("proposed", 3, kind="promotion", outcome="rejected", triggered_by="carol",
                              reason="proposed by ratchet: passed every gate on 2025-03-01", gates=[],
                              run_id="proposal__proposed__v3", expected_previous_version=1, comment="too early")
    page = client.get("/models/proposed").text
    assert 'id="proposal"' not in page and "carol: proposed by ratchet" in page and "“too early”" in page


def test_without_the_login_no_page_or_api_description_answers(tmp_path, monkeypatch, registry):
    """Mounted in Airflow, the app runs behind `requires_authenticated()`: a refusing dependency stands in for it."""
    from fastapi import HTTPException

    def login_required() -> None:
        raise HTTPException(401, "not logged in")

    monkeypatch.setenv("RATCHET_MODELS_DIR", str(tmp_path))
    guarded = TestClient(create_app(login_required))
    assert guarded.get("/").status_code == 401
    for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
        assert guarded.get(path).status_code == 404, path  # not served at all, with or without a login
        assert TestClient(create_app()).get(path).status_code == 404, path


def test_unknown_model_is_404_with_the_configured_names(client, tmp_path):
    write_spec(tmp_path, name="known", table="ui_seed.known", requirements=REQUIREMENTS, backtest={"months": 6})
    answer = client.get("/models/unknown")
    assert answer.status_code == 404 and "known" in answer.json()["detail"]


def test_the_model_page_has_a_serving_panel_from_the_serving_log(client, tmp_path, registry):
    import datetime as dt

    from served_helpers import seed_serving

    seed_history(registry, tmp_path, "served", versions=2, months=3, nowtest_days=5)
    # the panel counts minutes up to the last complete one: seeding "now" one second before a minute ends puts every
    # probe (10 s into each minute) in a complete minute, whatever second the test starts at
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(seconds=1)
    seed_serving(registry, "served", now)
    page = client.get("/models/served").text
    panel = page[page.index('<table id="serving">'):page.index("</table>", page.index('<table id="serving">'))]
    assert panel.count("<tr><td>") == 14  # one row per day of the last 14
    # the last 40 minutes' requests by arm; availability over the 30 minutes of probes (31 if a minute began since)
    assert re.search(r"<td>7</td>\s*<td>champion 6 candidate 1 </td>", panel), panel
    assert re.search(r"29/3[01] min</span>", panel), panel
    arms = page[page.index('<table id="served-arms">'):]
    assert "v1@champion" in arms and "v2@candidate" in arms and "rmse 1.5" in arms
    assert "no verdict (fewer ids than min_rows)" in arms and "descriptive" in arms


def test_a_model_never_served_says_so(client, tmp_path, registry):
    seed_history(registry, tmp_path, "quiet", versions=1, months=3, nowtest_days=2)
    assert "No request and no health probe of the REST service" in client.get("/models/quiet").text


def test_the_page_agrees_with_the_registry_and_with_itself(client, tmp_path, registry):
    from ratchet.registry import EvaluationRow

    seed_history(registry, tmp_path, "truth", versions=3, months=6, nowtest_days=18)  # day 17 breached, the last
    registry.record_evaluations("truth", [EvaluationRow(kind="backtest", contender=c, partition="2000-07",
                                                        metric="rmse", value=1.0, n_rows=30, run_id="seed",
                                                        version=v, data_fingerprint="f")
                                          for c, v in (("v2", 2), ("v3", 3))])  # a month v1 lacks: 02..07 shown
    (bound,) = [r.bound for r in registry.requirements("truth", "backtest")]
    overview = client.get("/").text
    verdict = rf'data-bound="{bound}">.*met</span>:\s*rmse [\d.]+ \S+ max 0.9 × \w+ [\d.]+ = [\d.]+'
    assert re.search(verdict, overview), overview
    assert 'FAILED</span> 2025-01-18' in overview and '<span class="bad open-alerts">1 open</span>' in overview
    assert "(breach of mape since 2025-01-18, not mailed)" in overview and "0 sent" in overview
    page = client.get("/models/truth").text
    assert "over the 5 month(s) every version has (2000-02..2000-06)" in page
    assert page.count("(own 6 months: ") == 2 and "months won vs v1" in page
    line = re.search(r'<path d="([^"]*)"[^>]*data-series="champion of the day"', page).group(1)
    assert line.count("L") == 17  # 18 days joined
    assert 'id="next-step">v2 has enough trial days (0 of 0) and beats the champion v1' in page


def test_the_model_page_says_when_the_source_lost_a_column_the_champion_reads(client, tmp_path, registry):
    """ui_seed's versions read columns a, b and c of table ui_seed.<name>: with the table, nothing to say; once
    column b is dropped, the page names the column and the champion's version."""
    import pandas as pd
    from sqlalchemy import text

    seed_history(registry, tmp_path, "contract", versions=2, months=6)
    with registry.engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS ui_seed"))
        pd.DataFrame({"day": pd.date_range("2024-01-01", periods=3), "y": 1.0, "a": 1.0, "b": 2.0, "c": 3.0}).to_sql(
            "contract", conn, schema="ui_seed", index=False, if_exists="replace")
    assert 'id="contract-problem"' not in client.get("/models/contract").text
    with registry.engine.begin() as conn:
        conn.execute(text("ALTER TABLE ui_seed.contract DROP COLUMN b"))
    page = client.get("/models/contract").text
    assert re.search(r'id="contract-problem" class="bad">model &#39;contract&#39; v1: missing columns \[&#39;b&#39;\]',
                     page), page


def test_each_version_links_its_model_card_and_the_card_page_renders_it(client, tmp_path, registry):
    from ratchet.reporting.card import build_card
    from ratchet.specs import load_spec

    seed_history(registry, tmp_path, "carded", versions=2, months=4, nowtest_days=3)
    page = client.get("/models/carded").text
    assert all(f'href="/ratchet/models/carded/versions/{n}/card">card</a>' in page for n in (1, 2))
    card = client.get("/models/carded/versions/1/card")
    assert card.status_code == 200 and "<h1>Model card: carded v1</h1>" in card.text
    assert build_card(registry, load_spec(tmp_path / "carded.yaml"), 1).html() in card.text  # the card, unchanged
    assert 'href="/ratchet/models/carded">carded</a>' in card.text  # the way back to the model page
    missing = client.get("/models/carded/versions/9/card")
    assert missing.status_code == 404 and "model 'carded' has no version 9; its versions: [1, 2]" in missing.text


def test_the_model_page_shows_how_the_champion_ages_beside_its_schedule(client, tmp_path, registry):
    from ratchet.registry.entities import AgePoint, Aging, Crossing

    seed_history(registry, tmp_path, "aged", versions=2, months=6)
    page = client.get("/models/aged").text
    assert "<code>@daily</code>" in page and "Not measured yet" in page  # the champion's aging comes with a back-test
    means = [0.30, 0.42, 0.51, 0.60]
    curve = tuple(AgePoint(age, mean, 0.05, mean - 0.04, mean + 0.04, {"2000-01": mean - 0.01, "2000-02": mean,
                                                                       "2000-03": mean + 0.01})
                  for age, mean in enumerate(means, start=1))
    crossing = Crossing(None, "rmse", "max", "backtest", "rmse max 0.5 (back-test)", (0.5,) * 4, 3)
    months = ("2000-01", "2000-02", "2000-03", "2000-04", "2000-05", "2000-06")
    registry.record_aging(Aging("aged", 1, "ratchet_backtest@night", months, 4, {"rmse": curve}, (crossing,)))
    page = client.get("/models/aged").text
    assert "rmse max 0.5 (back-test) broken at age 3 months" in page
    assert "<b>@weekly</b>" in page and "the configured schedule is often enough" in page  # 28 days held: weekly
    rows = re.findall(r'<table id="aging">.*?</table>', page, re.S)[0].split("<tr")[2:]
    assert len(rows) == 4 and 'class="chosen"' in rows[2]  # the crossing age's row
    assert "<td>0.51</td>" in rows[2] and "<td>0.5</td><td>2</td>" in rows[2]  # 0.51 and 0.52 break it, 0.50 not
    assert "<td>0.5</td><td>0</td>" in rows[1]
    assert 'data-series="requirement"' in re.findall(r'<div id="aging-chart">.*?</div>', page, re.S)[0]
