"""The Jupyter Book: Korean/English parity, Colab copies, and the build itself.

The fast tests read the chapter sources only. The build test (markers book and
slow) runs the README's build command once per session; with
UNET_TUTORIAL_BOOK_BUILT=1 it reuses an up-to-date ``_build/html`` (CI builds
the book right before the tests).
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = REPO_ROOT / "book"
HTML = REPO_ROOT / "_build" / "html"
BUILD_COMMAND = ["jupyter-book", "build", "--all", "-W", "-n", "--keep-going", "."]
LANGUAGE_LINK = {"ko": ("English version", "en"), "en": ("한국어판", "ko")}

CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)
CELL_OPTIONS = re.compile(r"\A(---\n.*?\n---\n|(:[\w-]+:[^\n]*\n)+)", re.S)


def code_cells(markdown_path: pathlib.Path) -> list[str]:
    """Sources of the ```{code-cell} blocks of a MyST notebook, without their option header."""
    cells = CODE_CELL.findall(markdown_path.read_text(encoding="utf-8"))
    return [CELL_OPTIONS.sub("", cell, count=1).strip("\n") for cell in cells]


def toc_files() -> list[str]:
    """Every page of the book (only_build_toc_files: pages not listed are not built)."""
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part.get("chapters", [])]
    return files


def pages(language: str) -> list[pathlib.Path]:
    """Every page of one language listed in _toc.yml (chapters, glossary, references)."""
    listed = [REPO_ROOT / f"{name}.md" for name in toc_files() if name.startswith(f"book/{language}/")]
    return sorted(p for p in listed if p.is_file())


def chapters(language: str) -> list[pathlib.Path]:
    """The notebook pages (files with a jupytext header) of one language listed in _toc.yml."""
    return [p for p in pages(language) if p.read_text(encoding="utf-8").startswith("---\njupytext:")]


def test_every_page_in_the_toc_exists():
    missing = [name for name in toc_files() if not any((REPO_ROOT / f"{name}{ext}").is_file() for ext in (".md", ".ipynb"))]
    assert missing == []


def test_every_korean_chapter_has_an_english_counterpart_with_the_same_code():
    korean = {p.name: p for p in chapters("ko")}
    english = {p.name: p for p in chapters("en")}
    assert len(korean) >= 4, f"expected at least chapters 1-4 in book/ko, found {sorted(korean)}"
    assert korean.keys() == english.keys(), (
        f"only in ko: {sorted(korean.keys() - english.keys())}, only in en: {sorted(english.keys() - korean.keys())}"
    )
    for name in korean:
        ko_cells, en_cells = code_cells(korean[name]), code_cells(english[name])
        assert ko_cells, f"{name} has no code cells"
        assert len(ko_cells) == len(en_cells), f"{name}: {len(ko_cells)} code cells in ko, {len(en_cells)} in en"
        for index, (ko_cell, en_cell) in enumerate(zip(ko_cells, en_cells)):
            assert ko_cell == en_cell, f"{name}: code cell {index} differs between ko and en"


def test_parity_check_sees_a_changed_cell(tmp_path):
    source = chapters("ko")[0]
    changed = tmp_path / source.name
    changed.write_text(source.read_text(encoding="utf-8").replace("import numpy as np", "import numpy", 1), encoding="utf-8")
    assert code_cells(changed) != code_cells(source)


def test_every_page_links_to_its_counterpart():
    for language, (link_text, other) in LANGUAGE_LINK.items():
        assert [p.name for p in pages(language)] == [p.name for p in pages(other)], "ko and en list different pages"
        for chapter in pages(language):
            text = chapter.read_text(encoding="utf-8")
            assert f"[{link_text}](../{other}/{chapter.name})" in text, (
                f"{chapter} must link to its counterpart near the top: [{link_text}](../{other}/{chapter.name})"
            )


def test_chapters_have_the_common_skeleton():
    headings = {"ko": ("학습 목표", "## 요약", "## 연습문제", "## 참고문헌"), "en": ("Learning goals", "## Summary", "## Exercises", "## References")}
    for language, required in headings.items():
        for chapter in chapters(language):
            text = chapter.read_text(encoding="utf-8")
            positions = [text.find(heading) for heading in required]
            assert -1 not in positions, f"{chapter} lacks {[h for h, p in zip(required, positions) if p < 0]}"
            assert positions == sorted(positions), f"{chapter}: sections out of order {required}"
            assert text.count("{dropdown}") >= 2, f"{chapter}: exercises need answers in dropdowns"


def test_first_cell_installs_the_package_from_the_configured_repository_only_on_colab():
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))
    repository = config["repository"]["url"].rstrip("/")
    for language in LANGUAGE_LINK:
        for chapter in chapters(language):
            first = code_cells(chapter)[0]
            assert 'if "google.colab" in sys.modules' in first, f"{chapter}: first cell must install on Colab only"
            urls = re.findall(r"https://github\.com/[^\"'\s]+", first)
            assert urls == [repository], f"{chapter}: install URL {urls} differs from _config.yml repository.url {repository}"
            assert "git+" in first and "pip" in first, f"{chapter}: first cell must pip install from git"
            assert not re.search(r"tensorflow[<>=~]", first), f"{chapter}: do not pin TensorFlow (Colab keeps its own)"


def test_colab_copies_match_their_chapters():
    """Colab opens book/<lang>/<chapter>.ipynb; it must hold the chapter's code cells."""
    for language in LANGUAGE_LINK:
        for chapter in chapters(language):
            notebook_path = chapter.with_suffix(".ipynb")
            refresh = f"run: jupytext --update --to ipynb {chapter.relative_to(REPO_ROOT)}"
            assert notebook_path.is_file(), f"{notebook_path} is missing; {refresh}"
            notebook = json.loads(notebook_path.read_text(encoding="utf-8"))
            cells = ["".join(c["source"]).strip("\n") for c in notebook["cells"] if c["cell_type"] == "code"]
            assert cells == code_cells(chapter), f"{notebook_path} is out of date; {refresh}"
            assert all(not c.get("outputs") for c in notebook["cells"] if c["cell_type"] == "code"), (
                f"{notebook_path} must be stored without outputs"
            )


# ---------------------------------------------------------------------------
# The build.


def _sources_mtime() -> float:
    pages = [REPO_ROOT / f"{name}.md" for name in toc_files()]
    paths = [REPO_ROOT / "_config.yml", REPO_ROOT / "_toc.yml", *pages, *(REPO_ROOT / "unet_tutorial").glob("*.py")]
    return max(p.stat().st_mtime for p in paths)


@functools.lru_cache(maxsize=1)
def build_book(data_dir: str) -> str:
    """Build the book once per session (the README's command); return the build log.

    Shared with tests/test_browser.py. Reuses ``_build/html`` when
    UNET_TUTORIAL_BOOK_BUILT=1 and it is newer than every source.
    """
    page = HTML / "book" / "index.html"
    if os.environ.get("UNET_TUTORIAL_BOOK_BUILT") == "1" and page.is_file() and page.stat().st_mtime > _sources_mtime():
        return ""
    env = {**os.environ, "UNET_TUTORIAL_DATA": data_dir, "TF_CPP_MIN_LOG_LEVEL": "3"}
    bin_dir = pathlib.Path(sys.executable).parent
    command = [str(bin_dir / BUILD_COMMAND[0]) if (bin_dir / BUILD_COMMAND[0]).exists() else BUILD_COMMAND[0], *BUILD_COMMAND[1:]]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1800)
    log = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(BUILD_COMMAND)}` failed (exit {result.returncode}):\n{log[-6000:]}")
    return log


