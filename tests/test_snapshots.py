"""TrainConfig.snapshot_minutes: copies of the network for a held-out curve (callbacks.Snapshots)."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from unet_tutorial.callbacks import Snapshots, read_snapshots
from unet_tutorial.config import TrainConfig
from unet_tutorial.train import train


def test_snapshot_minutes_is_checked():
    assert TrainConfig().snapshot_minutes == 0.0  # none
    with pytest.raises(ValueError, match="snapshot_minutes"):
        TrainConfig(snapshot_minutes=-1.0)


def _network():
    return keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])


def _epochs(snapshots, history, seconds):
    """Epochs that end at these training seconds: Checkpoint's history row, then the snapshot callback."""
    for elapsed in seconds:
        history.setdefault("elapsed_seconds", []).append(elapsed)
        snapshots.on_epoch_end(len(history["elapsed_seconds"]) - 1)


def test_a_snapshot_each_time_training_passes_another_interval(tmp_path):
    history = {}
    snapshots = Snapshots(_network(), tmp_path, every_minutes=1.0, history=history)
    _epochs(snapshots, history, [50.0, 70.0, 130.0, 250.0, 260.0])
    # passes 1 min at 70 s, 2 min at 130 s, 3 and 4 min together at 250 s (one snapshot), nothing new at 260 s
    kept = read_snapshots(tmp_path)
    assert [(round(minutes * 60), path.name) for minutes, path in kept] == [
        (70, "snapshot-0001.keras"), (130, "snapshot-0002.keras"), (250, "snapshot-0004.keras")]
    assert all(path.is_file() for _, path in kept)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [
        "snapshot-0001.keras", "snapshot-0002.keras", "snapshot-0004.keras", "snapshots.json"]


def test_an_epoch_the_history_did_not_record_keeps_no_snapshot(tmp_path):
    history = {"elapsed_seconds": [50.0]}
    snapshots = Snapshots(_network(), tmp_path, every_minutes=1.0, history=history)
    snapshots.on_epoch_end(1)  # Checkpoint skipped epoch 2 (its loss diverged): no row for it
    assert read_snapshots(tmp_path) == []


def test_a_resumed_run_replaces_a_snapshot_its_checkpoint_did_not_reach(tmp_path):
    first = {}
    _epochs(Snapshots(_network(), tmp_path, every_minutes=1.0, history=first), first, [65.0, 130.0])  # then killed
    resumed = {"elapsed_seconds": [65.0, 115.0]}  # its last checkpoint: epoch 2 of another try, at 115 s
    _epochs(Snapshots(_network(), tmp_path, every_minutes=1.0, history=resumed), resumed, [135.0, 145.0])
    assert [(round(m * 60), p.name) for m, p in read_snapshots(tmp_path)] == [
        (65, "snapshot-0001.keras"), (135, "snapshot-0002.keras")]


def test_no_snapshots_read_as_an_empty_list(tmp_path):
    assert read_snapshots(tmp_path) == []


@pytest.mark.slow
def test_training_keeps_snapshots_that_load_and_predict(tmp_path):
    config = TrainConfig.preset(
        "cpu-tiny", dataset="circles", depth=2, tile_size=60, base_filters=4, batch_size=2, epochs=3,
        steps_per_epoch=2, validation_folds=1, elastic=False, snapshot_minutes=1e-6, output_dir=str(tmp_path / "run"),
    )
    history = train(config, verbose=0)
    kept = read_snapshots(tmp_path / "run")
    assert len(kept) == 3  # every epoch passes another (tiny) interval
    # each snapshot's minutes are its epoch's training minutes in the history
    np.testing.assert_allclose([m for m, _ in kept], np.array(history["elapsed_seconds"]) / 60, atol=1e-3)
    last = keras.saving.load_model(kept[-1][1], compile=False)
    final = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    tile = np.random.default_rng(0).random((1, 60, 60, 1)).astype("float32")
    np.testing.assert_allclose(last.predict(tile, verbose=0), final.predict(tile, verbose=0), atol=1e-6)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["config"]["snapshot_minutes"] == 1e-6
