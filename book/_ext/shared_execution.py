"""Sphinx extension: a chapter runs once per build, not once per language.

The Korean and English pages of a chapter run the same code (tests/test_book.py
checks it); only the figure captions and names in their cells' ``mystnb``
metadata differ. myst-nb's execution cache (jupyter-cache) hashes a notebook's
code cells *with all their metadata* and, on a match, takes the cached cells
whole, metadata included, so today the two languages never share a run.

This extension changes the two defaults that decide it (myst-nb passes none of
its own; see the "TODO config on what notebook/cell metadata to hash/merge" in
``myst_nb/core/execute/cache.py``):

* the hash keeps only the cells' ``tags`` (a tag such as ``raises-exception``
  changes how a cell runs; a caption does not), so the second language finds
  the first one's run in the cache;
* a match keeps the page's own cell metadata and takes only the outputs, so the
  English page keeps its English captions.

The outputs are the same for both languages because the code is the same.
"""

from __future__ import annotations

import functools

from jupyter_cache.cache.main import JupyterCacheBase

HASHED_CELL_METADATA = ("tags",)


def _with_default(method, **defaults):
    @functools.wraps(method)
    def wrapper(self, nb, *args, **kwargs):
        if not args:  # the caller left the metadata choices to the defaults
            kwargs = {**defaults, **kwargs}
        return method(self, nb, *args, **kwargs)

    wrapper.shared_execution = True
    return wrapper


def setup(app):
    if not getattr(JupyterCacheBase.create_hashed_notebook, "shared_execution", False):
        JupyterCacheBase.create_hashed_notebook = _with_default(
            JupyterCacheBase.create_hashed_notebook, cell_metadata=HASHED_CELL_METADATA)
        JupyterCacheBase.merge_match_into_notebook = _with_default(
            JupyterCacheBase.merge_match_into_notebook, cell_meta=())
    return {"parallel_read_safe": True, "parallel_write_safe": True}
