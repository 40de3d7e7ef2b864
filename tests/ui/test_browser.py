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
    # trained before the regime change, as `make run` trains: the now-tests after it judge rows it never saw
    changed = demo.regime_change_day(end)
    pipeline.retrain(MODEL, end=dt.datetime(changed.year, changed.month, changed.day, 1, tzinfo=dt.UTC))
    for group in range(2):
        pipeline.backtest_group(MODEL, group, 2, end=when)
    pipeline.backtest_report(MODEL, end=when)
    return MODEL


def _ratchet_in_airflow(playwright, api_server: str, chromium: str):
    """Chromium signed in to Airflow with the Ratchet page opened from the navigation: (browser, page, the frame)."""
    browser = playwright.chromium.launch(executable_path=chromium, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run",
        "--disable-component-update", "--disable-sync"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(api_server + "/")
    page.get_by_label("Username").fill(USER)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Ratchet").first.click()
    page.wait_for_url("**/plugin/ratchet**")
    return browser, page, page.frame_locator("iframe").first


def test_a_request_without_login_is_refused(api_server):
    for path in ("/ratchet/", f"/ratchet/models/{MODEL}"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(api_server + path, timeout=10)
        assert refused.value.code in (401, 403)


def test_login_open_ratchet_from_the_navigation_and_promote(api_server, demo_model, airflow_db, chromium):
    from playwright.sync_api import expect, sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser, page, ratchet = _ratchet_in_airflow(p, api_server, chromium)
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


NO_NESTED_SCROLL = """() => [...document.querySelectorAll('*')].filter(e => {
    const style = getComputedStyle(e);
    return (/(auto|scroll)/.test(style.overflowY) && e.scrollHeight > e.clientHeight + 1)
        || (/(auto|scroll)/.test(style.overflowX) && e.scrollWidth > e.clientWidth + 1);
}).map(e => `${e.tagName}#${e.id}.${e.className}`)"""


def _box(locator) -> dict:
    """The element's geometry in SVG units (`getBBox`: no stroke, which Chromium's client rects pad)."""
    return locator.evaluate("e => { const b = e.getBBox(); return {x: b.x, y: b.y, width: b.width, "
                            "height: b.height}; }")


def test_the_page_tells_the_truth_after_a_promotion_and_a_breach(api_server, demo_model, database_url, smtp_server,
                                                                  chromium):
    """After the first champion is promoted (the ratchet tightens its bounds) and now-tests on the regime change
    breach and mail, what a person checks on the page agrees with the registry and with itself."""
    from playwright.sync_api import expect, sync_playwright

    from ratchet.alerting import outbox
    from ratchet.evaluation.aging import retrain_plan
    from ratchet.lifecycle.promotion import promote
    from ratchet.registry import Registry
    from ratchet.specs import get_spec

    registry = Registry(database_url)
    spec = get_spec(MODEL)
    first = demo.first_champion(registry, spec)
    promote(registry, spec, version=first, reason="browser test: first champion", triggered_by="tests")
    for day in (18, 21, 24, 27, 30):
        when = dt.datetime(2025, 6, day, 6, tzinfo=dt.UTC)
        pipeline.nowtest(MODEL, end=when, airflow_run_id=f"manual__2025-06-{day}", mail=True)
        outbox.deliver_alerts(registry, {MODEL: spec})  # as each night's run delivers its own (no digest of nights)
    pipeline.aging(MODEL, end=dt.datetime(2025, 7, 1, 1, tzinfo=dt.UTC))  # the champion's aging, as the back-test
    aged = registry.aging(MODEL, first)  # measures it after a promotion
    (backtest_bound,) = [r.bound for r in registry.requirements(MODEL, "backtest") if r.metric == spec.metric]
    (nowtest_bound,) = [r.bound for r in registry.requirements(MODEL, "nowtest") if r.metric == "mape"]
    assert nowtest_bound < 0.08  # the ratchet tightened the YAML's bound
    sent = [a for a in registry.alerts(MODEL) if a.status == "sent"]
    last_failed = registry.evaluations(MODEL, "nowtest", contender=f"v{first}", metric="mape")[-1].passed is False
    assert sent and len(smtp_server.messages) == len(sent)
    mail = smtp_server.messages[0]["message"]
    assert mail["Date"] and "Next step:" in mail.get_body(("plain",)).get_content()
    registry.dispose()

    with sync_playwright() as p:
        browser, page, ratchet = _ratchet_in_airflow(p, api_server, chromium)

        # The overview: the current (ratcheted) bound with the baseline it resolves with, and alerts that agree
        # with the last now-test.
        row = ratchet.locator("#models tr", has_text=MODEL)
        verdict = row.locator(".verdict")
        assert float(verdict.get_attribute("data-bound")) == backtest_bound
        expect(verdict).to_contain_text(f"max {backtest_bound:.4g} × ")  # relative: × the baseline = its value
        expect(verdict).to_contain_text(" = ")
        expect(row.locator(".last-nowtest")).to_contain_text("FAILED" if last_failed else "passed")
        expect(row.locator(".open-alerts")).to_have_text("1 open" if last_failed else "0 open")
        expect(row.locator(".sent-alerts")).to_have_text(f"{len(sent)} sent")
        page.screenshot(path=str(SCREENSHOTS / "overview-after-breach.png"))

        ratchet.get_by_role("link", name=MODEL).click()
        status = ratchet.locator("#status")
        assert float(status.locator(".verdict").get_attribute("data-bound")) == backtest_bound
        expect(status.locator(".open-alerts")).to_have_text("1 open" if last_failed else "0 open")
        expect(status.locator(".sent-alerts")).to_have_text(f"{len(sent)} sent")
        expect(ratchet.locator("#next-step")).not_to_be_empty()
        expect(ratchet.locator("#requirements")).to_contain_text("the YAML says max 0.08")

        # The now-test chart: one line through every day, the bound line inside the plot area.
        chart = ratchet.locator("#nowtest-chart svg")
        line = chart.locator("path[data-series='champion of the day']")
        assert line.get_attribute("d").count("L") == 4  # five days joined
        plot, bound = _box(chart.locator("rect.plot")), _box(chart.locator("path[data-series='requirement']"))
        assert plot["y"] <= bound["y"] and bound["y"] + bound["height"] <= plot["y"] + plot["height"]
        assert plot["x"] <= bound["x"] and bound["x"] + bound["width"] <= plot["x"] + plot["width"]

        # How the champion ages, beside its schedule: the crossing and the cadence the registry holds, the curve
        # with its bound inside the plot.
        expect(ratchet.locator("#retrain-schedule")).to_contain_text("@daily")
        plan = retrain_plan(aged, spec.retrain.schedule)
        expect(ratchet.locator("#recommended-cadence")).to_contain_text(plan.recommended)
        expect(ratchet.locator("#crossing-age")).to_contain_text(
            f"broken at age {aged.crossing_age} month" if aged.crossing else "every requirement met at every age")
        expect(ratchet.locator("#aging tbody tr")).to_have_count(aged.max_age)
        aging_chart = ratchet.locator("#aging-chart svg")
        expect(aging_chart.locator("path[data-series='mean']")).to_have_count(1)
        if aged.crossing:
            plot = _box(aging_chart.locator("rect.plot"))
            bound = _box(aging_chart.locator("path[data-series='requirement']"))
            assert plot["y"] <= bound["y"] and bound["y"] + bound["height"] <= plot["y"] + plot["height"]

        # Versions compared over the same months, wins said against whom, here and in the report.
        expect(ratchet.locator("#versions thead")).to_contain_text("month(s) every version has")
        expect(ratchet.locator("#versions thead")).to_contain_text(f"months won vs v{first}")
        expect(ratchet.locator("#report table.summary thead")).to_contain_text("months won vs ")

        # The report is part of the page: no frame in the frame, nothing scrolls inside it, its last row shows.
        expect(ratchet.locator("iframe")).to_have_count(0)
        last_row = ratchet.locator("#report tbody tr").last
        last_row.scroll_into_view_if_needed()
        expect(last_row).to_be_visible()
        assert ratchet.locator("#report").evaluate("e => e.scrollWidth <= e.clientWidth")  # no column cut off
        frame = next(f for f in page.frames if "/ratchet/models/" in f.url)
        assert frame.evaluate(NO_NESTED_SCROLL) == []
        page.goto(f"{api_server}/ratchet/models/{MODEL}")  # the page on its own, to see all of it at once
        page.screenshot(path=str(SCREENSHOTS / "model-after-breach.png"), full_page=True)
        browser.close()
