#!/usr/bin/env bash
# Refresh the vendored MathJax of the static book.
#
# The chapters' equations are typeset in the browser by MathJax 3. The book
# serves it itself from book/_static/mathjax/ (_config.yml: mathjax_path), so
# pages load nothing from a CDN. The files are committed, like the widget
# JavaScript (scripts/vendor_widgets_js.sh): a fresh clone builds without npm.
#
# Usage (from the repository root; needs npm and the npm registry):
#   bash scripts/vendor_mathjax.sh            # the pinned version below
#   bash scripts/vendor_mathjax.sh 3.2.2      # another 3.x version
# Then rebuild the book and run tests/test_browser.py.
# MathJax 4 fetches its fonts from a CDN unless configured otherwise: stay on 3.x.
set -euo pipefail

version="${1:-3.2.2}"
package="mathjax"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$root/book/_static/mathjax"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ "$version" != 3.* ]]; then
    echo "error: use a MathJax 3.x version (MathJax 4 loads its fonts from a CDN); got $version" >&2
    exit 1
fi
npm install --prefix "$work" --no-save --no-audit --no-fund --ignore-scripts "$package@$version" >/dev/null
es5="$work/node_modules/$package/es5"
if [[ ! -f "$es5/tex-chtml.js" ]]; then
    echo "error: $package@$version has no es5/tex-chtml.js; pick a 3.x version (npm view $package versions)" >&2
    exit 1
fi

rm -rf "$target"
mkdir -p "$target"
# Only what a page can ask for. tex-chtml.js is the combined component (TeX
# input with the AMS package, CommonHTML output, the menu); it loads the rest
# from paths beside itself:
#   input/tex/extensions/   TeX packages autoloaded by a macro (e.g. \boldsymbol)
#   output/chtml/fonts/woff-v2/  the CommonHTML fonts
#   ui/, a11y/              the menu and the accessibility tools it offers
#   sre/mathmaps/           the speech rules (base and English) for those tools
# The SVG output, the MathML input and the other speech languages are left
# out (about 20 MB).
cp "$es5/tex-chtml.js" "$work/node_modules/$package/LICENSE" "$target/"
mkdir -p "$target/input/tex" "$target/output/chtml/fonts" "$target/sre/mathmaps"
cp -r "$es5/input/tex/extensions" "$target/input/tex/"
cp -r "$es5/output/chtml/fonts/woff-v2" "$target/output/chtml/fonts/"
cp -r "$es5/ui" "$es5/a11y" "$target/"
cp "$es5/sre/mathmaps/base.json" "$es5/sre/mathmaps/en.json" "$target/sre/mathmaps/"

resolved="$(node -p "require('$work/node_modules/$package/package.json').version")"
sha="$(sha256sum "$target/tex-chtml.js" | cut -d' ' -f1)"
cat > "$target/VERSION.txt" <<INFO
$package $resolved (npm registry): es5/tex-chtml.js and the files it loads
sha256 $sha  tex-chtml.js
refreshed $(date -u +%Y-%m-%d) by scripts/vendor_mathjax.sh
INFO
echo "vendored $package@$resolved -> book/_static/mathjax/ ($(du -sh "$target" | cut -f1) in $(find "$target" -type f | wc -l) files)"
