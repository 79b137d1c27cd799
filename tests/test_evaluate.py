"""Tests for the evaluate / predict command line (paper Tables 1 and 2)."""

from __future__ import annotations

import argparse
import csv
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from unet_tutorial import evaluate, metrics, predictions


def _parse(add_arguments, argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def _evaluate(argv, capsys):
    code = evaluate.run_evaluate(_parse(evaluate.add_evaluate_arguments, argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ----------------------------------------------------------------------------- pieces
def test_select_slices_parses_lists_and_folds_like_training():
    from unet_tutorial.train import held_out_split

    indices, description = evaluate.select_slices(30, slices="4, 2,2")
    assert indices.tolist() == [2, 4] and "2,4" in description
    for fold in range(5):
        indices, description = evaluate.select_slices(30, fold=fold, folds=5)
        assert indices.tolist() == held_out_split(30, 5, fold)[1].tolist()
        assert f"fold {fold} of 5" in description
    assert evaluate.select_slices(7)[0].tolist() == list(range(7))
    for bad in (dict(slices="30"), dict(slices="a,b"), dict(slices="-1"), dict(fold=5, folds=5),
                dict(slices="1", fold=0)):
        with pytest.raises(ValueError):
            evaluate.select_slices(30, **bad)


@pytest.mark.parametrize("suffix", [".npz", ".tif"])
def test_probabilities_round_trip_atomically(tmp_path, suffix):
    rng = np.random.default_rng(0)
    probabilities = rng.random((3, 8, 9, 2)).astype(np.float32)
    path = predictions.save_predictions(tmp_path / f"p{suffix}", probabilities, slices=[4, 5, 9])
    loaded, slices, _ = predictions.load_predictions(path)
    np.testing.assert_array_equal(loaded, probabilities)
    if suffix == ".npz":
        assert slices.tolist() == [4, 5, 9]
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary file left behind


def test_probability_files_are_checked(tmp_path):
    with pytest.raises(FileNotFoundError, match="predict"):
        predictions.load_predictions(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="npz or .tif"):
        predictions.save_predictions(tmp_path / "p.png", np.zeros((1, 4, 4)))
    np.savez(tmp_path / "logits.npz", probabilities=np.full((1, 4, 4), 3.0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        predictions.load_predictions(tmp_path / "logits.npz")


def test_tables_hold_the_paper_row_and_ours_in_every_format():
    scores = metrics.ISBIScores(
        pixel_error=0.1, pixel_error_threshold=0.5, pixel_mismatch=0.2, pixel_mismatch_threshold=0.5,
        rand_error=0.25, rand_error_threshold=0.4, warping_error=0.002, warping_error_threshold=0.6,
        v_rand=0.75, v_info=0.8, v_info_threshold=0.5, v_rand_threshold=0.4, thresholds=(0.4, 0.5, 0.6), n_slices=6)
    rows = evaluate.table1_rows(scores, "ISBI-2012 training slices 0-5")
    text = evaluate.format_table(rows, evaluate.TABLE1_COLUMNS)
    assert "0.000353" in text and "0.0382" in text and "0.0611" in text and "slices 0-5" in text
    markdown = evaluate.format_table(rows, evaluate.TABLE1_COLUMNS, "markdown")
    assert markdown.count("\n") == 4 and markdown.startswith("| Model | Warping error | Rand error | Pixel error")
    parsed = list(csv.DictReader(io.StringIO(evaluate.format_table(rows, evaluate.TABLE1_COLUMNS, "csv"))))
    assert float(parsed[0]["warping_error"]) == 0.000353 and parsed[0]["v_rand"] == ""
    assert float(parsed[1]["rand_error"]) == 0.25 and float(parsed[1]["v_info"]) == 0.8
    table2 = evaluate.format_table(evaluate.table2_rows("DIC-C2DH-HeLa", 0.5, 0.6, "sequence 02"),
                                   evaluate.TABLE2_COLUMNS)
    assert "0.7756" in table2 and "0.5000" in table2


# ----------------------------------------------------------------------------- the command on real data
@pytest.mark.integration
def test_evaluate_perfect_probabilities_scores_zero(shared_data, tmp_path, capsys):
    from unet_tutorial.datasets import load_isbi2012

    labels = load_isbi2012(shared_data).labels
    membrane = 1.0 - labels[[0, 1]].astype(np.float32)
    path = predictions.save_predictions(tmp_path / "perfect.npz", np.stack([membrane, 1 - membrane], -1), slices=[0, 1])
    code, out, err = _evaluate(["--probabilities", str(path), "--slices", "0,1", "--data-dir", str(shared_data),
                                "--quiet", "--csv", str(tmp_path / "t.csv"), "--markdown", str(tmp_path / "t.md")], capsys)
    assert code == 0, err
    assert "Table 1" in out and "u-net (paper, Table 1)" in out and "training slices 0,1" in out
    ours = list(csv.DictReader(open(tmp_path / "t.csv")))[1]
    assert ours["name"] == "ours"
    assert float(ours["warping_error"]) == float(ours["rand_error"]) == float(ours["pixel_error"]) == 0.0
    assert "| ours |" in (tmp_path / "t.md").read_text()
    # slices not in the file are an error, not a silent misalignment
    code, _, err = _evaluate(["--probabilities", str(path), "--slices", "2", "--data-dir", str(shared_data)], capsys)
    assert code == 1 and "slices [2]" in err


@pytest.mark.integration
def test_evaluate_table2_matches_seg_score(shared_data, tmp_path, capsys):
    from unet_tutorial.datasets import load_ctc

    masks = load_ctc("DIC-C2DH-HeLa", "02", shared_data).masks[:2]
    cell = (masks > 0).astype(np.float32)
    path = predictions.save_predictions(tmp_path / "p.npz", np.stack([1 - cell, cell], -1), slices=[0, 1])
    code, out, err = _evaluate(["--probabilities", str(path), "--dataset", "DIC-C2DH-HeLa", "--sequence", "02",
                                "--slices", "0,1", "--data-dir", str(shared_data), "--csv", str(tmp_path / "t.csv")],
                               capsys)
    assert code == 0, err
    assert "Table 2" in out and "0.7756" in out
    expected = metrics.seg_score(metrics.cell_components(masks > 0), masks)
    ours = list(csv.DictReader(open(tmp_path / "t.csv")))[1]
    assert float(ours["seg"]) == pytest.approx(expected) and float(ours["iou_cell"]) == 1.0


@pytest.mark.integration
def test_evaluate_and_predict_with_a_tiny_untrained_model(shared_data, tmp_path, capsys):
    from unet_tutorial.model import build_unet

    model_path = tmp_path / "tiny.keras"
    build_unet(input_shape=(92, 92, 1), base_filters=4, depth=2, dropout=0.0).save(model_path)
    code, out, err = _evaluate(["--model", str(model_path), "--slices", "0", "--no-warping", "--quiet",
                                "--data-dir", str(shared_data)], capsys)
    assert code == 0, err
    ours = next(line for line in out.splitlines() if line.startswith("ours"))
    values = [float(v) for v in ours.split()[2:5]]  # warping is "-" (skipped); Rand, pixel, V_rand
    assert all(0.0 <= v <= 1.0 for v in values)

    output = tmp_path / "out" / "probabilities.npz"
    args = _parse(evaluate.add_predict_arguments, ["--model", str(model_path), "--output", str(output), "--split", "test",
                                                   "--slices", "2", "--quiet", "--data-dir", str(shared_data)])
    assert evaluate.run_predict(args) == 0
    probabilities, slices, _ = predictions.load_predictions(output)
    assert probabilities.shape == (1, 512, 512, 2) and slices.tolist() == [2]
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    bad = _parse(evaluate.add_predict_arguments, ["--model", str(model_path), "--output", str(tmp_path / "p.png")])
    assert evaluate.run_predict(bad) == 1


@pytest.mark.integration
def test_evaluate_reads_the_held_out_fold_and_tile_size_from_state_json(shared_data, tmp_path, capsys):
    import json

    from unet_tutorial.model import build_unet

    run = tmp_path / "run"
    run.mkdir()
    build_unet(input_shape=(None, None, 1), base_filters=4, depth=2, dropout=0.0).save(run / "model.keras")
    config = {"dataset": "isbi2012", "validation_folds": 10, "validation_fold": 9, "depth": 2, "padding": "valid"}
    (run / "state.json").write_text(json.dumps({"config": config}))
    code, out, err = _evaluate(["--model", str(run / "model.keras"), "--no-warping", "--quiet",
                                "--data-dir", str(shared_data)], capsys)
    assert code == 0, err
    assert "slices 27-29 (fold 9 of 10), held out" in out
    # asking for slices the run trained on is allowed but flagged in the table
    code, out, err = _evaluate(["--model", str(run / "model.keras"), "--slices", "0", "--no-warping", "--quiet",
                                "--data-dir", str(shared_data)], capsys)
    assert code == 0, err
    assert "WARNING: 1 of these were trained on" in out


@pytest.mark.slow
@pytest.mark.integration
def test_cli_prints_table1_for_a_cpu_tiny_model(shared_data, tmp_path, repo_root):
    """The done-when of issue 5: `train --preset cpu-tiny`, then `evaluate` prints a Table 1."""
    env = {**os.environ, "UNET_TUTORIAL_DATA": str(shared_data), "KERAS_BACKEND": "tensorflow"}
    run_dir = tmp_path / "run"
    # a short run: this checks the commands, not how well the model learns (test_train does)
    train = subprocess.run([sys.executable, "-m", "unet_tutorial", "train", "--preset", "cpu-tiny", "--output",
                            str(run_dir), "--quiet", "--epochs", "2", "--steps-per-epoch", "5"], cwd=repo_root, env=env,
                           capture_output=True, text=True, timeout=900)
    assert train.returncode == 0, train.stderr[-3000:]
    model_path = run_dir / "model.keras"
    assert model_path.is_file()
    result = subprocess.run([sys.executable, "-m", "unet_tutorial", "evaluate", "--model", str(model_path), "--quiet",
                             "--csv", str(tmp_path / "table1.csv")], cwd=repo_root, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Table 1" in result.stdout and "u-net (paper, Table 1)" in result.stdout
    # the model's own held-out block (read from state.json beside it), never a trained-on slice
    assert "held out" in result.stdout and "trained on" not in result.stdout
    ours = list(csv.DictReader(open(tmp_path / "table1.csv")))[1]
    assert all(0.0 <= float(ours[key]) <= 1.0 for key in ("warping_error", "rand_error", "pixel_error"))


def test_a_corrupt_state_json_is_an_error_not_a_missing_config(tmp_path, capsys):
    """Without the saved config the held-out block is unknown: evaluate must say so, not score silently."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"not read")
    (run / "state.json").write_text('{"config": {"dataset": "isbi2012", ')  # cut off mid-write
    code, out, err = _evaluate(["--model", str(run / "model.keras"), "--no-warping", "--quiet"], capsys)
    assert code == 1
    assert "state.json" in err and "--slices or --fold" in err
    assert "Table 1" not in out


def test_score_touching_cells_counts_merges_and_cells_per_frame():
    truth = np.zeros((2, 10, 20), np.int32)
    truth[:, 2:8, 2:9], truth[:, 2:8, 9:16] = 1, 2  # two touching cells in each frame
    markers = truth.copy()  # every marked cell has its outline: nothing ignored
    merged = (truth > 0).astype(np.int32) * np.array([1, 3])[:, None, None]  # one blob per frame
    scores = evaluate.score_touching_cells(merged, truth, markers)
    assert scores["merged_cells"] == 4 and scores["true_cells"] == 4
    assert scores["predicted_cells_per_frame"] == 1.0 and scores["iou_cell"] == 1.0
    assert scores["seg"] == pytest.approx(metrics.seg_score(merged, truth))
    split = truth + np.array([0, 2])[:, None, None] * (truth > 0)  # the true cells themselves, numbered apart
    perfect = evaluate.score_touching_cells(split, truth, markers)
    assert perfect["merged_cells"] == 0 and perfect["seg"] == 1.0 and perfect["predicted_cells_per_frame"] == 2.0
