"""Make the small artifacts of chapter 9: a short real U-Net run on ISBI-2012.

Trains a small U-Net (depth 3, 16 base filters) on ISBI-2012 training slices
0-19 for a few minutes on a CPU, then predicts the held-out slices 20-29 with
overlap-tile inference and stores

* ``isbi_heldout_membrane.npz``: the package's prediction format
  (``predictions.save_predictions`` with ``compact=True``): ``probabilities``
  (10, 512, 512) uint8, P(membrane) (channel 0 of the softmax) in steps of 1/255,
  ``slices`` (10,) the indices of the slices in the training stack, and
  ``metadata`` (what made them). The images and labels are NOT stored: the
  ISBI terms forbid re-hosting; the chapter loads them from the dataset;
* ``history.json``: per-epoch training and validation loss/accuracy (Keras
  ``History.history`` layout: one list per metric);
* ``provenance.json``: command, commit, backend, hardware, versions, date, time.

Departures from the paper (to fit a CPU and a few minutes): a smaller network,
Adam instead of SGD with momentum 0.99, 188x188 input tiles, batch 4.

Run from the repository root:
    UNET_TUTORIAL_DATA=../shared/data python book/artifacts/chapter9/make_predictions.py
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np

from unet_tutorial import build_unet, datasets, losses, tiling
from unet_tutorial.config import AugmentConfig, TileConfig
from unet_tutorial.files import write_json_atomic
from unet_tutorial.predictions import save_predictions

HERE = pathlib.Path(__file__).resolve().parent
TRAIN_SLICES = list(range(0, 20))
HELDOUT_SLICES = list(range(20, 30))
TILE, DEPTH, FILTERS = 188, 3, 16
TIME_BUDGET_S = float(os.environ.get("CHAPTER9_TIME_BUDGET_S", 420))
MAX_EPOCHS = 60
PREDICTIONS = "isbi_heldout_membrane.npz"
# Stored with the probabilities (the provenance.json beside them has the rest).
METADATA = {"source": "isbi2012 train-volume", "probability": "P(membrane), channel 0 of the softmax",
            "model": f"U-Net depth {DEPTH}, {FILTERS} base filters, {TILE}x{TILE} tiles",
            "training_slices": TRAIN_SLICES, "tta": False, "made_by": "book/artifacts/chapter9/make_predictions.py"}


class _TimeBudget(keras.callbacks.Callback):
    """Stop after the epoch in which the wall-clock budget runs out."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds, self.start = seconds, time.time()

    def on_epoch_end(self, epoch, logs=None):
        if time.time() - self.start > self.seconds:
            self.model.stop_training = True


def _grid_tiles(dataset) -> tuple:
    """(x, y, w) of fixed, unaugmented tiles whose outputs cover every held-out image on a grid."""
    t, samples = dataset.output_size, []
    for i, label in enumerate(dataset.labels):
        height, width = label.shape
        rows = sorted({min(r, height - t) for r in range(0, height, t)})
        cols = sorted({min(c, width - t) for c in range(0, width, t)})
        samples += [dataset.tile(i, r, c) for r in rows for c in cols]
    return tuple(np.stack(parts) for parts in zip(*samples))


def main() -> int:
    start = time.time()
    keras.utils.set_random_seed(0)
    data = datasets.load_isbi2012()
    tiles = TileConfig(TILE, DEPTH)
    train = datasets.SegmentationDataset(
        data.images[TRAIN_SLICES], data.labels[TRAIN_SLICES], tiles=tiles, batch_size=4, tiles_per_epoch=32, seed=0)
    val = _grid_tiles(datasets.SegmentationDataset(
        data.images[HELDOUT_SLICES[:2]], data.labels[HELDOUT_SLICES[:2]], tiles=tiles,
        augmentation=AugmentConfig(enabled=False)))
    model = build_unet(input_shape=(TILE, TILE, 1), base_filters=FILTERS, depth=DEPTH, dropout=0.0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.WeightedCrossEntropy(),
                  weighted_metrics=["accuracy"])
    history = model.fit(train, validation_data=val, validation_batch_size=8, epochs=MAX_EPOCHS, verbose=2,
                        callbacks=[_TimeBudget(TIME_BUDGET_S)])
    train_s = time.time() - start

    membrane = np.stack([tiling.predict_tiled(model, data.images[i], batch_size=8)[..., 0] for i in HELDOUT_SLICES])
    save_predictions(HERE / PREDICTIONS, np.clip(membrane, 0, 1), HELDOUT_SLICES, compact=True, **METADATA)
    hist = {k: [float(v) for v in values] for k, values in history.history.items()}
    write_json_atomic(HERE / "history.json", hist)

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    provenance = {
        "command": "UNET_TUTORIAL_DATA=../shared/data python book/artifacts/chapter9/make_predictions.py",
        "commit": commit,
        "backend": keras.backend.backend(),
        "versions": {"keras": keras.__version__, "numpy": np.__version__, "python": platform.python_version()},
        "hardware": f"CPU only, {os.cpu_count()} cores ({platform.processor() or platform.machine()}), shared machine",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": round(time.time() - start, 1),
        "train_time_s": round(train_s, 1),
        "epochs": len(hist["loss"]),
        "model": {"tile_size": TILE, "depth": DEPTH, "base_filters": FILTERS, "dropout": 0.0,
                  "parameters": int(model.count_params())},
        "training": {"slices": TRAIN_SLICES, "tiles_per_epoch": 32, "batch_size": 4, "optimizer": "Adam(1e-3)",
                     "loss": "WeightedCrossEntropy with the Eq. 2 weight map (w0=10, sigma=5)",
                     "augmentation": "elastic, flips, rotations, grey values (augment.augment_sample)"},
        "heldout_slices": HELDOUT_SLICES,
        "files": {PREDICTIONS: "P(membrane) of the held-out slices, predictions.save_predictions(compact=True): "
                               "uint8 steps of 1/255",
                  "history.json": "per-epoch loss/accuracy, Keras History layout"},
    }
    write_json_atomic(HERE / "provenance.json", provenance)
    print(json.dumps(provenance, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
