"""scripts/record_cpu_runs.py: the book's recorded CPU runs write their artifacts with provenance, and resume."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from unet_tutorial.config import TrainConfig
from unet_tutorial.predictions import load_predictions


@pytest.fixture
def record_script(repo_root):
    spec = importlib.util.spec_from_file_location("record_cpu_runs", repo_root / "scripts" / "record_cpu_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny(name, runs):
    """The run's own data and split, with a network and a length small enough for a test."""
    dataset = "isbi2012" if name == "isbi2012" else "PhC-C2DH-U373"
    fields = dict(validation_folds=5, validation_fold=0) if dataset == "isbi2012" else dict(sequence="02",
                                                                                             validation_folds=1)
    return TrainConfig.preset("cpu-tiny", dataset=dataset, **fields, depth=2, base_filters=4, tile_size=60,
                              padding="valid", epochs=1, steps_per_epoch=2, output_dir=str(runs / name))


def test_every_run_plans_its_budget_and_scores_unseen_data(record_script, tmp_path):
    preset = TrainConfig.preset(record_script.PRESET)
    for name, (dataset, sequence, minutes) in record_script.RUNS.items():
        config = record_script.run_config(name, tmp_path)
        assert config.dataset == dataset and config.time_budget_s == minutes * 60
        if dataset == "isbi2012":  # slices 0-5 held out, as the book's Table 1 row says
            assert (config.validation_folds, config.validation_fold, config.tuning_block) == (5, 0, False)
            assert config.epochs == preset.epochs
        else:  # all frames of one sequence; the other is scored
            assert config.sequence == sequence and config.validation_folds == 1
            assert config.epochs == round(preset.epochs * minutes / record_script.PRESET_MINUTES)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("name", ["isbi2012", "PhC-C2DH-U373-02"])
def test_a_recorded_run_writes_metrics_history_predictions_and_provenance(record_script, shared_data, tmp_path,
                                                                        monkeypatch, name):
    monkeypatch.setattr(record_script, "run_config", _tiny)
    runs, out = tmp_path / "runs", tmp_path / "artifacts"
    out.mkdir()
    record_script.record(name, runs, out, tta=False)
    metrics = json.loads((out / "metrics.json").read_text())[name]
    provenance = json.loads((out / "provenance.json").read_text())[name]
    history = json.loads((out / f"history-{name}.json").read_text())
    assert {"command", "commit", "backend", "hardware", "training_minutes", "date", "config"} <= set(provenance)
    assert "cores" in provenance["hardware"] and provenance["resumed"] is False
    assert provenance["config"]["dataset"] == _tiny(name, runs).dataset
    assert history["epoch"] == [1] and len(history["minutes"]) == 1
    if name == "isbi2012":
        assert metrics["scored_images"] == [0, 1, 2, 3, 4, 5]  # the held-out block, never trained on
        assert 0.0 <= metrics["pixel_error"] <= 1.0 and metrics["warping_error"] is not None
        predictions = load_predictions(out / "predictions-isbi2012.npz")
    else:
        assert metrics["scored_sequence"] == "01"  # trained on 02
        assert 0.0 <= metrics["seg"] <= 1.0 and metrics["frames"] == len(metrics["scored_images"])
        predictions = load_predictions(out / f"predictions-{name}.npz")
    assert len(predictions.probabilities) == record_script.PREDICTION_IMAGES
    assert np.all((predictions.probabilities >= 0) & (predictions.probabilities <= 1))
    if name == "isbi2012":  # run again (once: scoring all frames of a CTC sequence twice costs minutes)
        record_script.record(name, runs, out, tta=False)  # the finished run is resumed, nothing trained, scored again
        assert json.loads((out / "provenance.json").read_text())[name]["resumed"] is True
        assert json.loads((out / f"history-{name}.json").read_text())["epoch"] == [1]
