"""Chromium signed in to a real Airflow api-server, with the Ratchet page opened from the navigation."""
from __future__ import annotations

from pathlib import Path

from conftest import PASSWORD, USER

SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"  # the docs show what the tests saw


def ratchet_in_airflow(playwright, api_server: str, chromium: str):
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