@pytest.mark.book
@pytest.mark.slow
def test_book_builds_without_warnings_and_both_languages_are_reachable(built_book, shared_data):
    log = build_book(str(shared_data.resolve()))
    sphinx_warnings = [line for line in log.splitlines() if re.search(r"\S: (WARNING|ERROR): ", line)]
    assert sphinx_warnings == []
    landing = (built_book / "index.html").read_text(encoding="utf-8")
    assert "book/index.html" in landing  # the root redirects to the landing page
    home = (built_book / "book" / "index.html").read_text(encoding="utf-8")
    for language, (link_text, other) in LANGUAGE_LINK.items():
        notebooks = chapters(language)
        for chapter in pages(language):
            assert f'href="{language}/{chapter.stem}.html' in home, f"landing page does not link {language}/{chapter.stem}"
            page = (built_book / "book" / language / f"{chapter.stem}.html").read_text(encoding="utf-8")
            assert f'href="../{other}/{chapter.stem}.html' in page, f"{language}/{chapter.stem}: no link to its counterpart"
            if chapter in notebooks:
                colab = f"https://colab.research.google.com/github/unet-tutorial/unet-tutorial/blob/main/book/{language}/{chapter.stem}.ipynb"
                assert colab in page, f"{language}/{chapter.stem}: no Colab button for the .ipynb copy"
            for noise in ("oneDNN", "absl::", "cuda drivers", "Traceback"):
                assert noise not in page, f"{language}/{chapter.stem}: {noise!r} leaked into the page"
            # Markdown left unrendered, e.g. "**분할 오류(split)**는": a closing ** after ")" needs a
            # space or punctuation after it, so bold must close before the parenthesis in Korean text.
            prose = re.sub(r"<(pre|code|script|style|table)\b.*?</\1>", "", page, flags=re.S)  # not code or data
            assert "**" not in re.sub(r"<[^>]+>", "", prose), f"{language}/{chapter.stem}: unrendered ** in the text"
            for image in re.findall(r'<img [^>]*src="([^"]+)"', page):
                if not image.startswith(("http:", "https:", "data:")):
                    assert (built_book / "book" / language / image).resolve().is_file(), f"missing image {image}"


