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
    fields = dict(validation_folds=5, validation_fold=0, epochs=1) if dataset == "isbi2012" else dict(
        sequence="02", validation_folds=1, epochs=2, snapshot_minutes=1e-6)  # a snapshot after each epoch
    return TrainConfig.preset("cpu-tiny", dataset=dataset, **fields, depth=2, base_filters=4, tile_size=60,
                              padding="valid", steps_per_epoch=2, output_dir=str(runs / name))


def test_every_run_has_its_budget_and_scores_unseen_data(record_script, tmp_path):
    for name, (dataset, sequence, minutes) in record_script.RUNS.items():
        config = record_script.run_config(name, tmp_path)
        assert config.dataset == dataset and config.time_budget_s == minutes * 60
        if dataset == "isbi2012":  # slices 0-5 held out, as the book's Table 1 row says
            assert (config.validation_folds, config.validation_fold, config.tuning_block) == (5, 0, False)
            assert config.snapshot_minutes == 0  # scored each epoch instead
        else:  # all frames of one sequence; the other is scored, also for the curve of snapshots
            assert config.sequence == sequence and config.validation_folds == 1
            assert config.snapshot_minutes == record_script.SNAPSHOT_MINUTES > 0


def test_a_run_is_planned_from_the_measured_step_and_a_resumed_run_keeps_its_plan(record_script, tmp_path,
                                                                                  monkeypatch):
    from unet_tutorial import budget

    measured = []
    monkeypatch.setattr(budget, "seconds_per_step", lambda config: measured.append(config.dataset) or 0.2)
    config, step_seconds = record_script.planned_run("PhC-C2DH-U373-01", tmp_path)
    # its 30 minutes at 0.2 s a step and 3 % margin: 1800 / (1.03 * 0.2 * 50) = 175 epochs of 50 steps
    assert (step_seconds, config.epochs, config.time_budget_s) == (0.2, 175, 1800.0) and measured == ["PhC-C2DH-U373"]
    monkeypatch.setattr(budget, "seconds_per_step", lambda config: 1.0)  # a slower probe must not re-plan it
    assert record_script.planned_run("PhC-C2DH-U373-01", tmp_path)[0].epochs == 175 and len(measured) == 1
    with pytest.raises(ValueError, match="must be > 0"):
        budget.epochs_for_budget(config, 30.0, 0.0)


def test_planned_here_takes_a_given_step_time_and_keeps_the_epochs_of_a_run_started_without_a_plan(tmp_path,
                                                                                                  monkeypatch):
    import json

    from unet_tutorial import budget
    from unet_tutorial.config import TrainConfig

    monkeypatch.setattr(budget, "seconds_per_step", lambda config: pytest.fail("a given step time must not be re-measured"))
    config = TrainConfig.preset("cpu", output_dir=str(tmp_path / "given"))
    planned, step_seconds = budget.planned_here(config, 5.0, 0.15)
    assert (step_seconds, planned.epochs, planned.time_budget_s) == (0.15, 39, 300.0)  # 300 / (1.03 * 0.15 * 50)
    assert json.loads((tmp_path / "given" / "plan.json").read_text()) == {"seconds_per_step": 0.15, "epochs": 39}
    old = tmp_path / "old"  # a run started before plans were kept: its state.json holds its epochs
    old.mkdir()
    (old / "state.json").write_text(json.dumps({"config": {"epochs": 7}}))
    assert budget.planned_here(TrainConfig.preset("cpu", output_dir=str(old)), 5.0)[0].epochs == 7


def test_every_result_of_a_process_names_the_commit_it_started_from(monkeypatch):
    from unet_tutorial import provenance

    started = provenance.source()
    assert started == provenance.checked_out()  # nothing moved yet in this test process
    moved = {"commit": "2" * 40, "uncommitted_changes": ["unet_tutorial/train.py"], "from": "git"}
    monkeypatch.setattr(provenance, "checked_out", lambda: moved)  # the checkout moves on during a long run
    assert provenance.source() == started
    run = provenance.cpu_script_run()
    assert (run["commit"], run["uncommitted_changes"]) == (started["commit"], started["uncommitted_changes"])


