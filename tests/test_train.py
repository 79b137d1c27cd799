"""Tests of training: learning, checkpoints, resume after SIGKILL, NaN stop, CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from unet_tutorial.train import (
    PRESETS,
    TrainConfig,
    TrainingDivergedError,
    config_from_args,
    held_out_split,
    train,
)

# A cpu-tiny-like run on synthetic circles: 2 levels, 8 channels, 92 -> 76 tiles.
TINY = dict(dataset="circles", depth=2, base_filters=8, tile_size=92, batch_size=2, steps_per_epoch=6, epochs=3)


def _tiny(tmp_path, **overrides):
    return TrainConfig.preset("cpu-tiny", **{**TINY, "output_dir": str(tmp_path / "run"), **overrides})


def test_a_few_steps_on_circles_lower_the_loss_and_the_held_out_error(tmp_path):
    history = train(_tiny(tmp_path), verbose=0)
    assert history["epoch"] == [1, 2, 3]
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    assert history["val_pixel_error"][-1] < 0.7 * history["initial_metrics"]["val_pixel_error"]
    run = tmp_path / "run"
    assert sorted(p.name for p in run.glob("*.keras")) == ["checkpoint-epoch0003.keras", "model.keras"]
    on_disk = json.loads((run / "history.json").read_text())
    assert on_disk["loss"] == history["loss"]
    rows = (run / "history.csv").read_text().splitlines()
    assert rows[0].split(",")[0] == "epoch" and len(rows) == 4


def test_on_device_augmentation_trains_in_the_step_and_keeps_the_plain_unet(tmp_path):
    """augment_method="device" (the default on a GPU): the same run, the augmentation inside the compiled step."""
    from unet_tutorial.evaluate import load_model

    history = train(_tiny(tmp_path, elastic=True, augment_method="device"), verbose=0)
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    assert history["val_pixel_error"][-1] < 0.7 * history["initial_metrics"]["val_pixel_error"]
    run = tmp_path / "run"
    state = json.loads((run / "state.json").read_text())
    assert state["augmented_on"] == "device"
    final = load_model(run / "model.keras")  # the U-Net alone, as every other run saves it
    assert final.name == "unet" and final.input_shape == (None, None, None, 1)
    resumed = train(dataclasses.replace(_tiny(tmp_path, elastic=True, augment_method="device"), epochs=4),
                    resume=True, verbose=0)
    assert resumed["epoch"] == [1, 2, 3, 4] and resumed["loss"][:3] == history["loss"]
    assert load_model(run / "checkpoint-epoch0004.keras").name == "unet_with_augmentation"  # the step's model


def test_held_out_images_are_never_trained_on():
    seen = []
    for fold in range(5):
        trained, held_out = held_out_split(30, 5, fold)
        assert len(held_out) == 6 and not set(trained) & set(held_out)
        assert np.all(np.diff(held_out) == 1)  # one contiguous block of slices
        seen += list(held_out)
    assert sorted(seen) == list(range(30))
    trained, held_out = held_out_split(30, 1, 0)
    assert len(trained) == 30 and len(held_out) == 0


def test_a_tuning_block_is_scored_and_the_held_out_block_left_alone(tmp_path, monkeypatch):
    import unet_tutorial.train as train_module

    sizes = []

    class Recording(train_module.SegmentationDataset):
        def __init__(self, images, *args, **kwargs):
            sizes.append(len(images))
            super().__init__(images, *args, **kwargs)

    monkeypatch.setattr(train_module, "SegmentationDataset", Recording)
    config = _tiny(tmp_path, epochs=2, steps_per_epoch=3, tuning_block=True, lr_schedule="cosine")
    history = train(config, verbose=0)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert sizes == [6]  # 10 circles images: 2 held out, 2 for tuning, 6 trained on
    assert state["held_out"] == [0, 1] and state["scored_each_epoch"] == [2, 3]
    assert len(history["val_pixel_error"]) == 2
    # the cosine schedule has run its course: 1 % of the starting learning rate after epochs x steps
    from unet_tutorial.evaluate import load_model

    optimizer = load_model(tmp_path / "run" / "model.keras", compile=True).optimizer
    assert int(optimizer.iterations) == 6
    assert float(optimizer.learning_rate) == pytest.approx(0.01 * config.learning_rate, rel=1e-3)


# The train command alone (``python -m unet_tutorial train ...`` wires the same two functions).
_TRAIN_MAIN = (
    "import argparse, sys; from unet_tutorial.train import add_train_arguments, run_train; "
    "parser = argparse.ArgumentParser(); add_train_arguments(parser); "
    "sys.exit(run_train(parser.parse_args(sys.argv[1:])))"
)


def _cli(*args):
    return [sys.executable, "-c", _TRAIN_MAIN, *args]


def test_a_killed_run_resumes_to_the_same_epochs_and_losses(tmp_path):
    """SIGKILL after the first checkpoint, resume: epochs 1..N once each, as if never killed."""
    epochs = 4
    output = tmp_path / "killed"
    options = [
        "--preset", "cpu-tiny", "--dataset", "circles", "--depth", "2", "--base-filters", "8",
        "--tile-size", "92", "--batch-size", "2", "--steps-per-epoch", "12", "--epochs", str(epochs),
        "--output", str(output), "--quiet",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(_cli(*options), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state_path = output / "state.json"
    deadline = time.monotonic() + 120
    while not state_path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()[-2000:]
    epoch_at_kill = json.loads(state_path.read_text())["epoch"]
    assert 1 <= epoch_at_kill < epochs, "the run finished before it could be killed; make the epochs longer"

    resumed = subprocess.run(_cli("--resume", "--output", str(output), "--quiet"), env=env, capture_output=True)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    history = json.loads((output / "history.json").read_text())
    assert history["epoch"] == list(range(1, epochs + 1))
    assert len(list(output.glob("checkpoint-epoch*.keras"))) == 1

    # The same run, never interrupted, in this process: the same losses.
    config = dataclasses.replace(
        TrainConfig(**json.loads(state_path.read_text())["config"]), output_dir=str(tmp_path / "whole")
    )
    whole = train(config, verbose=0)
    np.testing.assert_allclose(history["loss"], whole["loss"], rtol=1e-4)
    np.testing.assert_allclose(history["val_pixel_error"], whole["val_pixel_error"], rtol=1e-4, atol=1e-4)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(_tiny(tmp_path), resume=True, verbose=0)


def test_a_corrupt_checkpoint_is_a_clear_error_on_resume(tmp_path):
    config = _tiny(tmp_path, epochs=1, steps_per_epoch=1)
    train(config, verbose=0)
    run = tmp_path / "run"
    checkpoint = run / json.loads((run / "state.json").read_text())["checkpoint"]
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    with pytest.raises(ValueError, match="cannot be read.*truncated or damaged"):
        train(dataclasses.replace(config, epochs=2), resume=True, verbose=0)
    (run / "state.json").write_text("{not json")
    with pytest.raises(ValueError, match="state.json is corrupt"):
        train(dataclasses.replace(config, epochs=2), resume=True, verbose=0)


def test_resuming_with_another_config_is_refused(tmp_path):
    config = _tiny(tmp_path, epochs=1, steps_per_epoch=1)
    train(config, verbose=0)
    with pytest.raises(ValueError, match="learning_rate: saved 0.002, now 0.5"):
        train(dataclasses.replace(config, learning_rate=0.5, epochs=2), resume=True, verbose=0)


def test_a_nan_loss_stops_training_with_a_clear_message(tmp_path):
    config = _tiny(tmp_path, optimizer="sgd", learning_rate=1e30, epochs=2)
    with pytest.raises(TrainingDivergedError, match=r"loss became (nan|inf).*epoch 1, batch \d.*Lower the learning"):
        train(config, verbose=0)
    assert not (tmp_path / "run" / "state.json").exists()  # no checkpoint of a diverged model


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="distribution must be one of"):
        TrainConfig(distribution="model-parallel")
    with pytest.raises(ValueError, match="mixed_precision must be one of"):
        TrainConfig(mixed_precision="float8")
    with pytest.raises(ValueError, match="tile_size=570.*556 or 572"):
        TrainConfig(tile_size=570)
    with pytest.raises(ValueError, match="unknown preset"):
        TrainConfig.preset("huge")


def test_presets_follow_the_paper_where_they_say_so():
    paper = PRESETS["paper"]
    assert (paper.depth, paper.base_filters, paper.tile_size, paper.batch_size) == (5, 64, 572, 1)
    assert (paper.optimizer, paper.momentum, paper.padding, paper.w0, paper.sigma) == ("sgd", 0.99, "valid", 10.0, 5.0)
    assert PRESETS["colab"].mixed_precision == "mixed_float16"


def _parse(*argv):
    import argparse

    from unet_tutorial.train import add_train_arguments

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_maps_fields_onto_the_config():
    args = _parse("--preset", "cpu-tiny", "--learning-rate", "0.5", "--elastic", "true", "--output", "/tmp/x")
    config = config_from_args(args)
    assert config == dataclasses.replace(PRESETS["cpu-tiny"], learning_rate=0.5, elastic=True, output_dir="/tmp/x")


@pytest.mark.parametrize("argv", [["--no-such-field", "1"], ["--learning", "0.1"], ["--epochs", "many"]])
def test_cli_rejects_unknown_fields_and_bad_values(argv, capsys):
    with pytest.raises(SystemExit) as error:
        _parse(*argv)
    assert error.value.code == 2
    message = capsys.readouterr().err
    assert argv[0] in message or "invalid int value: 'many'" in message


@pytest.mark.slow
@pytest.mark.integration
def test_cpu_tiny_on_isbi_lowers_the_held_out_pixel_error(tmp_path, shared_data):
    """The cpu-tiny preset on real ISBI slices (fold 0 held out): the held-out error drops clearly."""
    started = time.perf_counter()
    history = train(TrainConfig.preset("cpu-tiny", output_dir=str(tmp_path / "isbi")), data_dir=shared_data, verbose=0)
    start, end = history["initial_metrics"]["val_pixel_error"], history["val_pixel_error"][-1]
    print(f"cpu-tiny ISBI held-out pixel error {start:.4f} -> {end:.4f} in {time.perf_counter() - started:.1f} s")
    assert end < 0.8 * start


def test_shared_run_dir_names_a_folder_after_the_settings(tmp_path):
    from unet_tutorial.train import shared_run_dir

    tiny = PRESETS["cpu-tiny"]
    folder = shared_run_dir(tiny, root=tmp_path)
    assert folder.startswith(str(tmp_path))
    assert shared_run_dir(dataclasses.replace(tiny, output_dir="elsewhere"), root=tmp_path) == folder
    assert shared_run_dir(dataclasses.replace(tiny, seed=1), root=tmp_path) != folder
    assert shared_run_dir(dataclasses.replace(tiny, dataset="DIC-C2DH-HeLa"), root=tmp_path) != folder


def test_border_class_targets_train_a_three_class_network_whose_cells_come_back(tmp_path):
    """cell_targets="border-class": 3 output classes, labels from weights.border_class_labels, cells by cells_from_classes."""
    import unet_tutorial.train as train_module
    from unet_tutorial import metrics
    from unet_tutorial.evaluate import load_model
    from unet_tutorial.tiling import predict_tiled

    config = _tiny(tmp_path, cell_targets="border-class", epochs=10, learning_rate=5e-3)
    images, labels, instances, _ = train_module._load_data(config)
    assert set(np.unique(labels)) == {0, 1, 2} and instances.max() > 1
    history = train(config, verbose=0)
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    model = load_model(tmp_path / "run" / "model.keras")
    assert model.output_shape[-1] == 3
    probabilities = predict_tiled(model, images[0], tile_size=92)  # image 0 is held out
    cells = metrics.cells_from_classes(probabilities)
    assert metrics.iou(cells > 0, instances[0] > 0, n_classes=2)[1] > 0.8
    assert metrics.seg_score(cells, instances[0]) > 0.5  # cells, not only cell pixels


def test_border_class_targets_need_instance_masks():
    with pytest.raises(ValueError, match="cell_targets='border-class' needs instance masks"):
        TrainConfig(dataset="isbi2012", cell_targets="border-class")
    with pytest.raises(ValueError, match="TrainConfig.cell_targets must be one of"):
        TrainConfig(dataset="circles", cell_targets="rings")


def _rate(schedule, step):
    return float(schedule(step)) if callable(schedule) else float(schedule)


@pytest.mark.parametrize("name", ["constant", "cosine", "one-cycle"])
def test_learning_rate_schedules_have_their_shapes(name):
    from unet_tutorial.train import learning_rate_schedule

    config = TrainConfig(learning_rate=1e-3, lr_schedule=name, epochs=10, steps_per_epoch=10)  # 100 steps
    rates = [_rate(learning_rate_schedule(config), step) for step in range(101)]
    if name == "constant":
        assert rates == pytest.approx([1e-3] * 101)
        return
    assert rates[-1] == pytest.approx(1e-5, rel=1e-3)  # both end at 1 % of the rate
    assert all(later <= earlier + 1e-12 for earlier, later in zip(rates[30:], rates[31:]))  # decays after the peak
    if name == "cosine":
        assert rates[0] == pytest.approx(1e-3)
        assert rates[50] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5), rel=1e-3)  # half-way down the cosine
    else:  # a linear rise from 1/25 of the peak over the first 30 steps, then the cosine decay
        assert rates[0] == pytest.approx(1e-3 / 25)
        assert rates[15] == pytest.approx((1e-3 / 25 + 1e-3) / 2, rel=1e-3)
        assert max(rates) == pytest.approx(1e-3) and rates.index(max(rates)) == 30
        assert rates[65] == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5), rel=1e-3)


def test_adamw_decays_the_weights_and_adam_does_not(tmp_path):
    from unet_tutorial.train import _build_and_compile

    for name, decay in [("adam", None), ("adamw", 0.004)]:
        model = _build_and_compile(_tiny(tmp_path, optimizer=name), channels=1)
        assert type(model.optimizer).__name__.lower() == name
        assert model.optimizer.weight_decay == decay


def test_a_one_cycle_adamw_run_learns(tmp_path):
    history = train(_tiny(tmp_path, optimizer="adamw", lr_schedule="one-cycle"), verbose=0)
    assert history["loss"][-1] < 0.8 * history["loss"][0]