# ---------------------------------------------------------------------------
# The glossary: one Korean term per English term, in both languages and in the text.


def glossary(language: str) -> list[tuple[str, str, str]]:
    """(Korean term, English term, first chapter's file) for each row of the glossary table."""
    rows = []
    for line in (BOOK / language / "glossary.md").read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and not set(cells[0]) <= set("-: "):
            rows.append(cells)
    rows = rows[1:]  # the header row
    korean, english = (0, 1) if language == "ko" else (1, 0)
    return [(row[korean], row[english], re.search(r"\(([\w.]+\.md)\)", row[3]).group(1)) for row in rows]


def korean_term_before(english: str, prose: str) -> list[str]:
    """The 20 characters before each "(english" in ``prose`` (the Korean term it explains)."""
    base = re.sub(r"\s*\([^)]*\)$", "", english)  # "stochastic gradient descent (SGD)" -> "... descent"
    # "(" right after a letter or digit is a function, as in P(membrane), not a gloss.
    return [prose[max(0, m.start() - 20): m.start()]
            for m in re.finditer(r"(?<![A-Za-z0-9_])\(" + re.escape(base) + r"[),]", prose, flags=re.I)]


def prose_of(path: pathlib.Path) -> str:
    """A page without its code cells and inline code."""
    text = re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def test_korean_and_english_glossaries_list_the_same_terms():
    korean, english = glossary("ko"), glossary("en")
    assert len(korean) >= 40
    assert sorted(korean) == sorted(english)
    assert len({k for k, _, _ in korean}) == len(korean), "a Korean term is listed twice"
    assert len({e for _, e, _ in korean}) == len(korean), "an English term is listed twice"
    for _, _, first in korean:
        assert (BOOK / "ko" / first).is_file(), f"glossary names a chapter that does not exist: {first}"


def test_korean_text_glosses_each_english_term_with_the_glossary_term():
    """In "X(segmentation)" in Korean prose: X must be the glossary's term for "segmentation"."""
    found, wrong = 0, []
    for page in pages("ko"):
        prose = prose_of(page)
        for korean, english, _ in glossary("ko"):
            for before in korean_term_before(english, prose):
                found += 1
                if not before.rstrip("*").endswith(korean):
                    wrong.append(f"{page.name}: ...{before.strip()}({english}) should be {korean}({english})")
    assert found >= 40, f"only {found} glossed terms found; is the check reading the chapters?"
    assert wrong == []


