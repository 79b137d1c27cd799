"""Shared pytest fixtures.

Real data is never copied into the project: integration tests read the datasets
from ``../shared/data`` beside the checkout (or from ``$UNET_TUTORIAL_DATA``).
"""

from __future__ import annotations

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# Quiet TensorFlow's C++ start-up messages in test logs.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _shared_data_dir() -> pathlib.Path:
    configured = os.environ.get("UNET_TUTORIAL_DATA")
    return pathlib.Path(configured) if configured else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    """The folder laid out like ../shared/data; fails (not skips) when it is missing."""
    path = _shared_data_dir()
    if not (path / "isbi2012").is_dir():
        pytest.fail(
            f"Real data not found at {path}. Put the shared data folder beside the "
            "checkout (../shared/data) or set UNET_TUTORIAL_DATA to a folder laid out like it."
        )
    return path


# ----------------------------------------------------------------------------- the built book
@pytest.fixture(scope="session")
def built_book(shared_data) -> pathlib.Path:
    """The book's HTML, built once per session (tests/test_book.py's build_book) for every test module that reads it."""
    from test_book import HTML, build_book

    build_book(str(shared_data.resolve()))  # absolute: chapters run in their own folders
    return HTML


# ----------------------------------------------------------------------------- the browser tests (tests/browser_pages.py)
@pytest.fixture(scope="module")
def html_dir(request) -> pathlib.Path:
    """The built book: ``$UNET_TUTORIAL_HTML`` if set (an existing build), else built once (tests/test_book.py)."""
    if os.environ.get("UNET_TUTORIAL_HTML"):
        return pathlib.Path(os.environ["UNET_TUTORIAL_HTML"])
    return request.getfixturevalue("built_book")


@pytest.fixture(scope="module")
def site(html_dir):
    """Base URL of the built book, served on 127.0.0.1."""
    from browser_pages import serve

    with serve(html_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's, through playwright)."""
    from browser_pages import chromium

    with chromium() as launched:
        yield launched
