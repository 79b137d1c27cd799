#!/usr/bin/env bash
# Refresh the vendored widget JavaScript of the static book.
#
# The rendered HTML book shows ipywidgets without a kernel: MyST-NB embeds the
# widget state in the page and @jupyter-widgets/html-manager's dist/embed.js
# renders it. The book serves that file itself from book/_static/widgets/
# (_config.yml: nb_ipywidgets_js), so pages load nothing from a CDN.
#
# Usage (from the repository root; needs npm and the npm registry):
#   bash scripts/vendor_widgets_js.sh            # the pinned version below
#   bash scripts/vendor_widgets_js.sh 1.0.16     # another version
# Then rebuild the book and run tests/test_widgets_browser.py.
# Keep the html-manager major version in step with ipywidgets
# (html-manager 1.x <-> ipywidgets 8.x).
set -euo pipefail

version="${1:-1.0.15}"
package="@jupyter-widgets/html-manager"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$root/book/_static/widgets"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

npm install --prefix "$work" --no-save --no-audit --no-fund --ignore-scripts "$package@$version" >/dev/null
dist="$work/node_modules/$package/dist"
if [[ ! -f "$dist/embed.js" ]]; then
    echo "error: $package@$version has no dist/embed.js; pick a 1.x version (npm view $package versions)" >&2
    exit 1
fi

rm -rf "$target"
mkdir -p "$target"
# embed.js is a self-contained bundle (no require.js) that injects the widget
# styles itself. Those styles load Font Awesome from files beside embed.js (the
# hashed *.woff2/*.woff/*.ttf in dist/); they are copied too, so that no page
# asks for a missing file. The *.eot/*.svg variants serve only very old
# browsers and are left out (about 2 MB).
cp "$dist/embed.js" "$dist/embed.js.LICENSE.txt" "$target/"
cp "$dist"/*.woff2 "$dist"/*.woff "$dist"/*.ttf "$target/"
resolved="$(node -p "require('$work/node_modules/$package/package.json').version")"
sha="$(sha256sum "$target/embed.js" | cut -d' ' -f1)"
cat > "$target/VERSION.txt" <<INFO
$package $resolved (npm registry): dist/embed.js and the fonts it loads
sha256 $sha
refreshed $(date -u +%Y-%m-%d) by scripts/vendor_widgets_js.sh
INFO
echo "vendored $package@$resolved -> book/_static/widgets/ ($(du -sh "$target" | cut -f1) in $(ls "$target" | wc -l) files)"