def test_glossary_check_flags_another_korean_term():
    assert korean_term_before("threshold", "임계값(threshold)을 정합니다") == ["임계값"]
    assert not "임계값".endswith("문턱값")
    assert korean_term_before("membrane", "P(membrane)") == []


# ---------------------------------------------------------------------------
# The architecture diagram of chapters 2 and 4 is read from the model's layers.


def test_feature_maps_of_the_paper_network_follow_fig1():
    from unet_tutorial import build_unet, plots

    maps = plots.unet_feature_maps(build_unet())
    convs = [(m["level"], m["size"], m["channels"]) for m in maps if m["kind"] == "conv"]
    # Ronneberger et al. 2015, Fig. 1: sizes after each 3x3 convolution, level by level.
    assert convs[:4] == [(0, 570, 64), (0, 568, 64), (1, 282, 128), (1, 280, 128)]
    assert convs[8:10] == [(4, 30, 1024), (4, 28, 1024)]
    assert convs[-2:] == [(0, 390, 64), (0, 388, 64)]
    assert [m["kind"] for m in maps].count("upconv") == 4
    assert (maps[0]["kind"], maps[0]["size"]) == ("input", 572)
    assert (maps[-1]["kind"], maps[-1]["size"], maps[-1]["channels"]) == ("output", 388, 2)


def test_diagram_follows_the_model_it_is_given():
    import keras
    import matplotlib

    matplotlib.use("Agg")
    from unet_tutorial import build_unet, plots

    small = build_unet(input_shape=(92, 92, 1), base_filters=4, depth=3)
    fig = plots.plot_unet_architecture(small)
    title = fig.axes[0].get_title()
    assert "92x92x1 -> 52x52x2" in title  # 92-4=88, 44-4=40, 20-4=16, 32-4=28, 56-4=52 and f"{small.count_params():,}" in title
    assert max(m["level"] for m in plots.unet_feature_maps(small)) == 2
    inputs = keras.Input((32, 32, 1))
    not_a_unet = keras.Model(inputs, keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(4, 3)(inputs)))
    with pytest.raises(ValueError, match="does not look like a U-Net"):
        plots.unet_feature_maps(not_a_unet)


# ---------------------------------------------------------------------------
# Reading the book: the extensions of book/_ext and the Korean prose around inserted numbers.

EXT = BOOK / "_ext"
# A particle whose form depends on how the word before it ends (받침): 를/을, 는/은, 가/이, 로/으로, 와/과.
PARTICLE_AFTER_GLUE = re.compile(r"\{glue(?::text)?\}`([^`]+)`(를|을|는|은|가|이(?![다고며지었므라란])|으로|로|와|과)")


