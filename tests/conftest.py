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
