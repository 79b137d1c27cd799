"""Sphinx extension: each page in its own language, with figures numbered per chapter.

The book holds a Korean and an English copy of every chapter in one Sphinx
project, whose ``language`` setting is one for all pages. This extension:

- sets ``<html lang="ko">`` on the pages under ``book/ko/`` and
  ``<html lang="en">`` on the others, so that browsers, screen readers and
  the stylesheet (``word-break: keep-all`` for Korean) treat the text right;
- numbers figures (and tables, code listings) per chapter, "5.1", "5.2", ...
  from the chapter's file name (``05_training``), instead of counting through
  the whole book;
- writes "그림"/"표"/"코드" instead of "Fig."/"Table"/"Listing" in the captions
  and figure references of the Korean pages.
"""

from __future__ import annotations

import re

KOREAN_PREFIX = "book/ko/"
CHAPTER = re.compile(r"/(\d+)_[^/]*$")
# numfig_format's words (Sphinx's defaults, as Jupyter Book leaves them) -> Korean.
KOREAN_CAPTION_WORDS = {"Fig.": "그림", "Table": "표", "Listing": "코드"}
CAPTION_NUMBER = re.compile(
    r'(<span class="(?:caption-number|std std-numref)">)(' + "|".join(map(re.escape, KOREAN_CAPTION_WORDS)) + r")(\s)"
)


def page_language(pagename: str) -> str:
    """"ko" for the Korean pages (book/ko/...), "en" for every other page."""
    return "ko" if pagename.startswith(KOREAN_PREFIX) else "en"


def chapter_number(docname: str) -> int | None:
    """The chapter number of a chapter's docname ("book/ko/05_training" -> 5), else None."""
    match = CHAPTER.search(docname)
    return int(match.group(1)) if match else None


def number_figures_per_chapter(app, env):
    """Renumber Sphinx's figure numbers within each page: (chapter, 1), (chapter, 2), ..."""
    changed = []
    for docname, by_type in env.toc_fignumbers.items():
        chapter = chapter_number(docname)
        for figtype, numbers in by_type.items():
            in_order = sorted(numbers, key=lambda figure_id: numbers[figure_id])  # Sphinx numbers in page order
            renumbered = {
                figure_id: ((chapter, rank) if chapter is not None else (rank,))
                for rank, figure_id in enumerate(in_order, start=1)
            }
            if renumbered != numbers:
                by_type[figtype] = renumbered
                changed.append(docname)
    return sorted(set(changed))


def korean_caption_words(html: str) -> str:
    """Replace "Fig. 5.1" by "그림 5.1" (and Table/Listing) in captions and figure references."""
    return CAPTION_NUMBER.sub(lambda m: m.group(1) + KOREAN_CAPTION_WORDS[m.group(2)] + m.group(3), html)


def set_page_language(app, pagename, templatename, context, doctree):
    language = page_language(pagename)
    context["language"] = language  # the theme writes <html lang="{{ language }}">
    if language == "ko" and "body" in context:
        context["body"] = korean_caption_words(context["body"])


def setup(app):
    # After Sphinx's toctree collector has assigned its numbers (priority 500).
    app.connect("env-get-updated", number_figures_per_chapter, priority=900)
    app.connect("html-page-context", set_page_language)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