def test_the_held_out_curve_scores_the_last_epoch_once(record_script, tmp_path, monkeypatch):
    from unet_tutorial import evaluate

    folder = tmp_path / "snapshots"
    folder.mkdir()
    # a snapshot after each epoch: the last one's minutes rounded down below the history's 0.025083
    (folder / "snapshots.json").write_text(json.dumps({"snapshot-0001.keras": 0.02, "snapshot-0002.keras": 0.025}))
    seg_of = {"snapshot-0001.keras": 0.7, "final": 0.8}  # no SEG for snapshot 2: scoring it fails the test
    monkeypatch.setattr(evaluate, "load_model", lambda path: path.name)
    monkeypatch.setattr(record_script, "score_ctc", lambda model, config, tta: ({"seg": seg_of[model]},))
    curve = record_script.held_out_curve(tmp_path, None, "final", 0.025083)
    assert curve["minutes"] == [0.02, 0.025] and curve["seg"] == [0.7, 0.8]  # snapshot 1, then the final network


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("name", ["isbi2012", "PhC-C2DH-U373-02"])
def test_a_recorded_run_writes_metrics_history_predictions_and_provenance(record_script, shared_data, tmp_path,
                                                                        monkeypatch, name):
    from unet_tutorial import provenance as provenance_module

    monkeypatch.setattr(record_script, "planned_run", lambda name, runs: (_tiny(name, runs), None))
    # the checkout moves on while a run trains: the provenance keeps the commit the process started from
    started_from = provenance_module.source()["commit"]
    monkeypatch.setattr(provenance_module, "checked_out", lambda: {"commit": "2" * 40, "uncommitted_changes": []})
    runs, out = tmp_path / "runs", tmp_path / "artifacts"
    out.mkdir()
    record_script.record(name, runs, out, tta=False)
    metrics = json.loads((out / "metrics.json").read_text())[name]
    provenance = json.loads((out / "provenance.json").read_text())[name]
    history = json.loads((out / f"history-{name}.json").read_text())
    assert {"command", "commit", "backend", "hardware", "training_minutes", "date", "config"} <= set(provenance)
    assert "cores" in provenance["hardware"] and provenance["resumed"] is False
    assert provenance["commit"] == started_from != "2" * 40
    assert provenance["config"]["dataset"] == _tiny(name, runs).dataset
    epochs = _tiny(name, runs).epochs
    assert history["epoch"] == list(range(1, epochs + 1)) and len(history["minutes"]) == epochs
    if name == "isbi2012":
        assert metrics["scored_images"] == [0, 1, 2, 3, 4, 5]  # the held-out block, never trained on
        assert 0.0 <= metrics["pixel_error"] <= 1.0 and metrics["warping_error"] is not None
        assert "held_out_curve" not in history  # its held-out score is in each epoch's row
        predictions = load_predictions(out / "predictions-isbi2012.npz")
    else:
        assert metrics["scored_sequence"] == "01"  # trained on 02
        assert 0.0 <= metrics["seg"] <= 1.0 and metrics["frames"] == len(metrics["scored_images"])
        curve = history["held_out_curve"]  # the snapshot after epoch 1, then the final network
        np.testing.assert_allclose(curve["minutes"], history["minutes"], atol=1e-3)
        assert curve["tta"] is False and curve["seg"][-1] == metrics["seg"]  # scored alike (this test: no TTA)
        assert all(0.0 <= seg <= 1.0 for seg in curve["seg"])
        predictions = load_predictions(out / f"predictions-{name}.npz")
    assert len(predictions.probabilities) == record_script.PREDICTION_IMAGES
    assert np.all((predictions.probabilities >= 0) & (predictions.probabilities <= 1))
    if name == "isbi2012":  # run again (once: scoring all frames of a CTC sequence twice costs minutes)
        record_script.record(name, runs, out, tta=False)  # the finished run is resumed, nothing trained, scored again
        assert json.loads((out / "provenance.json").read_text())[name]["resumed"] is True
        assert json.loads((out / f"history-{name}.json").read_text())["epoch"] == [1]


def test_seconds_per_step_times_real_steps_of_the_config():
    from unet_tutorial import budget

    config = TrainConfig.preset("cpu-tiny", dataset="circles", cell_targets="border-class", depth=2, base_filters=4,
                                tile_size=60, batch_size=2, steps_per_epoch=2)
    step = budget.seconds_per_step(config)
    assert 0.0 < step < 5.0


def test_a_probe_plans_from_the_mean_epoch_so_a_run_with_slow_epochs_fills_its_budget_and_no_more():
    from unet_tutorial import budget

    # the first 7 epochs of a recorded run on 2 shared cores: most take ~12.5 s, some ~21 s
    probe = np.cumsum([15.6, 13.0, 12.0, 12.0, 12.2, 21.5, 12.1])
    run_epochs = [13.0, 12.0, 12.0, 12.2, 21.5, 12.1] * 40  # the run goes on the same way
    config = TrainConfig.preset("cpu", dataset="PhC-C2DH-U373", steps_per_epoch=50)
    step = budget.epoch_mean_seconds(probe) / config.steps_per_epoch
    planned = budget.epochs_for_budget(config, 30.0, step)
    minutes = sum(run_epochs[:planned]) / 60
    assert 0.9 * 30.0 < minutes <= 30.0  # the planned epochs fit the budget and fill at least 90% of it
    assert budget.epoch_mean_seconds([10.0, 22.0, 34.0]) == 12.0
    with pytest.raises(ValueError, match="at least 2"):
        budget.epoch_mean_seconds([10.0])


