#!/usr/bin/env bash
# The one command of chapter 7's GPU run (issue 9), run on the lent GPU machine: a thin wrapper
# around the package's command `python -m unet_tutorial reproduce --scale gpu` (unet_tutorial/reproduce.py).
#
# Prepare here first (packs data and wheels into .carry/, checks the 64 MiB limit):
#   UNET_TUTORIAL_DATA=../shared/data bash scripts/prepare_device_run.sh
# Then call the device tool's run with
#   carry: [".carry"]    timeout_s: 600    command: bash scripts/device_run.sh
# There the package is not installed: this script puts the checkout on PYTHONPATH, checks the
# Python version, installs the carried wheels (no network there), checks that Keras runs on JAX
# with a GPU, then runs `reproduce` on the packed data in .carry/data: ISBI-2012 training with the
# paper's network and terms under a wall-time budget, overlap-tile + TTA evaluation of the
# held-out fold, the four cell-tracking runs (train on one sequence, score the other), the
# time to quality and the bench. The small artifacts land in $OUT (8 files at most come back;
# these are 8); copy them into book/artifacts/chapter7/ here and commit them.
# Extra arguments go to `reproduce` (e.g. --budget-s 420, --isbi-set learning_rate=0.02);
# `python -m unet_tutorial reproduce --help` lists them and `--dry-run` prints the plan.
#
# The CPU stand-in (this machine, no GPU, Keras and JAX already installed) runs the same command:
#   UNET_DEVICE_INSTALL=0 KERAS_BACKEND=jax OUT=/tmp/ch7 bash scripts/device_run.sh --scale cpu
# or, without this wrapper: python -m unet_tutorial reproduce --scale cpu --out /tmp/ch7
set -uo pipefail

cd "$(dirname "$0")/.."
: "${OUT:?OUT must name the folder for the artifacts (the device tool sets it)}"
mkdir -p "$OUT"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 UNET_TUTORIAL_DATA="$PWD/.carry/data"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python3}
NEEDED_PYTHON=3.12   # the carried optree wheel is built for CPython 3.12 (prepare_device_run.sh)

if [ "${UNET_DEVICE_INSTALL:-1}" = "1" ]; then
    found=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ "$found" != "$NEEDED_PYTHON" ]; then
        echo "error: $PYTHON is Python $found; the carried wheels are for $NEEDED_PYTHON." \
             "Download wheels for $found in scripts/prepare_device_run.sh (DEVICE_PYTHON)." >&2
        exit 2
    fi
    if ! ls .carry/wheels/*.whl >/dev/null 2>&1 || [ ! -f .carry/data/isbi2012.npz ]; then
        echo "error: .carry/wheels or .carry/data is missing: run scripts/prepare_device_run.sh here" \
             "and name .carry in the call's carry list." >&2
        exit 2
    fi
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .carry/wheels/*.whl || exit 2
    export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

# Fail in seconds, not minutes, if Keras cannot run on JAX here.
"$PYTHON" - <<'EOF' || exit 2
import importlib, sys
missing = []
for module in ("keras", "jax", "numpy", "scipy", "skimage", "tifffile", "tqdm", "matplotlib", "absl", "rich",
               "h5py", "ml_dtypes", "optree", "namex", "packaging"):
    try:
        importlib.import_module(module)
    except Exception as error:
        missing.append(f"{module} ({type(error).__name__}: {error})")
if missing:
    raise SystemExit("error: cannot import " + "; ".join(missing))
import jax, keras
print(f"python {sys.version.split()[0]}, keras {keras.__version__} on {keras.backend.backend()}, "
      f"jax {jax.__version__}, devices {jax.devices()}")
EOF
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

export UNET_DEVICE_COMMAND="bash scripts/device_run.sh${*:+ $*}"  # recorded in the provenance
exec "$PYTHON" -m unet_tutorial reproduce --scale gpu --out "$OUT" --data .carry/data "$@"
