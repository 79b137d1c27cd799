"""What the browser tests share: serve the built book on 127.0.0.1 and visit its pages in headless Chromium.

Debian's ``/usr/bin/chromium`` is driven through playwright's Python package
(``executable_path``; no ``playwright install``). Every request a page makes is
routed through a handler that records its host and refuses anything that is
not 127.0.0.1. The fixtures that use these (``html_dir``, ``site``,
``browser``) are in conftest.py.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import threading
import urllib.parse

import pytest

CHROMIUM = os.environ.get("UNET_TUTORIAL_CHROMIUM", "/usr/bin/chromium")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def serve(directory):
    """Serve ``directory`` on 127.0.0.1 (a free port); yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium():
    """Headless Debian Chromium through playwright; fails (not skips) when Chromium is missing."""
    if not os.path.exists(CHROMIUM) and not shutil.which("chromium"):
        pytest.fail(f"Chromium not found at {CHROMIUM}; install Debian's chromium (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


class Visit:
    """One page in a fresh context that records errors and the hosts of all requests.

    Args:
        browser: from the ``browser`` fixture.
        viewport: (width, height) in CSS pixels.
        timeout_ms: playwright's default timeout for this page.
        failed_responses: also record every HTTP response of status 400 or more as an error.
    """

    def __init__(self, browser, viewport=(1280, 900), timeout_ms: int = 15_000, failed_responses: bool = False):
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.hosts, self.errors = set(), []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.set_default_timeout(timeout_ms)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))
        self.page.on("console", lambda msg: msg.type == "error" and self.errors.append(f"console: {msg.text}"))
        if failed_responses:
            self.page.on("response", lambda r: r.status >= 400 and self.errors.append(f"HTTP {r.status}: {r.url}"))

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
