#!/usr/bin/env bash
# Install what the tests need and run them: the package with its test extra,
# Debian's chromium (the browser check) and a Hangul font, then pytest.
# The tests read the real data from ../shared/data unless UNET_TUTORIAL_DATA says otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"

if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi nanum; then
    if [ "$(id -u)" = "0" ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-nanum >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-nanum >/dev/null
    else
        echo "Need Debian's chromium for the browser tests: apt-get install chromium fonts-nanum" >&2
        exit 1
    fi
fi

if [ -z "${UNET_TUTORIAL_DATA:-}" ] && [ -d ../shared/data ]; then
    UNET_TUTORIAL_DATA="$(cd ../shared/data && pwd)"
    export UNET_TUTORIAL_DATA
fi

export TF_CPP_MIN_LOG_LEVEL=3
exec python3 -m pytest "$@"
