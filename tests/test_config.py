"""Tests of the run's configuration (unet_tutorial.config) and of the held-out split (unet_tutorial.splits).

Each rule has one home: these tests pin that every caller goes through it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from unet_tutorial import config, config_cli, splits
from unet_tutorial.config import AugmentConfig, TileConfig, TrainConfig, WeightMapConfig


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("dropout", 1.5, r"TrainConfig.dropout must lie in \[0.0, 1.0\), got 1.5"),
        ("momentum", -0.1, r"TrainConfig.momentum must lie in \[0.0, 1.0\)"),
        ("w0", -1.0, r"WeightMapConfig.w0 must lie in \[0.0, inf\], got -1.0"),
        ("sigma", 0.0, r"WeightMapConfig.sigma must lie in \(0.0, inf\]"),
        ("elastic_sigma", -2.0, r"AugmentConfig.elastic_sigma must lie in \[0.0, inf\]"),
        ("sequence", "03", r"TrainConfig.sequence must be one of \('01', '02', 'both'\), got '03'"),
        ("dataset", "mnist", r"TrainConfig.dataset must be one of .*isbi2012.*circles"),
        ("depth", 0, r"TileConfig.depth must lie in \[1, inf\], got 0"),
        ("tile_size", 570, r"tile_size=570 is not a valid input size.*572"),
    ],
)
def test_a_bad_field_fails_when_the_config_is_made_and_names_field_value_and_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{field: value})


@pytest.mark.parametrize("field, value", [("tile_size", "572"), ("epochs", 2.5), ("augment", "yes"), ("depth", True)])
def test_a_field_of_the_wrong_type_is_refused(field, value):
    with pytest.raises(TypeError, match=f"TrainConfig.{field} must be of type"):
        TrainConfig(**{field: value})


def test_an_int_where_a_float_is_asked_for_becomes_a_float():
    made = TrainConfig(learning_rate=1, w0=10)
    assert isinstance(made.learning_rate, float) and isinstance(made.w0, float)


def test_the_parts_of_a_config_are_its_own_fields():
    made = TrainConfig.preset("cpu-tiny", elastic_sigma=7.0, w0=3.0, flip=False)
    assert made.tiles == TileConfig(132, 3, "valid")
    assert made.tiles.output_size == 92 and made.tiles.border == 20
    assert made.augmentation == AugmentConfig(enabled=True, elastic=False, elastic_sigma=7.0, flip=False)
    assert made.weighting == WeightMapConfig(w0=3.0, sigma=5.0, class_balance=True)
    assert made.augmentation.sample_options() == dict(elastic=False, flip=False, rotate=True, intensity=True,
                                                       grid=3, sigma=7.0, method="auto")


def test_the_whole_image_tile_covers_the_image_with_one_output():
    for depth, padding in ((5, "valid"), (3, "valid"), (2, "same")):
        tile = TileConfig.whole_image((512, 512), depth, padding)
        assert tile.output_size >= 512
        smaller = [t for t in range(8, tile.tile_size) if _valid(t, depth, padding)]
        assert all(TileConfig(t, depth, padding).output_size < 512 for t in smaller)


def _valid(size, depth, padding):
    try:
        TileConfig(size, depth, padding)
    except ValueError:
        return False
    return True


def test_overrides_are_read_like_the_train_command_line_reads_them():
    made, overrides = config_cli.config_from_overrides("cpu-tiny", ["elastic=false", "learning-rate=0.5", "epochs=3"])
    assert overrides == {"elastic": False, "learning_rate": 0.5, "epochs": 3}
    assert made == TrainConfig.preset("cpu-tiny", elastic=False, learning_rate=0.5, epochs=3)
    parser = argparse.ArgumentParser()
    config_cli.add_train_arguments(parser)
    from_cli = config_cli.config_from_args(parser.parse_args(
        ["--preset", "cpu-tiny", "--elastic", "false", "--learning-rate", "0.5", "--epochs", "3"]))
    assert from_cli == made
    for bad, message in ((["epochs=abc"], "epochs"), (["speed=3"], "unknown TrainConfig field 'speed'"),
                         (["epochs"], "FIELD=VALUE"), (["dataset=isbi2012"], "set by the run itself")):
        with pytest.raises(ValueError, match=message):
            config_cli.config_from_overrides("cpu-tiny", bad, reserved=("dataset",))


def test_held_out_split_is_contiguous_blocks_and_the_other_callers_agree():
    train_ids, held_out = splits.held_out_split(30, 5, 0)
    assert held_out.tolist() == [0, 1, 2, 3, 4, 5] and train_ids.tolist() == list(range(6, 30))
    assert splits.held_out_split(30, 1, 0)[1].size == 0
    for fold in range(5):
        held_out = splits.held_out_split(30, 5, fold)[1]
        assert splits.select_images(30, fold=fold, folds=5)[0].tolist() == held_out.tolist()
        saved = {"dataset": "isbi2012", "validation_folds": 5, "validation_fold": fold}
        assert splits.trained_indices(saved, "isbi2012", "01", 30) == set(range(30)) - set(held_out.tolist())
    with pytest.raises(ValueError, match="at most 4"):
        splits.held_out_split(4, 5, 0)
    assert splits.other_sequence("01") == "02" and splits.other_sequence("02") == "01"


def test_a_tuning_block_is_set_aside_next_to_the_held_out_block():
    trained, scored, held_out = splits.run_split(30, 5, 0, tuning_block=True)
    assert held_out.tolist() == list(range(6)) and scored.tolist() == list(range(6, 12))
    assert trained.tolist() == list(range(12, 30))
    trained, scored, held_out = splits.run_split(30, 5, 4, tuning_block=True)  # the last block wraps round
    assert held_out.tolist() == list(range(24, 30)) and scored.tolist() == list(range(6))
    trained, scored, held_out = splits.run_split(30, 5, 0)  # without: the held-out block is scored
    assert scored.tolist() == held_out.tolist() == list(range(6)) and trained.tolist() == list(range(6, 30))
    saved = {"dataset": "isbi2012", "validation_folds": 5, "validation_fold": 0, "tuning_block": True}
    assert splits.trained_indices(saved, "isbi2012", "01", 30) == set(range(12, 30))
    assert splits.held_out_files([f"f{i:02d}" for i in range(10)], 5, 0, tuning_block=True) == (
        [f"f{i:02d}" for i in range(4, 10)], ["f00", "f01"])
    with pytest.raises(ValueError, match="tuning_block needs validation_folds >= 3"):
        TrainConfig(tuning_block=True, validation_folds=2)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")


def test_the_command_line_starts_without_keras():
    code = ("import sys; from unet_tutorial.__main__ import main\n"
            "for argv in (['--help'], ['train', '--help'], ['evaluate', '--help'], ['bench', '--help'], ['fetch', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "loaded = sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules)\n"
            "print('LOADED', loaded)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED []" in result.stdout


def test_the_paper_preset_names_where_it_departs_from_the_paper_and_offers_its_cheap_choices():
    import inspect

    paper = config.PRESETS["paper"]
    assert paper.upconv_init == "paper" and paper.class_balance_over == "training-set"
    source = inspect.getsource(config)
    for departure in ("6 of the 30 ISBI slices", "learning rate", "Flips, 90-degree rotations", "mean over pixels"):
        assert departure in source
    with pytest.raises(ValueError, match="class_balance_over must be one of"):
        TrainConfig(class_balance_over="batch")
    with pytest.raises(ValueError, match="upconv_init must be one of"):
        TrainConfig(upconv_init="zeros")
