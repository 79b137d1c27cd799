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


# ---------------------------------------------------------------------------
# Equations: typeset by the book's own MathJax (book/_static/mathjax/, scripts/vendor_mathjax.sh).

EQUATION_CHAPTERS = ["02_unet_idea", "04_building_unet", "05_training", "06_evaluation", "08_cell_tracking"]


def typeset_equations(v, path) -> dict:
    """Open ``path``, wait for MathJax, and describe what it typeset."""
    page = v.open(path)
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15_000)
    page.evaluate("MathJax.startup.promise")
    return page.evaluate("""() => {
        const sources = Array.from(document.querySelectorAll('.math'));
        const sized = c => { const r = c.getBoundingClientRect(); return r.width > 0 && r.height > 0; };
        return {
            sources: sources.length,
            typeset: sources.filter(s => { const c = s.querySelector('mjx-container'); return c && sized(c); }).length,
            display: document.querySelectorAll('mjx-container[display="true"]').length,
            errors: document.querySelectorAll('mjx-merror').length,
            tex: MathJax.startup.document.getMathItemsWithin(document.body).map(item => item.math),
        };
    }""")


@pytest.mark.parametrize("language", ["ko", "en"])
def test_chapter_5_equations_are_typeset_locally(site, browser, language):
    v = Visit(browser, failed_responses=True)  # a missing font or extension file is an HTTP 404
    try:
        found = typeset_equations(v, site + f"book/{language}/05_training.html")
        assert found["sources"] >= 3 and found["display"] >= 3, found
        assert found["typeset"] == found["sources"], f"not typeset (or without size): {found}"
        assert found["errors"] == 0
        tags = [tex for tex in found["tex"] if "\\tag" in tex]
        assert any("\\tag{1}" in tex and "\\log" in tex for tex in tags), "the paper's Eq. 1"
        assert any("\\tag{2}" in tex and "d_1" in tex for tex in tags), "the paper's Eq. 2"
        assert v.errors == []
        assert v.hosts == {"127.0.0.1"}, f"requests left the machine: {sorted(v.hosts - {'127.0.0.1'})}"
    finally:
        v.close()


@pytest.mark.parametrize("path", [f"book/{language}/{chapter}.html" for chapter in EQUATION_CHAPTERS for language in ("ko", "en")])
def test_every_equation_chapter_typesets_all_its_math(site, visit, path):
    v = visit()
    found = typeset_equations(v, site + path)
    assert found["sources"] >= 1, f"{path} has no equation"
    assert found["typeset"] == found["sources"] and found["errors"] == 0, found
    assert v.errors == []
    assert v.hosts == {"127.0.0.1"}


# ---------------------------------------------------------------------------
# Search: one box for both languages; Korean words are found with any particle or ending
# (book/_ext/korean_search.py).

SEARCHES = ["가중치", "모델", "네트워크", "학습", "분할", "weight map"]
NOWHERE = ["고양이", "zebrafish"]


def pages_by_grep(query: str, html_dir: pathlib.Path) -> set[str]:
    """Built pages (docnames) whose source holds ``query``, ignoring case.

    Only pages of the build under test count (test_book checks that every page of _toc.yml is built).
    """
    from test_book import toc_files

    found = set()
    for name in toc_files():
        if not (html_dir / f"{name}.html").is_file():
            continue
        text = (pathlib.Path(__file__).resolve().parents[1] / f"{name}.md").read_text(encoding="utf-8").lower()
        if query.lower() in text:
            found.add(name)
    return found


def search(v, site, query) -> set[str]:
    """The pages (docnames) the book's search page lists for ``query``."""
    import urllib.parse

    page = v.open(site + "search.html?q=" + urllib.parse.quote(query))
    page.wait_for_function("document.querySelector('#search-results p.search-summary')?.innerText.length > 0", timeout=30_000)
    links = page.eval_on_selector_all("#search-results ul.search li > a", "els => els.map(a => a.getAttribute('href'))")
    return {link.split("#")[0].removesuffix(".html") for link in links}


@pytest.mark.parametrize("query", SEARCHES)
def test_search_finds_every_page_that_holds_the_word(site, visit, html_dir, query):
    v = visit()
    found = search(v, site, query)
    expected = pages_by_grep(query, html_dir)
    print(f"search {query!r}: {len(found)} pages found, {len(expected)} by grep")
    assert expected, f"{query!r} should occur in the sources"
    assert expected <= found, f"{query!r}: missed {sorted(expected - found)}"
    assert v.errors == []
    assert v.hosts == {"127.0.0.1"}


@pytest.mark.parametrize("query", NOWHERE)
def test_search_for_a_word_that_occurs_nowhere_finds_nothing(site, visit, html_dir, query):
    assert pages_by_grep(query, html_dir) == set()
    v = visit()
    assert search(v, site, query) == set()
    summary = v.page.inner_text("#search-results p.search-summary")
    assert "페이지가 없습니다" in summary and "No page matches" in summary  # the message in both languages
    assert v.errors == []
