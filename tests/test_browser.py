"""Open the built book in headless Chromium: it loads, shows its figures, and stays local.

Debian's ``/usr/bin/chromium`` is driven through playwright's Python package
(``executable_path``; no ``playwright install``). The site is served from
``_build/html`` on 127.0.0.1; every request the pages make is routed through a
handler that records its host and refuses anything that is not 127.0.0.1.
"""

from __future__ import annotations

import functools
import http.server
import os
import pathlib
import shutil
import threading
import urllib.parse

import pytest

from test_book import HTML, LANGUAGE_LINK, build_book, pages

pytestmark = [pytest.mark.browser, pytest.mark.book, pytest.mark.slow]

CHROMIUM = os.environ.get("UNET_TUTORIAL_CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = "/tmp/ko_plot.png"  # a Korean page with a plot, for a person to look at
KO_CHAPTER, EN_CHAPTER = "book/ko/01_segmentation.html", "book/en/01_segmentation.html"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site(shared_data):
    """Base URL of the built book, served on 127.0.0.1."""
    build_book(str(shared_data.resolve()))
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


class Visit:
    """One page in a fresh context that records errors and the hosts of all requests."""

    def __init__(self, browser):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.hosts, self.errors = set(), []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))

    def _route(self, route):
        host = urllib.parse.urlsplit(route.request.url).hostname
        self.hosts.add(host)
        if host == "127.0.0.1":
            route.continue_()
        else:
            route.abort()

    def open(self, url):
        self.page.goto(url, wait_until="networkidle")
        return self.page

    def images_loaded(self) -> list[str]:
        """Scroll every image into view, wait for it, and return those that did not load."""
        page = self.page
        for image in page.query_selector_all("img"):
            if image.is_visible():
                image.scroll_into_view_if_needed()
        # Wait for the images themselves, not for "networkidle": after the widget pages
        # load their fonts, playwright's networkidle sometimes never comes back, with
        # no request left open (seen with playwright 1.65 and routed requests).
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=10_000)
        return page.evaluate(
            "Array.from(document.images).filter(i => i.checkVisibility() && i.naturalWidth === 0).map(i => i.src)"
        )

    def close(self):
        self.context.close()


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
