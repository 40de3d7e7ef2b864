"""The Ratchet page in a real Airflow api-server, driven by headless Chromium (Debian's package)."""
from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import PASSWORD, USER

from ratchet import demo, pipeline

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "docs" / "screenshots"
MODEL = "daily_demand"


@pytest.fixture(scope="module")
def demo_model(api_server, database_url):
    """The demo model after one retrain and back-test, as `make run` shows it."""
    from sqlalchemy import text

    from ratchet.registry import Registry
    from ratchet.registry.schema import Base

    registry = Registry(database_url)
    with registry.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(t.name for t in Base.metadata.sorted_tables)} CASCADE"))
    registry.dispose()
    end = dt.date(2025, 6, 30)
    demo.load_demo(database_url, end=end)
    when = dt.datetime(2025, 7, 1, 1, tzinfo=dt.UTC)
    pipeline.retrain(MODEL, end=when)
    for group in range(2):
        pipeline.backtest_group(MODEL, group, 2, end=when)
    pipeline.backtest_report(MODEL, end=when)
    return MODEL


def test_a_request_without_login_is_refused(api_server):
    for path in ("/ratchet/", f"/ratchet/models/{MODEL}"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(api_server + path, timeout=10)
        assert refused.value.code in (401, 403)


def test_login_open_ratchet_from_the_navigation_and_promote(api_server, demo_model, airflow_db, chromium):
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(api_server + "/")
        page.get_by_label("Username").fill(USER)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()

        page.get_by_role("link", name="Ratchet").first.click()
        page.wait_for_url("**/plugin/ratchet**")
        ratchet = page.frame_locator("iframe").first
        expect(ratchet.locator("#models")).to_contain_text(MODEL)
        page.screenshot(path=str(SCREENSHOTS / "overview.png"))

        ratchet.get_by_role("link", name=MODEL).click()
        expect(ratchet.locator("#backtest-chart svg path[data-series='v1']")).to_have_count(1)
        expect(ratchet.locator("#backtest-chart svg path[data-series='requirement']")).to_have_count(1)
        expect(ratchet.locator("#versions")).to_contain_text("v2")
        page.screenshot(path=str(SCREENSHOTS / "model.png"), full_page=True)

        ratchet.locator("#versions a.promote").first.click()
        expect(ratchet.locator("#model")).to_have_value(MODEL)
        expect(ratchet.locator("#version")).to_have_value("2")
        ratchet.locator("#reason").fill("browser test: dry run")
        ratchet.locator("#dry_run").check()
        page.screenshot(path=str(SCREENSHOTS / "trigger.png"))
        ratchet.get_by_role("button", name="Trigger").click()
        expect(ratchet.locator("#result")).to_contain_text("Triggered", timeout=15000)
        browser.close()

    from sqlalchemy import create_engine, text

    engine = create_engine(airflow_db)
    with engine.connect() as conn:
        conf = conn.execute(text("SELECT conf FROM dag_run WHERE dag_id = 'ratchet_promote' "
                                 "ORDER BY id DESC LIMIT 1")).scalar()
    engine.dispose()
    conf = conf if isinstance(conf, dict) else json.loads(conf)
    assert conf == {"model": MODEL, "version": 2, "reason": "browser test: dry run", "dry_run": True}
