"""Tests of the benchmark (unet_tutorial.bench)."""

from __future__ import annotations

import argparse
import dataclasses
import json

import keras
import pytest

from unet_tutorial.bench import add_bench_arguments, bench, conv_flops, run_bench
from unet_tutorial.model import build_unet
from unet_tutorial.train import TrainConfig

TINY = TrainConfig(depth=2, base_filters=4, tile_size=60, batch_size=2, dropout=0.0, elastic=False)


def test_conv_flops_counts_two_flops_per_multiply_add():
    """A one-convolution model: 2 * k * k * c_in * c_out * h_out * w_out."""
    inputs = keras.Input((10, 10, 3))
    outputs = keras.layers.Conv2D(5, 3, padding="valid")(inputs)
    assert conv_flops(keras.Model(inputs, outputs)) == 2 * 3 * 3 * 3 * 5 * 8 * 8
    up = keras.layers.Conv2DTranspose(4, 2, strides=2)(inputs)  # every input pixel: 2x2x4 outputs from 3 inputs
    assert conv_flops(keras.Model(inputs, up)) == 2 * 2 * 2 * 4 * 3 * 10 * 10


def test_the_paper_network_costs_about_300_gflop_per_572_tile():
    """Summed by hand from Fig. 1: ~145 GFLOP down the contracting path, ~155 back up."""
    flops = conv_flops(build_unet())
    assert 295e9 < flops < 305e9


def test_bench_reports_the_three_figures(capsys, tmp_path):
    result = bench(TINY, steps=2, warmup=1, device_augment=False)
    for figure in (result.train_images_per_s, result.inference_images_per_s, result.pipeline_images_per_s):
        assert figure > 0
    assert result.output_size == 44 and result.batch_size == 2 and result.backend == keras.backend.backend()
    # achieved TFLOP/s follow from the FLOP count and the measured rates
    assert result.train_tflops_per_s == pytest.approx(3 * result.forward_gflops_per_image * result.train_images_per_s / 1e3)

    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    args = parser.parse_args(["--preset", "cpu-tiny", "--steps", "1", "--warmup", "0", "--batch-size", "1",
                              "--input-size", "60", "--json", str(tmp_path / "bench.json"), "--pipeline-batches", "3",
                              "--workers", "2"])
    assert run_bench(args) == 0
    printed = capsys.readouterr().out
    for words in ("training:", "inference:", "pipeline:", "images/s", "TFLOP/s", "GFLOP per image", "new/old =",
                  "reference warp (scipy)", "with 2 worker(s)", "16 cores", "on-device augmentation:", "% of a train step",
                  "bound: training is limited by the"):
        assert words in printed
    saved = json.loads((tmp_path / "bench.json").read_text())
    assert saved["input_size"] == 60 and saved["pipeline_batches"] == 3 and saved["pipeline_workers"] == 2
    assert saved["pipeline_speedup"] == pytest.approx(saved["pipeline_images_per_s"] / saved["pipeline_reference_images_per_s"])
    assert saved["device_augment_fraction"] == pytest.approx(saved["train_images_per_s"] / saved["device_augment_images_per_s"])
    assert saved["limit"] in ("input pipeline", "network")


def test_the_bound_is_the_slower_of_network_and_pipeline():
    result = bench(TINY, steps=1, warmup=0, pipeline_batches=2, device_augment=False)
    slow_pipeline = dataclasses.replace(result, pipeline_images_per_s_workers=result.train_images_per_s / 2)
    fast_pipeline = dataclasses.replace(result, pipeline_images_per_s_workers=result.train_images_per_s * 2)
    assert slow_pipeline.limit == "input pipeline" and fast_pipeline.limit == "network"
    assert "limited by the input pipeline" in slow_pipeline.format()
    with pytest.raises(ValueError, match="pipeline_batches >= 1 and workers >= 1"):
        bench(TINY, workers=-1)


def test_bench_names_the_nearest_valid_sizes():
    with pytest.raises(ValueError, match="input_size=570.*556 or 572"):
        bench("paper", input_size=570)
    with pytest.raises(ValueError, match="dtype_policy must be one of"):
        bench(TINY, dtype_policy="float8")