def _extension(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, EXT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def particles_after_inserted_numbers(text: str) -> list[str]:
    """Inserted values followed by a particle that depends on the value's last sound (a percentage ends in 퍼센트: fine)."""
    return [m.group(0) for m in PARTICLE_AFTER_GLUE.finditer(text) if not m.group(1).endswith("%")]


def test_korean_particles_do_not_depend_on_an_inserted_number():
    wrong = [f"{page.name}: {found}" for page in pages("ko") for found in particles_after_inserted_numbers(page.read_text(encoding="utf-8"))]
    assert wrong == [], "rewrite these so the particle does not depend on the number (e.g. 'A, B입니다' or 'A(B)는')"


def test_particle_check_flags_a_number_before_reul():
    assert particles_after_inserted_numbers("오차 {glue:text}`err:.4f`를 얻었습니다") == ["{glue:text}`err:.4f`를"]
    assert particles_after_inserted_numbers("{glue:text}`slice`는") == ["{glue:text}`slice`는"]
    assert particles_after_inserted_numbers("{glue:text}`err:.4f`입니다, {glue:text}`share:.1%`를") == []


def test_korean_search_indexes_words_without_their_particles():
    pytest.importorskip("kiwipiepy", reason="pip install -e '.[book]'")
    search = _extension("korean_search").SearchKoreanEnglish({})
    words = {search.stem(word).lower() for word in search.split("모델을 학습합니다. 네트워크가 가중치 맵(weight map)을 분할했습니다.")}
    assert {"모델", "학습", "네트워크", "가중치", "분할", "weight", "map"} <= words
    assert "모델을" in words  # the whole eojeol is indexed too, as Sphinx would
    assert {search.stem(w) for w in search.split("segmentations of cells")} == {"segment", "of", "cell"}  # English stems


def test_korean_words_adds_stems_and_nouns_from_the_tokens():
    from types import SimpleNamespace as Token

    korean_words = _extension("korean_search").korean_words
    tokens = [Token(form="가중", tag="NNG", start=0, len=2), Token(form="치", tag="XSN", start=2, len=1),
              Token(form="를", tag="JKO", start=3, len=1), Token(form="학습", tag="NNG", start=5, len=2),
              Token(form="하", tag="XSV", start=7, len=1), Token(form="ᆸ니다", tag="EF", start=7, len=3)]
    assert korean_words("가중치를 학습합니다", lambda text: tokens) == ["가중치를", "학습합니다", "가중치", "가중", "학습", "학습"]


def test_glue_bookkeeping_is_hidden_and_the_rest_stays_valid_python():
    without_glue = _extension("hide_glue").without_glue
    source = ("from myst_nb import glue\nx = 1\nglue('x', x, display=False)\n"
              "for k in (1, 2):\n    glue(f'k{k}', k, display=False)\n"
              "if x:\n    y = 2\n    glue('y', y, display=False)\nelse:  # never\n    glue('y', 0, display=False)\nx, y")
    assert without_glue(source) == "x = 1\nif x:\n    y = 2\nx, y"
    assert without_glue("glue('a', 1)") == ""
    assert without_glue("not python (") == "not python ("


def test_page_language_and_per_chapter_figure_numbers():
    page_language = _extension("page_language")
    assert page_language.page_language("book/ko/05_training") == "ko"
    assert page_language.page_language("book/en/05_training") == "en"
    assert page_language.page_language("book/index") == "en"
    assert page_language.chapter_number("book/ko/05_training") == 5
    assert page_language.chapter_number("book/ko/glossary") is None
    html = '<span class="caption-number">Fig. 5.1 </span> see <span class="std std-numref">Fig. 5.2</span>'
    assert page_language.korean_caption_words(html) == (
        '<span class="caption-number">그림 5.1 </span> see <span class="std std-numref">그림 5.2</span>')
    env = SimpleEnv({"book/ko/05_training": {"figure": {"a": (9,), "b": (11,), "c": (10,)}}, "book/index": {"figure": {"z": (4,)}}})
    page_language.number_figures_per_chapter(None, env)
    assert env.toc_fignumbers["book/ko/05_training"]["figure"] == {"a": (5, 1), "c": (5, 2), "b": (5, 3)}
    assert env.toc_fignumbers["book/index"]["figure"] == {"z": (1,)}


def test_execution_cache_key_follows_the_package_and_the_artifacts(tmp_path, monkeypatch):
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.cache.main import JupyterCacheBase

    monkeypatch.setattr(JupyterCacheBase, "create_hashed_notebook", JupyterCacheBase.create_hashed_notebook)
    execution_inputs = _extension("execution_inputs")
    root = tmp_path / "book_root"
    (root / "unet_tutorial").mkdir(parents=True)
    (root / "book" / "artifacts" / "chapter7").mkdir(parents=True)
    module = root / "unet_tutorial" / "metrics.py"
    artifact = root / "book" / "artifacts" / "chapter7" / "run.json"
    module.write_text("THRESHOLD = 0.5\n")
    artifact.write_text('{"rand_error": 0.08}')
    cache = get_cache(tmp_path / "cache")
    chapter = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])

    def key(notebook=chapter):
        execution_inputs.key_cache_on_inputs(root)
        return cache.create_hashed_notebook(notebook)[1]

    first = key()
    assert key() == first  # nothing changed: the cached run is used
    (root / "unet_tutorial" / "__pycache__").mkdir()
    (root / "unet_tutorial" / "__pycache__" / "metrics.cpython-311.pyc").write_bytes(b"\0")
    assert key() == first  # compiled files are not inputs
    artifact.write_text('{"rand_error": 0.05}')
    new_artifact = key()
    assert new_artifact != first
    module.write_text("THRESHOLD = 0.4\n")
    assert key() not in (first, new_artifact)
    module.write_text("THRESHOLD = 0.5\n")
    artifact.write_text('{"rand_error": 0.08}')
    assert key() == first  # the key is not stacked on earlier keys
    assert key(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(2)")])) != first  # code still counts


class SimpleEnv:
    def __init__(self, toc_fignumbers):
        self.toc_fignumbers = toc_fignumbers


# Output a reader should never see on a page: TensorFlow's log lines, a return value printed by accident.
STRAY_OUTPUT = ("INFO:tensorflow", "WARNING:tensorflow", "'NanumGothic'", "glue(", "from myst_nb import glue")


@pytest.mark.book
@pytest.mark.slow
def test_each_chapter_ran_once_and_each_language_keeps_its_own_captions(built_book):
    """The two languages share one cached run (book/_ext/shared_execution.py), not their captions."""
    import jupytext
    from jupyter_cache import get_cache

    sys.path.insert(0, str(BOOK / "_ext"))
    import shared_execution

    shared_execution.setup(None)
    _extension("execution_inputs").key_cache_on_inputs(REPO_ROOT)  # the build's keys (no match without it)
    cache = get_cache(REPO_ROOT / "_build" / ".jupyter_cache")
    for korean in chapters("ko"):
        english = BOOK / "en" / korean.name
        runs = {language: cache.match_cache_notebook(jupytext.read(path)).pk
                for language, path in (("ko", korean), ("en", english))}
        assert runs["ko"] == runs["en"], f"{korean.stem}: the languages ran separately {runs}"
        for language, path in (("ko", korean), ("en", english)):
            page = (built_book / "book" / language / f"{path.stem}.html").read_text(encoding="utf-8")
            names = re.findall(r"^\s+name: ((?:ko|en)-fig-[\w-]+)$", path.read_text(encoding="utf-8"), flags=re.M)
            for name in names:
                assert f'id="{name}"' in page, f"{language}/{path.stem}: figure {name} missing"
            other = "en" if language == "ko" else "ko"
            assert f'id="{other}-fig-' not in page, f"{language}/{path.stem}: shows the other language's figures"


@pytest.mark.book
@pytest.mark.slow
def test_built_pages_declare_their_language_number_figures_per_chapter_and_show_no_stray_output(built_book):
    for language in LANGUAGE_LINK:
        for chapter in pages(language):
            page = (built_book / "book" / language / f"{chapter.stem}.html").read_text(encoding="utf-8")
            name = f"{language}/{chapter.stem}"
            assert re.search(rf'<html[^>]* lang="{language}"', page), f"{name}: <html lang=\"{language}\"> missing"
            captions = re.findall(r'<span class="caption-number">([^<]*)</span>', page)
            word = "그림" if language == "ko" else "Fig."
            number = re.match(r"(\d+)_", chapter.stem)
            for caption in captions:
                assert caption.startswith(word + " "), f"{name}: caption number {caption!r} should start with {word}"
                if number:
                    assert caption.split()[1].startswith(f"{int(number.group(1))}."), f"{name}: {caption!r} is not numbered in its chapter"
            if chapter in chapters(language) and number and int(number.group(1)) in (1, 2, 5):
                assert captions, f"{name}: no numbered figure found"
            for noise in STRAY_OUTPUT:
                assert noise not in page, f"{name}: {noise!r} is shown on the page"
