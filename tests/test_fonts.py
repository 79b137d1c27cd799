"""Hangul in matplotlib figures: the font set up by plots.setup_korean_font() has every glyph.

A missing glyph is drawn as an empty box ("tofu") and matplotlib only warns
("Glyph 54620 (\\N{HANGUL SYLLABLE HAN}) missing from font(s) DejaVu Sans").
These tests turn such warnings into errors.
"""

from __future__ import annotations

import re
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from unet_tutorial import plots  # noqa: E402

CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)
STRING_LITERAL = re.compile(r"\"[^\"\n]*\"|'[^'\n]*'")


def _figure_text_in_chapters(repo_root) -> str:
    """Every non-ASCII character in string literals of the chapters' code cells (figure labels)."""
    text = []
    for chapter in sorted((repo_root / "book").glob("*/*.md")):
        for cell in CODE_CELL.findall(chapter.read_text(encoding="utf-8")):
            text += STRING_LITERAL.findall(cell)
    return "".join(ch for ch in "".join(text) if ord(ch) > 127)


def _draw_korean_figure(text: str):
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(np.linspace(-3, 3, 7), np.linspace(-2, 2, 7))  # negative tick labels
    ax.set_title(f"의미론적 분할 (semantic segmentation) {text}")
    ax.set_xlabel("밝기 (grey value)")
    ax.set_ylabel("세포막 비율")
    ax.legend(["사람 (person)"])
    fig.canvas.draw()  # glyphs are looked up here; a missing one warns
    plt.close(fig)


@pytest.fixture
def rc_restored():
    with matplotlib.rc_context():
        yield


def test_korean_figure_draws_without_glyph_warnings(rc_restored, repo_root):
    family = plots.setup_korean_font()
    assert matplotlib.rcParams["font.family"][0] == family
    assert matplotlib.rcParams["axes.unicode_minus"] is False  # NanumGothic has no U+2212
    chapter_text = _figure_text_in_chapters(repo_root)
    assert re.search("[\uac00-\ud7a3]", chapter_text), "expected Hangul labels in the chapters' figures"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font(s)" becomes an exception
        _draw_korean_figure(chapter_text)


def test_chosen_font_has_every_glyph_the_book_draws(rc_restored, repo_root):
    family = plots.setup_korean_font()
    chapter_text = _figure_text_in_chapters(repo_root)
    missing = plots.font_has_glyphs(chapter_text + "의미론적 분할 세포막 밝기", family)
    assert missing == [], f"{family} has no glyph for {missing!r} used in figure text"


def test_glyph_check_detects_a_missing_glyph(rc_restored):
    family = plots.setup_korean_font()
    if family != "NanumGothic":
        pytest.skip(f"the known gap (U+2212) is a NanumGothic fact; the font here is {family}")
    assert plots.font_has_glyphs("\u2212", family) == ["\u2212"]
    assert plots.font_has_glyphs("한글 abc 123", family) == []


def test_falls_back_to_an_installed_nanum_font_without_koreanize(rc_restored, monkeypatch):
    # A None entry in sys.modules makes `import koreanize_matplotlib` raise ImportError.
    monkeypatch.setitem(sys.modules, "koreanize_matplotlib", None)
    installed = {entry.name for entry in matplotlib.font_manager.fontManager.ttflist}
    if not installed.intersection(plots._KOREAN_FONTS):
        with pytest.raises(RuntimeError, match="koreanize-matplotlib"):
            plots.setup_korean_font()
        return
    family = plots.setup_korean_font()
    assert family in installed
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _draw_korean_figure("한국어 라벨")
