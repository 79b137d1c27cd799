"""Sphinx extension: drop repeated <script> entries from the pages.

sphinx-thebe 0.3.1 (pulled in by Jupyter Book 1.x) registers its inline
configuration script each time Sphinx reads documents, so pages of a book whose
environment is read more than once carry ``const THEBE_JS_URL = ...`` twice,
and the browser reports "Identifier 'THEBE_JS_URL' has already been declared".
Keeping only the first copy of each identical script fixes that without
changing anything else.
"""

from __future__ import annotations


def _unique_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        # Inline scripts come with filename None or "" depending on who added them.
        filename = getattr(script, "filename", script) or ""
        attributes = getattr(script, "attributes", None) or {}
        key = (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def setup(app):
    # Run after the theme and the other extensions have added their scripts.
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
