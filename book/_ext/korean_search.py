"""Sphinx extension: one search index that finds Korean words however they are inflected.

Sphinx builds one search index per project with one search language
(``html_search_language``), and it has no Korean: Korean text falls back to
the English splitter, which indexes whole eojeol (word + particle), so
"모델" misses every page that only says "모델을" or "모델은".

This extension registers the search language ``ko`` for the whole book:

- At build time, text with Hangul is split into morphemes by the analyser
  kiwipiepy (PyPI). Every word is indexed as Sphinx would index it, and each
  Korean word is also indexed without its particles and endings ("모델을",
  "모델은" -> "모델"; "학습합니다" -> "학습"), together with the nouns inside
  it ("가중치맵" -> "가중치맵", "가중", "맵").
- Latin words are stemmed as English (Sphinx's Porter stemmer), so the English
  pages keep English search; one search box serves both languages.
- In the browser the query goes through the same idea: a Korean query word
  that the index does not hold loses its particles and endings, one at a time,
  until what is left is an indexed word ("모델을" -> "모델"). Latin words get
  Sphinx's Porter stemmer, as before.
- The search page's own messages are shown in Korean and English
  (``_static/search_messages.js``).
"""

from __future__ import annotations

import json
import re

from sphinx.search.en import SearchEnglish

HANGUL = re.compile(r"[\uac00-\ud7a3]")
WORD = re.compile(r"\w+")
EOJEOL = re.compile(r"\S+")

# Morpheme tags (Sejong tag set, as kiwipiepy uses it) that belong to the word
# itself: nouns, numbers, foreign words, roots and noun prefixes/suffixes.
# An eojeol's stem is its leading run of these ("가중"+"치" in "가중치를").
STEM_TAGS = {"NNG", "NNP", "NNB", "NR", "NP", "XPN", "XSN", "XR", "SL", "SH", "SN"}
# Morphemes indexed on their own: the nouns inside a compound.
NOUN_TAGS = {"NNG", "NNP", "NR", "NP", "XR"}

# Particles and endings the browser strips from a Korean query word, longest
# first. Stripping stops at a word the index holds, so a noun that merely ends
# in one of these ("길이") is kept when it is indexed itself.
QUERY_SUFFIXES = sorted(
    set(
        "이 가 은 는 을 를 의 에 께 로 와 과 도 만 나 랑 야 여 들 적 인 함 한 할 된 될 "
        "에서 에게 한테 으로 까지 부터 보다 처럼 마다 이나 이며 이고 이라 이란 이다 라는 이라는 "
        "으로는 로는 에는 에서는 과는 와는 에도 으로도 로도 에서도 만의 까지의 부터의 "
        "입니다 이었 였다 이었다 합니다 했습니다 하는 하고 하여 해서 하면 하며 했다 하다 하기 하지 "
        "되는 됩니다 되었 되고 되어 돼 됐 시킵니다 시키는 시킨 시켜 적인 적으로 습니다 ㅂ니다 니다".split()
    ),
    key=len,
    reverse=True,
)

QUERY_STEMMER_JS = r"""
/**
 * Stemmer of the book's search language "ko" (book/_ext/korean_search.py):
 * Korean query words lose particles and endings until what is left is a word
 * of the search index; other words get the Porter stemmer (English).
 */
%(porter)s
var PorterStemmer = Stemmer;
var KOREAN_QUERY_SUFFIXES = %(suffixes)s;
var stripKoreanQueryWord = function(word, isIndexed) {
  if (isIndexed(word)) return word;
  // Every way of taking up to three particles/endings off the end of the word.
  var candidates = [word];
  for (var round = 0; round < 3; round++) {
    var next = [];
    candidates.forEach(function(candidate) {
      KOREAN_QUERY_SUFFIXES.forEach(function(suffix) {
        if (candidate.length > suffix.length && candidate.endsWith(suffix))
          next.push(candidate.slice(0, candidate.length - suffix.length));
      });
    });
    candidates = candidates.concat(next);
  }
  // The shortest indexed remainder: "모델들은" -> "모델", not "모델들".
  var indexed = candidates.filter(isIndexed).sort(function(a, b) { return a.length - b.length; });
  return indexed.length ? indexed[0] : word;
};
var Stemmer = function() {
  var porter = new PorterStemmer();
  var isIndexed = function(word) {
    var index = (typeof Search !== "undefined" && Search._index) ? Search._index : null;
    return !!index && (Object.prototype.hasOwnProperty.call(index.terms, word) ||
                       Object.prototype.hasOwnProperty.call(index.titleterms, word));
  };
  this.stemWord = function(word) {
    if (/[\uac00-\ud7a3]/.test(word)) return stripKoreanQueryWord(word, isIndexed);
    return porter.stemWord(word);
  };
};
"""


class SearchKoreanEnglish(SearchEnglish):
    """Search language ``ko``: Korean morphemes (kiwipiepy) and English stems in one index."""

    lang = "ko"
    language_name = "Korean"
    js_stemmer_code = QUERY_STEMMER_JS % {
        "porter": SearchEnglish.js_stemmer_code,
        "suffixes": json.dumps(QUERY_SUFFIXES, ensure_ascii=False),
    }

    def init(self, options: dict[str, str]) -> None:
        super().init(options)
        try:
            from kiwipiepy import Kiwi
        except ImportError as error:
            raise RuntimeError(
                "The book's Korean search needs the morphological analyser kiwipiepy: "
                "pip install -e '.[book]' (or pip install kiwipiepy), then build again."
            ) from error
        self.kiwi = Kiwi(num_workers=1)  # one thread: the build shares its machine

    def split(self, input: str) -> list[str]:
        return korean_words(input, self.kiwi.tokenize) if HANGUL.search(input) else WORD.findall(input)

    def stem(self, word: str) -> str:
        return word if HANGUL.search(word) else super().stem(word)


def korean_words(text: str, tokenize) -> list[str]:
    """Words of ``text`` to index: Sphinx's own words plus each Korean word's stem and nouns.

    ``tokenize`` is kiwipiepy's ``Kiwi.tokenize`` (tokens with ``form``, ``tag``,
    ``start`` and ``len``); it is a parameter so that tests can pass their own.
    """
    words = WORD.findall(text)
    tokens = list(tokenize(text))
    position = 0
    for eojeol in EOJEOL.finditer(text):
        if not HANGUL.search(eojeol.group()):
            continue
        while position < len(tokens) and tokens[position].start < eojeol.start():
            position += 1
        inside = []
        while position < len(tokens) and tokens[position].start < eojeol.end():
            inside.append(tokens[position])
            position += 1
        stem_end = None
        for token in inside:
            if token.tag not in STEM_TAGS:
                break
            stem_end = token.start + token.len
        if stem_end is not None:
            words += WORD.findall(text[eojeol.start():stem_end])[-1:]  # "(가중치" -> "가중치"
        words += [token.form for token in inside if token.tag in NOUN_TAGS and HANGUL.search(token.form)]
    return words


def setup(app):
    app.add_search_language(SearchKoreanEnglish)
    app.add_js_file("search_messages.js")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
