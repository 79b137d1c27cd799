/* The search page's own words in Korean and English (book/_ext/korean_search.py).
 * Sphinx's searchtools.js shows its messages through Documentation.gettext. */
"use strict";
Documentation.addTranslations({
  locale: "ko",
  plural_expr: "0",
  messages: {
    "Search": "검색 · Search",
    "Searching": "검색 중 · Searching",
    "Search Results": "검색 결과 · Search Results",
    "Preparing search...": "검색을 준비하는 중 · Preparing search...",
    "Search finished, found ${resultCount} page(s) matching the search query.":
      "${resultCount}개 페이지를 찾았습니다 · Found ${resultCount} page(s) matching the search query.",
    "Your search did not match any documents. Please make sure that all words are spelled correctly and that you've selected enough categories.":
      "찾는 낱말이 있는 페이지가 없습니다. 철자를 확인해 보세요 · No page matches the search. Please check the spelling.",
    ", in ": ", 위치 · in ",
  },
});
// The search field's placeholder and the search page's heading come from the theme's
// templates in English; both readers use the same box.
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll('input[name="q"]').forEach((input) => {
    input.placeholder = "검색 · Search this book...";
  });
  const heading = document.querySelector(".bd-search-container h1");
  if (heading) heading.textContent = "검색 · Search";
});
