"""Open the built book in headless Chromium: it loads, shows its figures, and stays local.

Debian's ``/usr/bin/chromium`` is driven through playwright's Python package
(``executable_path``; no ``playwright install``). The site is served from
``_build/html`` on 127.0.0.1; every request the pages make is routed through a
handler that records its host and refuses anything that is not 127.0.0.1.
The server, the browser and ``Visit`` are shared with test_widgets_browser.py
(conftest.py, browser_pages.py); set ``UNET_TUTORIAL_HTML=/path/to/_build/html`` to test an
existing build instead of building the book.
"""

from __future__ import annotations

import pathlib

import pytest

from browser_pages import Visit
from test_book import LANGUAGE_LINK, pages

pytestmark = [pytest.mark.browser, pytest.mark.book, pytest.mark.slow]

SCREENSHOT = "/tmp/ko_plot.png"  # a Korean page with a plot, for a person to look at
KO_CHAPTER, EN_CHAPTER = "book/ko/01_segmentation.html", "book/en/01_segmentation.html"


@pytest.fixture
def visit(browser):
    visits = []

    def make():
        visits.append(Visit(browser))
        return visits[-1]

    yield make
    for v in visits:
        v.close()


def test_landing_page_offers_both_languages(site, visit):
    v = visit()
    page = v.open(site)  # index.html redirects to book/index.html
    page.wait_for_url("**/book/index.html")
    assert "U-Net" in page.title()
    links = page.eval_on_selector_all("a", "els => els.map(a => a.getAttribute('href'))")
    assert any(href and href.startswith("ko/01_segmentation") for href in links), links
    assert any(href and href.startswith("en/01_segmentation") for href in links), links
    page.locator(".sd-card", has_text="한국어로 읽기").click()  # the whole card is the link
    page.wait_for_url("**/book/ko/01_segmentation.html")
    assert v.images_loaded() == []
    assert v.errors == []
    assert v.hosts == {"127.0.0.1"}


@pytest.mark.parametrize(
    "path, link_text, counterpart",
    [(KO_CHAPTER, "English version", EN_CHAPTER), (EN_CHAPTER, "한국어판", KO_CHAPTER)],
)
def test_chapter_loads_shows_figures_and_links_to_its_counterpart(site, visit, path, link_text, counterpart):
    v = visit()
    page = v.open(site + path)
    figures = page.query_selector_all("figure img")
    assert len(figures) >= 3, f"expected the chapter's figures, found {len(figures)}"
    assert v.images_loaded() == []
    widths = [img.evaluate("i => i.naturalWidth") for img in figures]
    assert min(widths) > 0
    colab = page.eval_on_selector_all("a[href*='colab.research.google.com']", "els => els.map(a => a.href)")
    assert any(href.endswith(path.replace(".html", ".ipynb")) for href in colab), colab
    if path == KO_CHAPTER:
        figure = page.query_selector("figure")
        figure.scroll_into_view_if_needed()
        figure.screenshot(path=SCREENSHOT)
    page.get_by_role("link", name=link_text).first.click()
    page.wait_for_load_state("networkidle")
    assert page.url == site + counterpart
    assert v.errors == []
    assert v.hosts == {"127.0.0.1"}, f"requests left the machine: {sorted(v.hosts - {'127.0.0.1'})}"


EVERY_PAGE = [f"book/{language}/{page.stem}.html" for language in LANGUAGE_LINK for page in pages(language)]


@pytest.mark.parametrize("path", EVERY_PAGE)
def test_every_page_loads_its_images_with_no_error_and_stays_local(site, visit, path):
    language = path.split("/")[1]
    link_text, other = LANGUAGE_LINK[language]
    v = visit()
    page = v.open(site + path)
    assert page.locator("h1").first.inner_text().strip(), f"{path} has no title"
    assert v.images_loaded() == []
    counterpart = page.get_by_role("link", name=link_text).first.get_attribute("href")
    assert counterpart.startswith(f"../{other}/{pathlib.PurePosixPath(path).stem}.html"), counterpart
    assert v.errors == []
    assert v.hosts == {"127.0.0.1"}, f"requests left the machine: {sorted(v.hosts - {'127.0.0.1'})}"
