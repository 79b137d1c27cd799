"""Chapter 9's widgets work in the static HTML book, with no kernel, in headless Chromium.

The built chapter is served from ``_build/html`` on 127.0.0.1 and opened with
Debian's ``/usr/bin/chromium`` through playwright's Python package
(``executable_path``; no ``playwright install``). The test finds the rendered
widgets, moves the slice slider of the stack browser and the threshold slider
of the threshold explorer with the keyboard, and checks that the pictures shown
change (their image sources and their pixels), with no JavaScript error, no
failed request, and no request to any host but the local server.

Set ``UNET_TUTORIAL_HTML=/path/to/_build/html`` to test an existing build
instead of building the book (``UNET_TUTORIAL_BOOK_BUILT=1`` reuses a fresh one).
"""

from __future__ import annotations

import json
import re

import pytest

from browser_pages import Visit

pytestmark = [pytest.mark.browser, pytest.mark.book, pytest.mark.slow]

SCREENSHOT = "/tmp/widgets_after.png"  # the stack browser after the slider moved, for a person to look at
CHAPTERS = {"ko": "book/ko/09_widgets.html", "en": "book/en/09_widgets.html"}
MAX_PAGE_BYTES = 5_000_000  # the embedded pictures must keep a page at a few MB


# JavaScript helpers: the visible pictures and the readout of the n-th slider labelled `label`.
_VISIBLE_IMAGES = """
([label, n]) => {
  const sliders = [...document.querySelectorAll('.widget-slider')].filter(
      s => (s.querySelector('.widget-label') || {}).textContent === label);
  const root = sliders[n].closest('.cell_output') || sliders[n].parentElement.parentElement.parentElement;
  return [...root.querySelectorAll('img')]
      .filter(img => img.offsetParent !== null && img.getBoundingClientRect().width > 0)
      .map(img => img.src);
}
"""
_READOUT = """
([label, n]) => {
  const sliders = [...document.querySelectorAll('.widget-slider')].filter(
      s => (s.querySelector('.widget-label') || {}).textContent === label);
  return sliders[n].querySelector('.widget-readout').textContent;
}
"""


def _slider_handle(page, label: str, n: int = 0):
    slider = page.locator(".widget-slider").filter(has=page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$")))
    return slider.nth(n).locator(".noUi-handle")


def _output_of(page, label: str, n: int = 0):
    slider = page.locator(".widget-slider").filter(has=page.locator(".widget-label", has_text=re.compile(f"^{re.escape(label)}$")))
    return slider.nth(n).locator("xpath=ancestor::div[contains(@class, 'cell_output')][1]")


def _move(page, label: str, key: str, n: int = 0, presses: int = 1) -> None:
    handle = _slider_handle(page, label, n)
    handle.scroll_into_view_if_needed()
    handle.focus()
    for _ in range(presses):
        page.keyboard.press(key)
    page.wait_for_timeout(300)


@pytest.mark.parametrize("language", ["ko", "en"])
def test_chapter9_widgets_work_without_a_kernel(browser, site, html_dir, language):
    path = html_dir / CHAPTERS[language]
    assert path.is_file(), f"{path} was not built; is book/{language}/09_widgets in _toc.yml?"
    html = path.read_text(encoding="utf-8")
    # The widget JavaScript comes from the book itself, and the embedded state stays small.
    assert re.search(r'<script[^>]+src="[./]*_static/widgets/embed\.js', html), "embed.js is not loaded from _static/widgets"
    remote_scripts = re.findall(r'<script[^>]+src="((?:https?:)?//[^"]+)"', html)
    assert remote_scripts == [], f"scripts loaded from other hosts: {remote_scripts}"
    state = re.search(r'<script type="application/vnd\.jupyter\.widget-state\+json">(.*?)</script>', html, re.S)
    assert state, "no embedded widget state: were the widgets executed in the build?"
    models = json.loads(state.group(1))["state"]
    assert sum(m["model_name"] == "LinkModel" for m in models.values()) >= 5  # the jslinks are embedded
    assert path.stat().st_size < MAX_PAGE_BYTES, f"{path} is {path.stat().st_size / 1e6:.1f} MB"

    visit = Visit(browser, viewport=(1400, 1000), timeout_ms=20_000, failed_responses=True)
    page = visit.page
    try:
        page.goto(site + CHAPTERS[language], wait_until="networkidle")
        page.wait_for_selector(".widget-slider .noUi-handle")
        page.wait_for_timeout(500)
        assert "Click to show javascript error" not in page.inner_text("body")  # html-manager's placeholder
        assert page.locator(".widget-slider").count() >= 7  # slice, opacity, threshold, w0, σ, σ, seed
        assert page.locator(".widget-image").count() >= 11  # a Stack renders only its selected view: 4+3+1+2+1

        # Stack browser: the slice slider switches image, truth, prediction and overlay.
        before = page.evaluate(_VISIBLE_IMAGES, ["slice", 0])
        assert len(before) == 4, f"expected 4 visible panels in the stack browser, got {len(before)}"
        panels = _output_of(page, "slice")
        pixels_before = panels.screenshot()
        readout = page.evaluate(_READOUT, ["slice", 0])
        _move(page, "slice", "ArrowRight")
        after = page.evaluate(_VISIBLE_IMAGES, ["slice", 0])
        assert page.evaluate(_READOUT, ["slice", 0]) != readout
        assert len(after) == 4 and all(a != b for a, b in zip(before, after)), "the slice slider did not change the panels"
        assert panels.screenshot() != pixels_before
        if language == "ko":
            page.evaluate("(y) => window.scrollBy(0, y)", panels.bounding_box()["y"] - 150)
            page.screenshot(path=SCREENSHOT)
        # The opacity slider changes only the error overlay.
        _move(page, "opacity", "ArrowLeft", presses=2)
        faded = page.evaluate(_VISIBLE_IMAGES, ["slice", 0])
        assert faded[:3] == after[:3] and faded[3] != after[3]

        # Threshold explorer: the binary map, the overlay and the marked curve change.
        before = page.evaluate(_VISIBLE_IMAGES, ["threshold", 0])
        assert len(before) == 3
        explorer = _output_of(page, "threshold")
        pixels_before = explorer.screenshot()
        _move(page, "threshold", "ArrowLeft", presses=2)
        after = page.evaluate(_VISIBLE_IMAGES, ["threshold", 0])
        assert len(after) == 3 and all(a != b for a, b in zip(before, after)), "the threshold slider changed nothing"
        assert explorer.screenshot() != pixels_before

        # Weight map: moving w0 changes the map.
        before = page.evaluate(_VISIBLE_IMAGES, ["w0", 0])
        _move(page, "w0", "ArrowLeft", presses=2)
        assert page.evaluate(_VISIBLE_IMAGES, ["w0", 0]) != before

        assert visit.errors == [], visit.errors
        assert visit.hosts == {"127.0.0.1"}, f"requests left the machine: {sorted(map(str, visit.hosts))}"
    finally:
        visit.close()
