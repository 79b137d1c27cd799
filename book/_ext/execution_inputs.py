"""Sphinx extension: a chapter runs again when the files it reads change.

myst-nb's execution cache (jupyter-cache) keys a chapter on its code cells
only. The chapters also read files that are not in their code: the package
``unet_tutorial`` that they import and the recorded runs in ``book/artifacts``.
Without this extension a rebuild in a checkout that already has ``_build/``
keeps the old outputs after either changes (new artifacts, a fixed metric),
and the pages print stale numbers.

This extension adds one digest of those files to every chapter's cache key,
so a change to any of them runs the chapters again; a build where nothing
changed still takes every chapter from the cache.
"""

from __future__ import annotations

import functools
import hashlib
import pathlib

from jupyter_cache.cache.main import JupyterCacheBase

# The files the chapters read besides their own code, relative to the book's root.
INPUT_PATTERNS = ("unet_tutorial/**/*.py", "book/artifacts/**/*")


def inputs_digest(root) -> str:
    """sha256 over the names and contents of the files in INPUT_PATTERNS under ``root``."""
    root = pathlib.Path(root)
    files = sorted({path for pattern in INPUT_PATTERNS for path in root.glob(pattern) if path.is_file()})
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _keyed_on(method, digest):
    @functools.wraps(method)
    def wrapper(self, nb, *args, **kwargs):
        nb, key = method(self, nb, *args, **kwargs)
        return nb, hashlib.md5(f"{key}:{digest}".encode()).hexdigest()

    wrapper.unkeyed = getattr(method, "unkeyed", method)
    return wrapper


def key_cache_on_inputs(root) -> str:
    """Make every cache key depend on the files under ``root``; returns their digest."""
    digest = inputs_digest(root)
    method = JupyterCacheBase.create_hashed_notebook
    JupyterCacheBase.create_hashed_notebook = _keyed_on(getattr(method, "unkeyed", method), digest)
    return digest


def setup(app):
    # After shared_execution (listed before it in _config.yml), which sets how the code cells are hashed.
    app.connect("builder-inited", lambda app: key_cache_on_inputs(app.srcdir))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
