"""TrainConfig.time_budget_s: training stops cleanly at an epoch boundary (callbacks.TimeBudget)."""

from __future__ import annotations

import json

import keras
import pytest

from unet_tutorial.callbacks import TimeBudget
from unet_tutorial.config import TrainConfig
from unet_tutorial.train import train


def test_time_budget_is_checked():
    assert TrainConfig().time_budget_s == 0.0  # no budget
    with pytest.raises(ValueError, match="time_budget_s"):
        TrainConfig(time_budget_s=-1.0)


def test_the_budget_predicts_the_next_epoch_from_the_longest(monkeypatch):
    import unet_tutorial.callbacks as callbacks

    budget = TimeBudget(10.0, started=100.0)
    budget.set_model(keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)]))
    budget.model.stop_training = False
    clock = iter([101.0, 104.0, 104.0, 107.5])  # epoch 1 from 101 to 104 s, epoch 2 from 104 to 107.5 s
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    budget.on_epoch_begin(0)
    budget.on_epoch_end(0)  # 4 s used + longest epoch 3 s = 7 <= 10: go on
    assert not budget.model.stop_training
    budget.on_epoch_begin(1)
    budget.on_epoch_end(1)  # 7.5 s used + longest 3.5 s = 11 > 10: stop here
    assert budget.model.stop_training and budget.stopped_after == 2


@pytest.mark.slow
def test_training_stops_at_an_epoch_boundary_and_keeps_its_checkpoint(tmp_path):
    config = TrainConfig.preset(
        "cpu-tiny", dataset="circles", depth=2, tile_size=60, base_filters=4, batch_size=2, epochs=50,
        steps_per_epoch=2, validation_folds=1, elastic=False, time_budget_s=1e-3, output_dir=str(tmp_path / "run"),
    )
    history = train(config, verbose=0)  # returns normally
    assert history["epoch"] == [1]  # the first epoch always finishes; the next would pass the budget
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["epoch"] == 1 and (tmp_path / "run" / state["checkpoint"]).is_file()
    resumed = train(TrainConfig(**{**state["config"], "time_budget_s": 0.0, "epochs": 2}), resume=True, verbose=0)
    assert resumed["epoch"] == [1, 2]  # a different budget does not stop a resume


@pytest.mark.slow
def test_the_budget_counts_the_training_before_a_resume(tmp_path):
    config = TrainConfig.preset(
        "cpu-tiny", dataset="circles", depth=2, tile_size=60, base_filters=4, batch_size=2, epochs=2,
        steps_per_epoch=2, validation_folds=1, elastic=False, output_dir=str(tmp_path / "run"),
    )
    train(config, verbose=0)
    state_path = tmp_path / "run" / "state.json"
    state = json.loads(state_path.read_text())
    state["history"]["elapsed_seconds"] = [500.0, 1000.0]  # as if each epoch had taken 500 s
    state["elapsed_seconds"] = 1000.0
    state_path.write_text(json.dumps(state))

    def resume(budget):
        return train(TrainConfig(**{**state["config"], "time_budget_s": budget, "epochs": 6}), resume=True, verbose=0)

    assert resume(1400.0)["epoch"] == [1, 2]  # 1000 s used + a 500 s epoch > 1400: nothing more to train
    # 1000 s + 500 s < 1500.5 s: one more epoch fits; after it (loading and training take more than 0.5 s)
    # the next would not
    assert resume(1500.5)["epoch"] == [1, 2, 3]
    assert resume(1500.5)["epoch"] == [1, 2, 3]  # used up: a resume trains no more
    assert resume(0.0)["epoch"] == [1, 2, 3, 4, 5, 6]  # no budget: to the planned end
