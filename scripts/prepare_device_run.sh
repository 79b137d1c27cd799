#!/usr/bin/env bash
# Prepare the GPU run of chapter 7 (issue 9) in one go, here (no GPU needed).
#
# What it makes, in the git-ignored folder .carry/ that the device call carries:
#   .carry/data/     ISBI-2012 (train images, labels, test images) and only the annotated
#                    frames of PhC-C2DH-U373 and DIC-C2DH-HeLa, as compressed .npz, made by
#                    datasets.pack_data (unet_tutorial/packed.py says why .npz); there the
#                    loaders read this folder itself: pass it as data_dir (or UNET_TUTORIAL_DATA)
#   .carry/wheels/   what the device's python3 lacks to import Keras 3 (keras, namex, optree);
#                    the rest that keras and this package need (absl-py, rich, h5py, ml-dtypes,
#                    packaging, numpy, scipy, scikit-image, tifffile, tqdm, matplotlib) is in
#                    that image already (KINDS.md). imagecodecs and pooch are not needed there:
#                    the data come from .npz, not from LZW TIFFs or downloads.
#   .carry/source.json   the commit and the uncommitted files of this checkout (the .git folder
#                        does not travel; the run's provenance records these)
# and checks that the working tree plus .carry stay under the device's 64 MiB per call.
#
# Assumed on the device machine: Python 3.12 (KINDS.md: 3.12.3), x86-64, JAX with CUDA, no
# TensorFlow, no network. scripts/device_run.sh checks the Python version before it installs.
#
# Usage, from the repository root:
#   UNET_TUTORIAL_DATA=../shared/data bash scripts/prepare_device_run.sh
# then call the device tool's run with carry [".carry"] and the command
#   bash scripts/device_run.sh
# (timeout_s 600; the run plans 495 s of work, see unet_tutorial/reproduce_plan.py).
set -euo pipefail

cd "$(dirname "$0")/.."
CARRY=.carry
DEVICE_PYTHON=3.12          # the device image's python3 (KINDS.md)
LIMIT_MIB=64                # the device call's limit: working tree + carried paths
KERAS_VERSION=$(python -c "import importlib.metadata as m; print(m.version('keras'))")
# Keras 3's own needs that the device image lacks; pin what this machine runs.
WHEELS=("keras==${KERAS_VERSION}" "namex==0.1.0" "optree==0.20.0")

python - <<'EOF'
import pathlib, subprocess
ignored = subprocess.run(["git", "check-ignore", "-q", ".carry/"], cwd=pathlib.Path.cwd()).returncode == 0
if not ignored:
    raise SystemExit("error: .carry/ is not git-ignored; add /.carry/ to .gitignore before packing data there.")
EOF

echo "== data: ${UNET_TUTORIAL_DATA:-<datasets.data_dir() default>} -> $CARRY/data"
rm -rf "$CARRY/data.new"
# pack_data reads with the package's loaders (sha256 and pixel fingerprints checked) from
# datasets.data_dir(), i.e. $UNET_TUTORIAL_DATA when set.
python -c 'import sys
from unet_tutorial.datasets import pack_data
for name, path in pack_data(out_dir=sys.argv[1]).items():
    print(f"packed {name}: {path} ({path.stat().st_size / 2**20:.1f} MiB)")' "$CARRY/data.new"
rm -rf "$CARRY/data" && mv "$CARRY/data.new" "$CARRY/data"

echo "== wheels for Python $DEVICE_PYTHON on manylinux x86-64 -> $CARRY/wheels"
rm -rf "$CARRY/wheels.new" && mkdir -p "$CARRY/wheels.new"
python -m pip download --quiet --no-deps --only-binary=:all: --python-version "$DEVICE_PYTHON" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$CARRY/wheels.new" "${WHEELS[@]}"
rm -rf "$CARRY/wheels" && mv "$CARRY/wheels.new" "$CARRY/wheels"
ls -1 "$CARRY/wheels"

echo "== source"
python - <<'EOF'
import datetime, json, pathlib, subprocess
def git(*args):
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
source = {"commit": git("rev-parse", "HEAD"), "uncommitted_changes": changed,
          "prepared": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
pathlib.Path(".carry/source.json").write_text(json.dumps(source, indent=1))
print(f"commit {source['commit']}, {len(changed)} tracked files with uncommitted changes")
EOF

echo "== size of what the device call carries (tracked + untracked-not-ignored files + .carry)"
python - "$LIMIT_MIB" <<'EOF'
import os, pathlib, subprocess, sys
limit = float(sys.argv[1]) * 2**20
listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                        capture_output=True, check=True).stdout.decode().split("\0")
tree = sum(os.path.getsize(p) for p in listed if p and os.path.isfile(p))
carry = sum(p.stat().st_size for p in pathlib.Path(".carry").rglob("*") if p.is_file())
total = tree + carry
print(f"working tree {tree / 2**20:.1f} MiB + .carry {carry / 2**20:.1f} MiB = {total / 2**20:.1f} MiB "
      f"(limit {limit / 2**20:.0f} MiB)")
if total > limit:
    raise SystemExit(f"error: {total / 2**20:.1f} MiB is over the device call's {limit / 2**20:.0f} MiB; "
                     "carry less (or move untracked files out of the checkout).")
EOF
echo "ready: call the device tool's run with carry [\".carry\"] and command: bash scripts/device_run.sh"
