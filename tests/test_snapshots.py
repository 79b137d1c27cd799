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


def test_a_snapshot_each_time_training_passes_another_interval(tmp_path, monkeypatch):
    import unet_tutorial.callbacks as callbacks

    clock = iter([0.0, 50.0, 70.0, 130.0, 250.0, 260.0])  # started at 0; epochs end at 50, 70, 130, 250, 260 s
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    snapshots = Snapshots(_network(), tmp_path, every_minutes=1.0, elapsed_before=0.0)
    for epoch in range(5):
        snapshots.on_epoch_end(epoch)
    # passes 1 min at 70 s, 2 min at 130 s, 3 and 4 min together at 250 s (one snapshot), nothing new at 260 s
    kept = read_snapshots(tmp_path)
    assert [(round(minutes * 60), path.name) for minutes, path in kept] == [
        (70, "snapshot-0001.keras"), (130, "snapshot-0002.keras"), (250, "snapshot-0004.keras")]
    assert all(path.is_file() for _, path in kept)
    assert sorted(p.name for p in (tmp_path / "snapshots").iterdir()) == [
        "snapshot-0001.keras", "snapshot-0002.keras", "snapshot-0004.keras", "snapshots.json"]


def test_a_resumed_run_replaces_a_snapshot_its_checkpoint_did_not_reach(tmp_path, monkeypatch):
    import unet_tutorial.callbacks as callbacks

    clock = iter([0.0, 65.0, 130.0])  # the first run: snapshots at 65 s and 130 s, then it is killed
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    first = Snapshots(_network(), tmp_path, every_minutes=1.0, elapsed_before=0.0)
    first.on_epoch_end(0)
    first.on_epoch_end(1)
    clock = iter([0.0, 20.0, 30.0])  # resumed from its checkpoint at 115 s: passes 2 min again at 135 s
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    resumed = Snapshots(_network(), tmp_path, every_minutes=1.0, elapsed_before=115.0)
    resumed.on_epoch_end(2)
    resumed.on_epoch_end(3)  # 145 s: nothing new
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
    # each snapshot's minutes are the training minutes at the end of its epoch
    np.testing.assert_allclose([m for m, _ in kept], np.array(history["elapsed_seconds"]) / 60, atol=0.01)
    last = keras.saving.load_model(kept[-1][1], compile=False)
    final = keras.saving.load_model(tmp_path / "run" / "model.keras", compile=False)
    tile = np.random.default_rng(0).random((1, 60, 60, 1)).astype("float32")
    np.testing.assert_allclose(last.predict(tile, verbose=0), final.predict(tile, verbose=0), atol=1e-6)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["config"]["snapshot_minutes"] == 1e-6