def test_a_run_teaches_touching_cells_the_way_its_own_training_sequence_chose(record_script, tmp_path):
    study = tmp_path / "border_class_study.json"
    assert record_script.cell_targets("DIC-C2DH-HeLa", "01", study) == "gap"  # no study: the paper's way
    study.write_text(json.dumps({"DIC-C2DH-HeLa": {"01": {"chosen": "border-class"}, "02": {"chosen": None}}}))
    assert record_script.cell_targets("DIC-C2DH-HeLa", "01", study) == "border-class"
    assert record_script.cell_targets("DIC-C2DH-HeLa", "02", study) == "gap"  # no choice made for 02 (yet)
    assert record_script.cell_targets("PhC-C2DH-U373", "01", study) == "gap"


def test_the_recipe_study_plans_each_row_skips_finished_ones_redoes_and_checks_its_top_two(repo_root, tmp_path,
                                                                                            monkeypatch):
    from unet_tutorial import budget

    spec = importlib.util.spec_from_file_location("recipe_study", repo_root / "scripts" / "recipe_study.py")
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    # three rows of a tiny network on synthetic circles (the study's own base trains ISBI for minutes)
    monkeypatch.setattr(study, "BASE", dict(dataset="circles", validation_folds=3, validation_fold=0, tuning_block=True,
                                            depth=2, base_filters=4, tile_size=60, padding="valid", batch_size=2,
                                            optimizer="adam", learning_rate=1e-3, lr_schedule="cosine",
                                            elastic=False, steps_per_epoch=2))
    monkeypatch.setattr(study, "STEPS_PER_EPOCH", 2)
    monkeypatch.setattr(study, "ROWS", {"base": {}, "one-cycle": dict(lr_schedule="one-cycle"),
                                        "constant": dict(lr_schedule="constant")})
    monkeypatch.setattr(study, "TTA_ROWS", ())
    rand = {"base": 0.3, "one-cycle": 0.1, "constant": 0.2}
    monkeypatch.setattr(study, "score_tuning_block", lambda run_dir, tta: dict(
        pixel_error=0.1, rand_error=rand[run_dir.name], warping_error=0.01))
    measured = []
    monkeypatch.setattr(budget, "seconds_per_step", lambda config: measured.append(config.lr_schedule) or 0.3)
    out = tmp_path / "study"
    assert study.main(["--out", str(out), "--minutes", "0.1"]) == 0  # 6 s at 0.3 s a step: 6 / (1.03 * 0.3 * 2) -> 10 epochs
    table = json.loads((out / "study.json").read_text())
    assert [row["row"] for row in table["rows"]] == ["base", "one-cycle", "constant"]
    assert measured == ["cosine", "one-cycle", "constant"] and {row["seconds_per_step"] for row in table["rows"]} == {0.3}
    assert all(0 < row["steps"] <= 20 and row["steps"] % 2 == 0 for row in table["rows"])
    assert {row["commit"] for row in table["rows"]} == {table["provenance"]["commit"]}
    assert json.loads((out / "one-cycle" / "plan.json").read_text()) == {"seconds_per_step": 0.3, "epochs": 10}
    assert study.main(["--out", str(out), "--minutes", "0.1"]) == 0  # finished rows are not trained again
    assert len(measured) == 3 and len(json.loads((out / "study.json").read_text())["rows"]) == 3
    base = table["rows"][0]
    study.main(["--out", str(out), "--minutes", "0.1", "--redo", "base"])  # planned from what the row measured
    redone = {row["row"]: row for row in json.loads((out / "study.json").read_text())["rows"]}["base"]
    assert len(measured) == 3
    assert redone["seconds_per_step"] == pytest.approx(base["cpu_minutes"] * 60 / base["steps"], abs=1e-4)
    # the check trains the two rows with the lowest tuning Rand error again, at its own length
    long = tmp_path / "long"
    study.main(["--out", str(long), "--minutes", "0.2", "--check-top-of", str(out / "study.json")])
    checked = json.loads((long / "study.json").read_text())
    assert [row["row"] for row in checked["rows"]] == ["one-cycle", "constant"]
    assert checked["provenance"]["minutes_per_row"] == 0.2
    assert checked["provenance"]["checks_top_two_of"] == str(out / "study.json")
