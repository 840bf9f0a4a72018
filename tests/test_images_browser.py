"""Image cards from the built-in image catalog (fashion-mnist-2k) in a real headless Chromium.

Uses the same launch helpers and Chromium as tests/test_ui_browser.py, with the catalog-only
FakeBackend: category words in the message ("ankle boots") become constraints, so the cards
must be ankle boots and every card must show its product photo.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.server]

CHROMIUM = os.environ.get("RECAGENT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WAIT_MS = 60_000


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium) or set RECAGENT_CHROMIUM.")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def fashion():
    """The built-in image catalog (pulled from Debian's dataset-fashion-mnist on first use)."""
    from recagent.config import load_config
    from recagent.data import load_dataset

    return load_dataset(load_config(None, ()), "fashion-mnist-2k")


@pytest.fixture(scope="module")
def server(cfg, fashion):
    from fakes import FakeBackend
    from recagent.ui.serve import free_port, launch

    srv = launch(FakeBackend(fashion, k=4), cfg, port=free_port(), block=False)
    yield srv
    srv.close()


def test_built_in_image_catalog_shows_product_photos_on_cards(browser, server, fashion, tmp_path):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    page = ctx.new_page()
    page.goto(server.url)
    page.wait_for_selector("#ra-msg textarea", timeout=WAIT_MS)
    page.fill("#ra-msg textarea", "ankle boots please")
    page.click("#ra-send")
    page.wait_for_selector("#ra-slot-0 .ra-card", timeout=WAIT_MS)
    page.wait_for_function("""() => { const m = document.querySelectorAll('#ra-chat .bot');
                                      return m.length && m[m.length - 1].innerText.trim().endsWith('.'); }""",
                           timeout=WAIT_MS)
    titles = [page.locator(f"#ra-slot-{i} .ra-title").inner_text() for i in range(4)]
    by_title = dict(zip(fashion.catalog.items["title"], fashion.catalog.items["class"]))
    assert all(by_title.get(t) == "Ankle boots" for t in titles), titles
    for i in range(4):
        img = page.locator(f"#ra-slot-{i} img").first
        img.wait_for(state="visible", timeout=WAIT_MS)
        # a real 28x28 product photo (served as a thumbnail), not a text-only cover
        assert img.evaluate("(el) => el.complete && el.naturalWidth") >= 28
    shot = tmp_path / "fashion.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    ctx.close()
