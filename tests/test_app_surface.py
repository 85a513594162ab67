"""The whole surface of the app in a real browser: every shipped run on every page, opened through
its deep link, and every tour step's *Show me* on the default run. Each must render with no
exception element and its main picture present (and, for a tour step with a section, that
section in view). Needs Debian's Chromium (skipped without it, like tests/test_app_browser.py).
"""
from __future__ import annotations

import pytest
from test_app_browser import browser, server  # noqa: F401  (fixtures)

from spg_app.testing import CHROMIUM, settle
from spg_core.runs import shipped_runs

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.is_file(), reason="no Chromium at /usr/bin/chromium")]

# page → (URL path, the selector of its main picture). The explore page is the app's default: "/".
PAGES = {
    "explore": ("", 'iframe[title="spg_app.pipeline_view.pipeline_view"]'),
    "dataset": ("dataset", '[data-testid="stPlotlyChart"]'),
    "triage": ("triage", 'img[alt^="triage "]'),
    "training": ("training", 'img[alt="Attention map (A4)"]'),
}
EXCEPTION = '[data-testid="stException"]'
TIMEOUT_MS = 240_000


def render(page, url: str, selector: str) -> None:
    page.goto(url)
    page.locator(selector).first.wait_for(timeout=TIMEOUT_MS)
    settle(page)
    exceptions = page.locator(EXCEPTION)
    assert exceptions.count() == 0, f"{url}: {exceptions.first.inner_text()[:400]}"


@pytest.mark.parametrize("run", shipped_runs())
def test_every_page_of_every_shipped_run_opens_by_its_link(server, browser, run):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        for name, (path, selector) in PAGES.items():
            render(page, f"{server}/{path}?run={run}", selector)
            assert f"run={run}" in page.url, f"{name}: the URL lost the run: {page.url}"
    finally:
        page.close()


def test_every_tour_step_shows_its_page(server, browser):  # noqa: F811
    from spg_app.tour import TOUR

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        render(page, server, PAGES["explore"][1])
        page.get_by_text("Tour of the app").click()
        for number, step in enumerate(TOUR):
            show = page.get_by_role("button", name="Show me")
            show.wait_for(timeout=30_000)
            fits = show.evaluate("b => [...b.querySelectorAll('*')].every(e => e.scrollWidth <= e.clientWidth + 1)")
            assert fits, "the button's label is cut"
            show.click()
            page.locator(PAGES[step.page][1]).first.wait_for(timeout=TIMEOUT_MS)
            settle(page)
            assert page.locator(EXCEPTION).count() == 0, f"tour step {number + 1}: {page.locator(EXCEPTION).first.inner_text()[:400]}"
            if step.section:
                target = page.locator(f"#spg-scroll-{step.section}")
                target.wait_for(state="attached", timeout=60_000)
                page.wait_for_timeout(2500)  # the scroll is retried while the section's elements arrive
                top = target.evaluate("e => e.getBoundingClientRect().top")
                assert -10 <= top < 900, f"tour step {number + 1}: its section is at {top:.0f} px, not in view"
            if number < len(TOUR) - 1:
                page.get_by_role("button", name="▶").first.click()
                page.get_by_text(f"{number + 2}. {TOUR[number + 1].title}").wait_for(timeout=30_000)
    finally:
        page.close()


def test_a_bad_link_value_is_one_line(server, browser):  # noqa: F811
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        render(page, f"{server}/training?run=no-such-run&tau=7&mask_a=0.9-0.1", '[data-testid="stAlert"]')
        alerts = page.locator('[data-testid="stAlert"] [data-testid="stMarkdownContainer"]').all_inner_texts()
        for name in ("run=", "tau=", "mask_a="):
            assert any(name in text and "\n" not in text.strip() for text in alerts), (name, alerts)
    finally:
        page.close()
